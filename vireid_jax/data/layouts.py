"""Raw dataset layouts: enumerate image files into `Record`s.

SYSU-MM01 (Wu et al., ICCV'17) as unpacked from the official download (the reference code calls
the folder `SYSU-MM01/ori_data/`)::

    <root>/
      cam1/ … cam6/
        <person_id:04d>/        only if that camera saw that person
          <k:04d>.jpg           k = 1, 2, … running index inside (camera, person)
      exp/
        train_id.txt  val_id.txt  test_id.txt    one line of comma-separated ids, e.g. "1,2,4,5"

The synthetic dataset (`vireid_jax.data.synthetic`) is written in exactly this layout, so the
functions here serve both. Everything is NumPy-free pathlib code: no TensorFlow, no images are
opened.

Record order follows the AGW reference (`pre_process_sysu.py`, `data_manager.py`) because the
order decides which index a sampler seed picks and which file the gallery draw picks.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterable, Sequence
from typing import Literal

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

VISIBLE = "visible"
INFRARED = "infrared"
Modality = Literal["visible", "infrared"]

# Label of records outside the training set (test records are only compared by person_id).
NO_LABEL = -1

_HELP_POINTERS = (
  "See data/README.md for how to obtain and unpack SYSU-MM01, or train on the synthetic "
  "dataset instead (configs/synthetic.py; it is generated locally and needs no download)."
)
_EXPECTED_LAYOUT = (
  "Expected the unpacked SYSU-MM01 download: <root>/cam1 … cam6/<person_id:04d>/<k:04d>.jpg "
  "and <root>/exp/{train,val,test}_id.txt (each one line of comma-separated ids)."
)


@dataclasses.dataclass(frozen=True)
class Record:
  """One image of a raw dataset.

  Attributes:
    path: absolute path of the image file.
    relative_path: path below the dataset root, always '/'-separated, e.g. "cam3/0006/0001.jpg".
    person_id: the dataset's identity number (e.g. 6), not the training label.
    camera: 1-based camera number.
    modality: "visible" or "infrared".
    label: training label in 0..C-1 (dense rank of the person id among the training ids);
      `NO_LABEL` (-1) for test records.
  """

  path: str
  relative_path: str
  person_id: int
  camera: int
  modality: Modality
  label: int


class DatasetNotFoundError(FileNotFoundError):
  """A dataset folder or one of its required files is missing."""


def sysu_camera_modality(camera: int) -> Modality:
  """Modality of a SYSU-MM01 camera number (1-based)."""
  if camera in SYSU_VISIBLE_CAMERAS:
    return VISIBLE
  if camera in SYSU_INFRARED_CAMERAS:
    return INFRARED
  raise ValueError(f"SYSU-MM01 has cameras 1..6, got camera {camera}.")


def read_sysu_id_file(path: str | pathlib.Path) -> list[int]:
  """Reads a SYSU-MM01 `exp/*_id.txt` file: the first line, comma-separated decimal ids.

  Like the reference (`pre_process_sysu.py:12-22`) only the first line is read; surrounding
  whitespace of each token is ignored. Unlike the reference, a blank line, an empty token (e.g.
  a trailing comma), a non-integer or an id < 1 is an error rather than a crash or a silently
  wrong folder name.

  Args:
    path: the id file.

  Returns:
    The ids in file order.

  Raises:
    DatasetNotFoundError: the file does not exist.
    ValueError: the first line is blank or holds a token that is not a positive integer.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise DatasetNotFoundError(f"SYSU-MM01 id file not found: {path}. {_HELP_POINTERS}")
  with path.open("r", encoding="utf-8") as f:
    first_line = f.readline()
  if not first_line.strip():
    raise ValueError(f"SYSU-MM01 id file {path} is empty: expected one line like '1,2,4,5'.")
  person_ids = []
  for token in first_line.split(","):
    try:
      person_id = int(token)
    except ValueError:
      raise ValueError(
        f"SYSU-MM01 id file {path}: bad token {token.strip()!r}; expected one line of "
        "comma-separated positive integers like '1,2,4,5'."
      ) from None
    if person_id < 1:
      raise ValueError(f"SYSU-MM01 id file {path}: bad token {token.strip()!r}; ids start at 1.")
    person_ids.append(person_id)
  return person_ids


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
  root = pathlib.Path(root).absolute()
  if not root.is_dir():
    raise DatasetNotFoundError(
      f"SYSU-MM01 root folder not found: {root}. {_EXPECTED_LAYOUT} {_HELP_POINTERS}"
    )
  required = [root / "exp" / f"{split}_id.txt" for split in SYSU_SPLITS]
  for id_file in required:
    if not id_file.is_file():
      raise DatasetNotFoundError(
        f"SYSU-MM01 root {root} has no id file {id_file.relative_to(root)} (looked for "
        f"{id_file}). {_EXPECTED_LAYOUT} {_HELP_POINTERS}"
      )
  for camera in SYSU_CAMERAS:
    camera_dir = root / f"cam{camera}"
    if not camera_dir.is_dir():
      raise DatasetNotFoundError(
        f"SYSU-MM01 root {root} has no camera folder cam{camera} (looked for {camera_dir}). "
        f"{_EXPECTED_LAYOUT} {_HELP_POINTERS}"
      )
  return root


def read_sysu_splits(root: str | pathlib.Path) -> dict[str, list[int]]:
  """Reads `exp/{train,val,test}_id.txt` and checks them.

  Returns:
    {"train": ids, "val": ids, "test": ids}, each in file order.

  Raises:
    DatasetNotFoundError: see `check_sysu_root`.
    ValueError: a malformed file, an id listed twice, or an id in two splits (a train/test
      overlap would leak test identities into training; the reference would silently load a
      duplicated id's images twice).
  """
  root = check_sysu_root(root)
  splits = {split: read_sysu_id_file(root / "exp" / f"{split}_id.txt") for split in SYSU_SPLITS}
  seen: dict[int, str] = {}
  for split, person_ids in splits.items():
    for person_id in person_ids:
      if person_id in seen:
        where = (f"twice in exp/{split}_id.txt" if seen[person_id] == split else
                 f"in both exp/{seen[person_id]}_id.txt and exp/{split}_id.txt")
        raise ValueError(
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

  A missing (camera, person) folder simply contributes nothing, as in the reference. Only
  `*.jpg` files are listed, so stray files (e.g. `Thumbs.db`) are ignored rather than decoded.
  """
  records = []
  for camera in cameras:
    person_dir = root / f"cam{camera}" / f"{person_id:04d}"
    if not person_dir.is_dir():
      continue
    file_names = sorted(
      entry.name for entry in person_dir.iterdir()
      if entry.name.endswith(".jpg") and entry.is_file()
    )
    for file_name in file_names:
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
    would make the reference crash with a KeyError; here it raises a ValueError naming the id.
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
    ValueError: malformed id files, overlapping splits, or a visible-only training id.
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
      raise ValueError(
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
    DatasetNotFoundError, ValueError: see `sysu_train_records`.
  """
  root = check_sysu_root(root)
  records = []
  for person_id in sorted(read_sysu_splits(root)["test"]):
    records += _list_sysu_images(root, person_id, SYSU_CAMERAS, NO_LABEL)
  return records


def count_by(records: Sequence[Record], key: str) -> dict:
  """Number of records per value of attribute `key` (e.g. "camera"), keys sorted."""
  counts: dict = {}
  for record in records:
    value = getattr(record, key)
    counts[value] = counts.get(value, 0) + 1
  return dict(sorted(counts.items()))
