"""Raw dataset layouts: enumerate image files into `Record`s.

Three datasets, each in the layout its authors ship (spec baseline_data_eval.md §1; data/README.md
shows the trees):

* SYSU-MM01 (Wu et al., ICCV'17), the unpacked download (the reference code calls the folder
  `SYSU-MM01/ori_data/`)::

    <root>/
      cam1/ … cam6/
        <person_id:04d>/        only if that camera saw that person
          <k:04d>.jpg           k = 1, 2, … running index inside (camera, person)
      exp/
        train_id.txt  val_id.txt  test_id.txt    one line of comma-separated ids, e.g. "1,2,4,5"

* RegDB (Nguyen et al., Sensors'17): images listed by index files, 10 random train/test splits
  ("trials")::

    <root>/
      Visible/<person>/<file>.bmp   Thermal/<person>/<file>.bmp
      idx/{train,test}_{visible,thermal}_{t}.txt    t = 1..10; lines "<relative path> <label>"

* LLCM (Zhang & Wang, CVPR'23): training images listed by index files, test images in camera
  folders::

    <root>/
      idx/train_vis.txt  idx/train_nir.txt     lines "<relative path> <label>"
      idx/test_id.txt                          one line of comma-separated test ids
      test_vis/cam1 … cam9/<person_id:04d>/<file>.jpg
      test_nir/cam1, cam2, cam4 … cam9/<person_id:04d>/<file>.jpg

The synthetic dataset (`vireid_jax.data.synthetic`) writes each of these layouts, so the
functions here serve both. Everything is pathlib code: no TensorFlow, no NumPy, no image is
opened (`vireid_jax.data.builders` decodes them).

Record order follows each reference loader (AGW `pre_process_sysu.py`, `data_manager.py`,
`data_loader.py`; the LLCM fork of AGW), because the order decides which index a sampler seed
picks and which file a gallery draw picks. Camera numbers are 1-based, as the references assign
them: SYSU-MM01 and LLCM from the `cam<k>` folder (LLCM training images from the `_c<kk>_` part
of the file name), RegDB 1 for every visible and 2 for every thermal image (the AGW RegDB
protocol's "query cam 1, gallery cam 2", spec §7.5).
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
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

# RegDB (spec §1.2): one co-located visible/thermal camera pair; ten train/test splits of the
# 412 ids, each with its own index files. Camera numbers as the AGW RegDB protocol uses them.
REGDB_TRIALS = tuple(range(1, 11))
REGDB_VISIBLE_CAMERA = 1
REGDB_THERMAL_CAMERA = 2

# LLCM (spec §1.3): nine cameras, each filming in both modalities, so a camera number names the
# same physical camera in both. The reference's NIR test set lists no cam3.
LLCM_CAMERAS = (1, 2, 3, 4, 5, 6, 7, 8, 9)
LLCM_VISIBLE_TEST_CAMERAS = LLCM_CAMERAS
LLCM_INFRARED_TEST_CAMERAS = (1, 2, 4, 5, 6, 7, 8, 9)

VISIBLE = "visible"
INFRARED = "infrared"
MODALITIES = (VISIBLE, INFRARED)
Modality = Literal["visible", "infrared"]

# Label of records outside the training set (test records are only compared by person_id).
NO_LABEL = -1

# What each dataset is called in messages, and the synthetic config that replaces it.
DISPLAY_NAMES = {"sysu": "SYSU-MM01", "regdb": "RegDB", "llcm": "LLCM"}
SYNTHETIC_CONFIGS = {"sysu": "configs/synthetic.py", "regdb": "configs/synthetic_regdb.py",
                     "llcm": "configs/synthetic_llcm.py"}
_EXPECTED_LAYOUTS = {
  "sysu": "Expected the unpacked SYSU-MM01 download: <root>/cam1 … cam6/<person_id:04d>/"
          "<k:04d>.jpg and <root>/exp/{train,val,test}_id.txt (each one line of "
          "comma-separated ids).",
  "regdb": "Expected the unpacked RegDB download: <root>/Visible/, <root>/Thermal/ and "
           "<root>/idx/{train,test}_{visible,thermal}_{1..10}.txt (lines '<relative path> "
           "<label>').",
  "llcm": "Expected the unpacked LLCM download: <root>/idx/train_vis.txt, "
          "<root>/idx/train_nir.txt (lines '<relative path> <label>'), <root>/idx/test_id.txt "
          "(one line of comma-separated ids), <root>/test_vis/cam1 … cam9/ and "
          "<root>/test_nir/cam1, cam2, cam4 … cam9/, each holding <person_id:04d>/ folders.",
}


def _help(dataset: str) -> str:
  return (f"See data/README.md for how to obtain and unpack {DISPLAY_NAMES[dataset]}, or train "
          f"on the synthetic dataset instead ({SYNTHETIC_CONFIGS[dataset]}; it is generated "
          "locally and needs no download).")


@dataclasses.dataclass(frozen=True)
class Record:
  """One image of a raw dataset.

  Attributes:
    path: absolute path of the image file.
    relative_path: path below the dataset root, always '/'-separated, e.g. "cam3/0006/0001.jpg".
    person_id: the dataset's identity number (e.g. 6), not the training label.
    camera: 1-based camera number.
    modality: "visible" or "infrared" (RegDB's thermal images are "infrared").
    label: training label in 0..C-1 (dense rank of the person id among the training ids);
      `NO_LABEL` (-1) for test records.
  """

  path: str
  relative_path: str
  person_id: int
  camera: int
  modality: Modality
  label: int


class DatasetError(Exception):
  """A raw dataset is missing, incomplete or contradicts its known structure."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
  """A dataset folder or one of its required files is missing."""


class DatasetIntegrityError(DatasetError, ValueError):
  """A dataset's files exist but are malformed, corrupt or have the wrong counts."""


# ----------------------------------------------------------------------------------------------
# Shared pieces: id files, index files, folder listings, label checks.


def read_id_file(path: str | pathlib.Path, dataset: str = "sysu") -> list[int]:
  """Reads an id file (SYSU-MM01 `exp/*_id.txt`, LLCM `idx/test_id.txt`): the first line's ids.

  Like the references (`pre_process_sysu.py:12-22`, LLCM `data_manager.py`) only the first line
  is read, comma-separated; surrounding whitespace of each token is ignored. Unlike them, a
  blank line, an empty token (e.g. a trailing comma), a non-integer or an id < 1 is an error
  rather than a crash or a silently wrong folder name.

  Args:
    path: the id file.
    dataset: "sysu" or "llcm", for messages.

  Returns:
    The ids in file order.

  Raises:
    DatasetNotFoundError: the file does not exist.
    DatasetIntegrityError: the first line is blank or holds a token that is not a positive
      integer.
  """
  path = pathlib.Path(path)
  name = DISPLAY_NAMES[dataset]
  if not path.is_file():
    raise DatasetNotFoundError(f"{name} id file not found: {path}. {_help(dataset)}")
  with path.open("r", encoding="utf-8") as f:
    first_line = f.readline()
  if not first_line.strip():
    raise DatasetIntegrityError(
      f"{name} id file {path} is empty: expected one line like '1,2,4,5'.")
  person_ids = []
  for token in first_line.split(","):
    try:
      person_id = int(token)
    except ValueError:
      raise DatasetIntegrityError(
        f"{name} id file {path}: bad token {token.strip()!r}; expected one line of "
        "comma-separated positive integers like '1,2,4,5'."
      ) from None
    if person_id < 1:
      raise DatasetIntegrityError(
        f"{name} id file {path}: bad token {token.strip()!r}; ids start at 1.")
    person_ids.append(person_id)
  return person_ids


def read_sysu_id_file(path: str | pathlib.Path) -> list[int]:
  """`read_id_file` for SYSU-MM01's `exp/{train,val,test}_id.txt`."""
  return read_id_file(path, "sysu")


@dataclasses.dataclass(frozen=True)
class IndexEntry:
  """One line of an index file: "<relative path> <label>".

  Attributes:
    line_number: 1-based line number in the file (for messages).
    relative_path: the image path below the dataset root, '/'-separated.
    label: the integer after the path.
  """

  line_number: int
  relative_path: str
  label: int


def read_index_file(path: str | pathlib.Path, dataset: str) -> list[IndexEntry]:
  """Reads a RegDB / LLCM index file: one "<relative path> <label>" per line.

  The references split each line on a space and take fields 0 and 1 (`data_loader.py:133-140`).
  Here a line must hold exactly those two fields (whitespace-separated), the label must be a
  non-negative integer and the path must stay inside the root (relative, no '..'); blank lines
  are skipped. Anything else is an error naming the file and the line.

  Args:
    path: the index file.
    dataset: "regdb" or "llcm", for messages.

  Returns:
    The entries in file order.

  Raises:
    DatasetNotFoundError: the file does not exist.
    DatasetIntegrityError: a malformed line, or no entry at all.
  """
  path = pathlib.Path(path)
  name = DISPLAY_NAMES[dataset]
  if not path.is_file():
    raise DatasetNotFoundError(f"{name} index file not found: {path}. {_EXPECTED_LAYOUTS[dataset]} "
                               f"{_help(dataset)}")
  entries = []
  with path.open("r", encoding="utf-8") as f:
    for line_number, line in enumerate(f, start=1):
      fields = line.split()
      if not fields:
        continue
      where = f"{name} index file {path}, line {line_number} ({line.strip()!r})"
      if len(fields) != 2:
        raise DatasetIntegrityError(f"{where}: expected '<relative path> <label>'.")
      relative_path, label_text = fields
      try:
        label = int(label_text)
      except ValueError:
        raise DatasetIntegrityError(
          f"{where}: the label {label_text!r} is not an integer.") from None
      if label < 0:
        raise DatasetIntegrityError(f"{where}: the label {label} is negative.")
      parts = pathlib.PurePosixPath(relative_path.replace("\\", "/"))
      if parts.is_absolute() or ".." in parts.parts or len(parts.parts) < 2:
        raise DatasetIntegrityError(
          f"{where}: the path must be relative to the dataset root, inside it, and name a "
          "file in a person folder (e.g. 'Visible/1/x.bmp').")
      entries.append(IndexEntry(line_number, parts.as_posix(), label))
  if not entries:
    raise DatasetIntegrityError(f"{name} index file {path} lists no image.")
  return entries


def _person_id_of_folder(folder_name: str, where: str) -> int:
  """The person id a folder name ("0006", "6") stands for."""
  if not folder_name.isdigit() or int(folder_name) < 1:
    raise DatasetIntegrityError(
      f"{where}: the person folder {folder_name!r} is not a positive number.")
  return int(folder_name)


def _records_from_index(root: pathlib.Path, index_path: pathlib.Path, dataset: str,
                        modality: Modality, camera_of_entry, label_of_entry) -> list[Record]:
  """Records of the images an index file lists, in file order.

  The person id is the number of the folder holding the image (RegDB `Visible/<n>/…`, LLCM
  `vis/<nnnn>/…`); `camera_of_entry(entry, where)` and `label_of_entry(entry)` give the camera
  and the label.

  Raises:
    DatasetNotFoundError: a listed image does not exist (names the index line).
    DatasetIntegrityError: a malformed line.
  """
  records = []
  for entry in read_index_file(index_path, dataset):
    where = f"{DISPLAY_NAMES[dataset]} index file {index_path}, line {entry.line_number}"
    person_id = _person_id_of_folder(entry.relative_path.split("/")[-2], where)
    camera = camera_of_entry(entry, where)
    path = root / entry.relative_path
    if not path.is_file():
      raise DatasetNotFoundError(
        f"{where} lists {entry.relative_path}, but {path} does not exist. Re-extract the "
        f"dataset. {_help(dataset)}")
    records.append(Record(path=str(path), relative_path=entry.relative_path,
                          person_id=person_id, camera=camera, modality=modality,
                          label=label_of_entry(entry)))
  return records


def _list_images_in(folder: pathlib.Path) -> list[str]:
  """Sorted `*.jpg` file names of a folder; none if it does not exist.

  Only `*.jpg` files are listed, so stray files (e.g. `Thumbs.db`) are ignored rather than
  decoded.
  """
  if not folder.is_dir():
    return []
  return sorted(entry.name for entry in folder.iterdir()
                if entry.name.endswith(".jpg") and entry.is_file())


def _check_training_labels(dataset: str, root: pathlib.Path, visible: Sequence[Record],
                           infrared: Sequence[Record], sources: str) -> None:
  """The references use index-file labels as class ids and as sampler list indices.

  So they must be exactly 0..C-1 in both modalities (spec §1.2), and each label must name one
  person (the folder) and each person one label.

  Raises:
    DatasetIntegrityError: naming `sources` and what is wrong.
  """
  name = DISPLAY_NAMES[dataset]
  visible_labels = {record.label for record in visible}
  infrared_labels = {record.label for record in infrared}
  all_labels = visible_labels | infrared_labels
  expected = set(range(len(all_labels)))
  if all_labels != expected:
    raise DatasetIntegrityError(
      f"{name} {sources} in {root}: training labels must be 0..C-1 without gaps; found "
      f"{len(all_labels)} distinct labels, missing {_few(expected - all_labels)}, unexpected "
      f"{_few(all_labels - expected)}.")
  if visible_labels != infrared_labels:
    raise DatasetIntegrityError(
      f"{name} {sources} in {root}: every training label must have images in both "
      f"modalities; only visible: {_few(visible_labels - infrared_labels)}, only infrared: "
      f"{_few(infrared_labels - visible_labels)}.")
  _check_one_person_per_label(dataset, root, list(visible) + list(infrared), sources)


def _check_one_person_per_label(dataset: str, root: pathlib.Path, records: Sequence[Record],
                                sources: str) -> None:
  """Each label belongs to one person folder and each person folder to one label."""
  person_of_label: dict[int, int] = {}
  label_of_person: dict[int, int] = {}
  for record in records:
    label = record.label
    person = person_of_label.setdefault(label, record.person_id)
    other_label = label_of_person.setdefault(record.person_id, label)
    if person != record.person_id or other_label != label:
      raise DatasetIntegrityError(
        f"{DISPLAY_NAMES[dataset]} {sources} in {root}: {record.relative_path} has label "
        f"{label} and person folder {record.person_id}, but label {label} is person "
        f"{person} and person {record.person_id} has label {other_label} elsewhere; a label "
        "must name exactly one person.")


def _few(values: Iterable[int], limit: int = 8) -> str:
  values = sorted(values)
  shown = ", ".join(str(v) for v in values[:limit])
  return f"[{shown}{', …' if len(values) > limit else ''}]" if values else "none"


def _check_disjoint_people(dataset: str, root: pathlib.Path, train: Sequence[Record],
                           test: Sequence[Record], sources: str) -> None:
  """No person may be in both the training and the test split (a leak)."""
  shared = {r.person_id for r in train} & {r.person_id for r in test}
  if shared:
    raise DatasetIntegrityError(
      f"{DISPLAY_NAMES[dataset]} {sources} in {root}: person ids {_few(shared)} are in both "
      "the training and the test split; the splits must be disjoint.")


def _check_folders(dataset: str, root: pathlib.Path, folders: Iterable[str],
                   files: Iterable[str]) -> pathlib.Path:
  """`root` as an absolute path, after checking that it holds `folders` and `files`.

  Raises:
    DatasetNotFoundError: naming the root or the first missing entry.
  """
  root = pathlib.Path(root).absolute()
  name = DISPLAY_NAMES[dataset]
  if not root.is_dir():
    raise DatasetNotFoundError(
      f"{name} root folder not found: {root}. {_EXPECTED_LAYOUTS[dataset]} {_help(dataset)}")
  for file_name in files:
    if not (root / file_name).is_file():
      what = "id file" if file_name.endswith("_id.txt") else "index file"
      raise DatasetNotFoundError(
        f"{name} root {root} has no {what} {file_name} (looked for {root / file_name}). "
        f"{_EXPECTED_LAYOUTS[dataset]} {_help(dataset)}")
  for folder in folders:
    if not (root / folder).is_dir():
      what = "camera folder" if folder.split("/")[-1].startswith("cam") else "folder"
      raise DatasetNotFoundError(
        f"{name} root {root} has no {what} {folder} (looked for {root / folder}). "
        f"{_EXPECTED_LAYOUTS[dataset]} {_help(dataset)}")
  return root


# ----------------------------------------------------------------------------------------------
# SYSU-MM01.


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
  return _check_folders("sysu", root, [f"cam{camera}" for camera in SYSU_CAMERAS],
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
    for file_name in _list_images_in(person_dir):
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


# ----------------------------------------------------------------------------------------------
# RegDB.


def check_regdb_trial(trial: int) -> int:
  """`trial` if it is one of RegDB's splits 1..10.

  Raises:
    ValueError: naming `config.data.trial`.
  """
  if isinstance(trial, bool) or not isinstance(trial, int) or trial not in REGDB_TRIALS:
    raise ValueError(f"RegDB has trials (train/test splits) 1..10; config.data.trial={trial!r}.")
  return trial


def regdb_index_file(split: str, modality: Modality, trial: int) -> str:
  """Path of an index file below the root, e.g. "idx/train_visible_1.txt"."""
  modality_name = "visible" if modality == VISIBLE else "thermal"
  return f"idx/{split}_{modality_name}_{trial}.txt"


def check_regdb_root(root: str | pathlib.Path) -> pathlib.Path:
  """Checks that `root` looks like an unpacked RegDB download: the 40 index files.

  Image folders are checked through the index files (each listed image must exist).

  Returns:
    `root` as an absolute path.

  Raises:
    DatasetNotFoundError: naming the first missing file.
  """
  index_files = [regdb_index_file(split, modality, trial) for trial in REGDB_TRIALS
                 for split in ("train", "test") for modality in MODALITIES]
  return _check_folders("regdb", root, [], index_files)


def _regdb_records(root: pathlib.Path, split: str, modality: Modality,
                   trial: int) -> list[Record]:
  """Records of one RegDB index file, with the file's labels."""
  camera = REGDB_VISIBLE_CAMERA if modality == VISIBLE else REGDB_THERMAL_CAMERA
  return _records_from_index(root, root / regdb_index_file(split, modality, trial), "regdb",
                             modality, camera_of_entry=lambda entry, where: camera,
                             label_of_entry=lambda entry: entry.label)


def regdb_train_records(root: str | pathlib.Path,
                        trial: int) -> tuple[list[Record], list[Record]]:
  """The training split of RegDB trial `trial`, as the AGW reference loads it.

  `idx/train_visible_{t}.txt` and `idx/train_thermal_{t}.txt` in file order
  (`data_loader.py:38-63`); labels are the index files' labels, which must be 0..C-1 in both
  modalities (206 ids on the real data). Cameras: 1 visible, 2 thermal.

  Args:
    root: the dataset root.
    trial: 1..10.

  Returns:
    (visible_records, thermal_records); thermal records have modality "infrared".

  Raises:
    ValueError: a trial outside 1..10.
    DatasetNotFoundError: a missing index file or listed image.
    DatasetIntegrityError: malformed index lines, or labels that are not 0..C-1 in both
      modalities with one person per label.
  """
  check_regdb_trial(trial)
  root = check_regdb_root(root)
  visible = _regdb_records(root, "train", VISIBLE, trial)
  thermal = _regdb_records(root, "train", INFRARED, trial)
  _check_training_labels("regdb", root, visible, thermal,
                         f"{regdb_index_file('train', VISIBLE, trial)} and "
                         f"{regdb_index_file('train', INFRARED, trial)}")
  return visible, thermal


def regdb_test_records(root: str | pathlib.Path, trial: int) -> list[Record]:
  """The test split of RegDB trial `trial`: the visible list, then the thermal list.

  File order of `idx/test_visible_{t}.txt` and `idx/test_thermal_{t}.txt` (queries and gallery
  of the RegDB protocol, spec §7.5), label -1. The reference compares the index files' labels;
  here the person id is the image's person folder, and each test label must name one folder
  (checked), so the two are interchangeable. Cameras: 1 visible, 2 thermal.

  Raises:
    ValueError, DatasetNotFoundError, DatasetIntegrityError: as `regdb_train_records`; also
      when a person is in both the trial's training and test lists.
  """
  check_regdb_trial(trial)
  root = check_regdb_root(root)
  sources = (f"{regdb_index_file('test', VISIBLE, trial)} and "
             f"{regdb_index_file('test', INFRARED, trial)}")
  labelled = [record for modality in MODALITIES
              for record in _regdb_records(root, "test", modality, trial)]
  _check_one_person_per_label("regdb", root, labelled, sources)
  records = [dataclasses.replace(record, label=NO_LABEL) for record in labelled]
  visible_train, thermal_train = regdb_train_records(root, trial)
  _check_disjoint_people("regdb", root, visible_train + thermal_train, records,
                         f"trial {trial} index files")
  return records


# ----------------------------------------------------------------------------------------------
# LLCM.

# Camera token of an LLCM file name, e.g. "0001_c01_s185535_f7010_nir.jpg" -> 1.
_LLCM_CAMERA_IN_NAME = re.compile(r"(?:^|_)c(\d+)(?=_|\.)")

LLCM_TRAIN_INDEX_FILES = {VISIBLE: "idx/train_vis.txt", INFRARED: "idx/train_nir.txt"}
LLCM_TEST_ID_FILE = "idx/test_id.txt"
LLCM_TEST_FOLDERS = {VISIBLE: "test_vis", INFRARED: "test_nir"}
LLCM_TEST_CAMERAS = {VISIBLE: LLCM_VISIBLE_TEST_CAMERAS, INFRARED: LLCM_INFRARED_TEST_CAMERAS}


def check_llcm_root(root: str | pathlib.Path) -> pathlib.Path:
  """Checks that `root` looks like an unpacked LLCM download.

  Checks the index and id files and the test camera folders; training images are checked
  through the index files (each listed image must exist).

  Returns:
    `root` as an absolute path.

  Raises:
    DatasetNotFoundError: naming the first missing file or folder.
  """
  folders = [f"{LLCM_TEST_FOLDERS[modality]}/cam{camera}"
             for modality in MODALITIES for camera in LLCM_TEST_CAMERAS[modality]]
  return _check_folders("llcm", root, folders,
                        [*LLCM_TRAIN_INDEX_FILES.values(), LLCM_TEST_ID_FILE])


def llcm_camera_of_file_name(file_name: str) -> int | None:
  """The camera of an LLCM file name ("0001_c01_s185535_f7010_nir.jpg" -> 1), or None."""
  match = _LLCM_CAMERA_IN_NAME.search(file_name)
  return int(match.group(1)) if match else None


def _llcm_train_camera(entry: IndexEntry, where: str) -> int:
  """The camera of a training image: the `_c<kk>_` token of its file name.

  The AGW reference's LLCM loader assigns training images no camera; the file names carry it
  (e.g. "nir/0001/0001_c01_s185535_f7010_nir.jpg" is camera 1).
  """
  camera = llcm_camera_of_file_name(entry.relative_path.split("/")[-1])
  if camera not in LLCM_CAMERAS:
    raise DatasetIntegrityError(
      f"{where}: cannot read a camera 1..9 from the file name of {entry.relative_path} "
      "(expected a '_c<kk>_' part, e.g. '0001_c01_s185535_f7010_vis.jpg').")
  return camera


def llcm_train_records(root: str | pathlib.Path) -> tuple[list[Record], list[Record]]:
  """The LLCM training split as the LLCM fork of AGW loads it (`AGW/data_loader.py:89-140`).

  `idx/train_vis.txt` and `idx/train_nir.txt` in file order; labels are the index files'
  labels, which must be 0..C-1 in both modalities (713 ids on the real data). Person id = the
  image's person folder; camera = the `_c<kk>_` part of its file name.

  Returns:
    (visible_records, infrared_records).

  Raises:
    DatasetNotFoundError: a missing index file or listed image.
    DatasetIntegrityError: malformed lines, file names without a camera, labels that are not
      0..C-1 in both modalities with one person per label, or a training person in
      `idx/test_id.txt`.
  """
  root = check_llcm_root(root)
  by_modality = {
    modality: _records_from_index(root, root / LLCM_TRAIN_INDEX_FILES[modality], "llcm",
                                  modality, camera_of_entry=_llcm_train_camera,
                                  label_of_entry=lambda entry: entry.label)
    for modality in MODALITIES}
  visible, infrared = by_modality[VISIBLE], by_modality[INFRARED]
  sources = f"{LLCM_TRAIN_INDEX_FILES[VISIBLE]} and {LLCM_TRAIN_INDEX_FILES[INFRARED]}"
  _check_training_labels("llcm", root, visible, infrared, sources)
  test_ids = set(read_id_file(root / LLCM_TEST_ID_FILE, "llcm"))
  leaked = {record.person_id for record in visible + infrared} & test_ids
  if leaked:
    raise DatasetIntegrityError(
      f"LLCM {sources} in {root}: person ids {_few(leaked)} are training ids and also listed "
      f"in {LLCM_TEST_ID_FILE}; the splits must be disjoint.")
  return visible, infrared


def llcm_test_records(root: str | pathlib.Path) -> list[Record]:
  """The LLCM test split: every visible image, then every infrared image, of the test ids.

  Per modality in the reference's order (`AGW/data_manager.py:85-90, 118-123`): ids of
  `idx/test_id.txt` ascending, then camera (visible cam1..cam9, infrared cam1, cam2,
  cam4..cam9), then sorted file names (`*.jpg`). Camera and person id come from the folders
  `test_vis/cam<k>/<person_id:04d>/`, label -1. Camera numbers are shared by the modalities.

  Raises:
    DatasetNotFoundError: a missing id file or camera folder.
    DatasetIntegrityError: a malformed or duplicated id list.
  """
  root = check_llcm_root(root)
  test_ids = read_id_file(root / LLCM_TEST_ID_FILE, "llcm")
  if len(set(test_ids)) != len(test_ids):
    duplicated = {i for i in test_ids if test_ids.count(i) > 1}
    raise DatasetIntegrityError(
      f"LLCM id file {root / LLCM_TEST_ID_FILE} lists ids {_few(duplicated)} more than once.")
  records = []
  for modality in MODALITIES:
    for person_id in sorted(test_ids):
      for camera in LLCM_TEST_CAMERAS[modality]:
        relative_dir = f"{LLCM_TEST_FOLDERS[modality]}/cam{camera}/{person_id:04d}"
        for file_name in _list_images_in(root / relative_dir):
          records.append(Record(path=str(root / relative_dir / file_name),
                                relative_path=f"{relative_dir}/{file_name}",
                                person_id=person_id, camera=camera, modality=modality,
                                label=NO_LABEL))
  return records


# ----------------------------------------------------------------------------------------------
# Counting.


def count_by(records: Sequence[Record], key: str) -> dict:
  """Number of records per value of attribute `key` (e.g. "camera"), keys sorted."""
  counts: dict = {}
  for record in records:
    value = getattr(record, key)
    counts[value] = counts.get(value, 0) + 1
  return dict(sorted(counts.items()))


def count_split(person_ids: Iterable[int], cameras: Iterable[int],
                modalities: Iterable[str]) -> dict:
  """The structure of one split, in the form integrity checks compare (JSON-ready).

  Args:
    person_ids, cameras, modalities: one entry per image ("visible" / "infrared").

  Returns:
    {"ids": number of distinct person ids, "images": {modality: n}, "cameras": {modality:
    {str(camera): n}}}; both modalities are always present, cameras sorted.
  """
  people = set()
  images = {modality: 0 for modality in MODALITIES}
  per_camera: dict[str, dict[int, int]] = {modality: {} for modality in MODALITIES}
  for person_id, camera, modality in zip(person_ids, cameras, modalities, strict=True):
    people.add(int(person_id))
    images[modality] += 1
    per_camera[modality][int(camera)] = per_camera[modality].get(int(camera), 0) + 1
  return {"ids": len(people), "images": images,
          "cameras": {modality: {str(camera): n for camera, n in sorted(counts.items())}
                      for modality, counts in per_camera.items()}}


def count_records(records: Sequence[Record]) -> dict:
  """`count_split` of a list of records."""
  return count_split([r.person_id for r in records], [r.camera for r in records],
                     [r.modality for r in records])
