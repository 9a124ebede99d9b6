"""The SYSU-MM01 layout: cameras, splits, and its training and test records.

The unpacked download (the reference code calls the folder `SYSU-MM01/ori_data/`)::

  <root>/
    cam1/ … cam6/
      <person_id:04d>/        only if that camera saw that person
        <k:04d>.jpg           k = 1, 2, … running index inside (camera, person)
    exp/
      train_id.txt  val_id.txt  test_id.txt    one line of comma-separated ids, e.g. "1,2,4,5"

Records follow AGW's `pre_process_sysu.py`; cameras are the `cam<k>` folders.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterable

from vireid_jax.data.layouts.common import INFRARED
from vireid_jax.data.layouts.common import NO_LABEL
from vireid_jax.data.layouts.common import VISIBLE
from vireid_jax.data.layouts.common import DatasetIntegrityError
from vireid_jax.data.layouts.common import Modality
from vireid_jax.data.layouts.common import Record
from vireid_jax.data.layouts.common import check_folders
from vireid_jax.data.layouts.common import list_images_in
from vireid_jax.data.layouts.common import read_id_file

# Camera numbers are 1-based, as in the folder names. Facts from the SYSU-MM01 paper and the
# reference code (spec baseline_data_eval.md §1.1.2):
# * cam1, cam2, cam4, cam5 are RGB; cam3 and cam6 are near-infrared with active illumination.
# * cam1 (room 1), cam2 (room 2) and cam3 are indoor; cam3 films the same place as cam2, which
#   is why the protocol drops every cam2 gallery image for cam3 queries. cam4–cam6 are outdoor.
SYSU_VISIBLE_CAMERAS = (1, 2, 4, 5)
SYSU_INFRARED_CAMERAS = (3, 6)
SYSU_INDOOR_CAMERAS = (1, 2, 3)
SYSU_CAMERAS = (1, 2, 3, 4, 5, 6)

SYSU_SPLITS = ("train", "val", "test")


def read_sysu_id_file(path: str | pathlib.Path) -> list[int]:
  """`read_id_file` for SYSU-MM01's `exp/{train,val,test}_id.txt`."""
  return read_id_file(path, "sysu")


def sysu_camera_modality(camera: int) -> Modality:
  """Modality of a SYSU-MM01 camera number (1-based)."""
  if camera in SYSU_VISIBLE_CAMERAS:
    return VISIBLE
  if camera in SYSU_INFRARED_CAMERAS:
    return INFRARED
  raise ValueError(f"SYSU-MM01 has cameras 1..6, got camera {camera}.")


def check_sysu_root(root: str | pathlib.Path) -> pathlib.Path:
  """Checks that `root` looks like an unpacked SYSU-MM01 download.

  Only the folder skeleton is checked (six camera folders, three id files); images are not.

  Args:
    root: the dataset root.

  Returns:
    `root` as an absolute path.

  Raises:
    DatasetNotFoundError: naming the first missing folder or file.
  """
  return check_folders("sysu", root, [f"cam{camera}" for camera in SYSU_CAMERAS],
                       [f"exp/{split}_id.txt" for split in SYSU_SPLITS])


def read_sysu_splits(root: str | pathlib.Path) -> dict[str, list[int]]:
  """Reads `exp/{train,val,test}_id.txt` and checks them.

  Returns:
    {"train": ids, "val": ids, "test": ids}, each in file order.

  Raises:
    DatasetNotFoundError: see `check_sysu_root`.
    DatasetIntegrityError: a malformed file, an id listed twice, or an id in two splits (a
      train/test overlap would leak test identities into training; the reference would silently
      load a duplicated id's images twice).
  """
  root = check_sysu_root(root)
  splits = {split: read_sysu_id_file(root / "exp" / f"{split}_id.txt") for split in SYSU_SPLITS}
  seen: dict[int, str] = {}
  for split, person_ids in splits.items():
    for person_id in person_ids:
      if person_id in seen:
        where = (f"twice in exp/{split}_id.txt" if seen[person_id] == split else
                 f"in both exp/{seen[person_id]}_id.txt and exp/{split}_id.txt")
        raise DatasetIntegrityError(
          f"SYSU-MM01 root {root}: person id {person_id} is listed {where}; the splits must be "
          "disjoint lists of distinct ids."
        )
      seen[person_id] = split
  return splits


def _parse_sysu_relative_path(relative_path: str) -> tuple[int, int]:
  """(camera, person_id) from "cam{c}/{person_id:04d}/{k:04d}.jpg", by path component.

  The reference slices fixed string offsets of the full path; components do not break when the
  root path changes length or the numbers are wider.
  """
  parts = relative_path.split("/")
  if len(parts) != 3 or not parts[0].startswith("cam"):
    raise ValueError(f"Not a SYSU-MM01 image path 'cam<c>/<id>/<k>.jpg': {relative_path!r}")
  return int(parts[0][len("cam") :]), int(parts[1])


def _list_sysu_images(
  root: pathlib.Path, person_id: int, cameras: Iterable[int], label: int
) -> list[Record]:
  """Records of one person in `cameras` (in that order), file names sorted.

  A missing (camera, person) folder simply contributes nothing, as in the reference.
  """
  records = []
  for camera in cameras:
    person_dir = root / f"cam{camera}" / f"{person_id:04d}"
    for file_name in list_images_in(person_dir):
      relative_path = f"cam{camera}/{person_id:04d}/{file_name}"
      parsed_camera, parsed_person_id = _parse_sysu_relative_path(relative_path)
      records.append(
        Record(
          path=str(person_dir / file_name),
          relative_path=relative_path,
          person_id=parsed_person_id,
          camera=parsed_camera,
          modality=sysu_camera_modality(parsed_camera),
          label=label,
        )
      )
  return records


def sysu_train_records(root: str | pathlib.Path) -> tuple[list[Record], list[Record]]:
  """The SYSU-MM01 training set as the AGW reference builds it (`pre_process_sysu.py`).

  * Ids = train ids + val ids (AGW trains on both: 395 ids on the real data), ascending.
  * Per id, visible images of cam1, cam2, cam4, cam5 in that order, then (separately) infrared
    images of cam3, cam6; inside a (camera, id) folder the file names are sorted. So both lists
    are ordered id-major, camera-minor, file-name-minor.
  * Labels: the reference relabels from the set of person ids of the *infrared* list, i.e. label
    = rank of the person id among the training ids that have infrared images (0..C-1), and uses
    the same map for the visible list. A training id with visible images but no infrared image
    would make the reference crash with a KeyError; here it raises an error naming the id.
    A training id with infrared but no visible images keeps its label (its visible list is
    just empty). A training id without any image gets no label, as in the reference.

  Every real SYSU-MM01 train/val id has both modalities (spec §1.1.4), so on the real data the
  labels are the ranks 0..394 of all 395 ids.

  Args:
    root: the dataset root.

  Returns:
    (visible_records, infrared_records).

  Raises:
    DatasetNotFoundError: the layout is incomplete (see `check_sysu_root`).
    DatasetIntegrityError: malformed id files, overlapping splits, or a visible-only training
      id.
  """
  root = check_sysu_root(root)
  splits = read_sysu_splits(root)
  training_ids = sorted(splits["train"] + splits["val"])

  infrared_records = []
  for person_id in training_ids:
    infrared_records += _list_sysu_images(root, person_id, SYSU_INFRARED_CAMERAS, NO_LABEL)
  # Sorted set = CPython's iteration order of a set of small ints, which the reference enumerates.
  label_of_person = {
    person_id: label
    for label, person_id in enumerate(sorted({record.person_id for record in infrared_records}))
  }
  infrared_records = [
    dataclasses.replace(record, label=label_of_person[record.person_id])
    for record in infrared_records
  ]

  visible_records = []
  for person_id in training_ids:
    person_records = _list_sysu_images(root, person_id, SYSU_VISIBLE_CAMERAS, NO_LABEL)
    if person_records and person_id not in label_of_person:
      raise DatasetIntegrityError(
        f"SYSU-MM01 root {root}: training person id {person_id} has visible images but no "
        f"infrared image (no cam3/{person_id:04d} or cam6/{person_id:04d} folder with .jpg "
        "files); training labels are defined by the infrared images, as in the reference."
      )
    visible_records += [
      dataclasses.replace(record, label=label_of_person[person_id]) for record in person_records
    ]
  return visible_records, infrared_records


def sysu_test_records(root: str | pathlib.Path) -> list[Record]:
  """All images of the test ids in all six cameras, with label -1.

  Order: person id ascending, camera ascending (1..6), file name sorted. The evaluation
  protocols select from this list: queries = the infrared records (cam3, cam6), galleries = one
  or more visible records per (id, camera) (spec §7.3).

  Args:
    root: the dataset root.

  Returns:
    The test records.

  Raises:
    DatasetNotFoundError, DatasetIntegrityError: see `sysu_train_records`.
  """
  root = check_sysu_root(root)
  records = []
  for person_id in sorted(read_sysu_splits(root)["test"]):
    records += _list_sysu_images(root, person_id, SYSU_CAMERAS, NO_LABEL)
  return records
