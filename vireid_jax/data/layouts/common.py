"""What every raw layout shares: records, errors, id/index file readers, checks, counting.

`Record` is one image of a raw dataset; `DatasetError` and its subclasses
(`DatasetNotFoundError`, `DatasetIntegrityError`) are what a missing or malformed download
raises. `read_id_file` reads SYSU-MM01's and LLCM's id files, `read_index_file` RegDB's and
LLCM's index files ("<relative path> <label>" lines); the folder, label and split checks serve
the per-dataset modules (`sysu_mm01`, `regdb`, `llcm`); `count_split` / `count_records` give a
split's structure in the form integrity checks compare. Modality names ("visible", "infrared")
and the dataset names used in messages are defined here. Pathlib only: no TensorFlow, no NumPy.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterable, Sequence
from typing import Literal

from vireid_jax.data.splits import MODALITY_NAMES
from vireid_jax.data.splits import NO_LABEL  # noqa: F401 (re-exported: records' label)

# Layouts speak of modalities by name: the names of `vireid_jax.data.splits`.
VISIBLE, INFRARED = MODALITY_NAMES
MODALITIES = MODALITY_NAMES
Modality = Literal["visible", "infrared"]

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


def records_from_index(root: pathlib.Path, index_path: pathlib.Path, dataset: str,
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


def list_images_in(folder: pathlib.Path) -> list[str]:
  """Sorted `*.jpg` file names of a folder; none if it does not exist.

  Only `*.jpg` files are listed, so stray files (e.g. `Thumbs.db`) are ignored rather than
  decoded.
  """
  if not folder.is_dir():
    return []
  return sorted(entry.name for entry in folder.iterdir()
                if entry.name.endswith(".jpg") and entry.is_file())


def check_training_labels(dataset: str, root: pathlib.Path, visible: Sequence[Record],
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
      f"{len(all_labels)} distinct labels, missing {few(expected - all_labels)}, unexpected "
      f"{few(all_labels - expected)}.")
  if visible_labels != infrared_labels:
    raise DatasetIntegrityError(
      f"{name} {sources} in {root}: every training label must have images in both "
      f"modalities; only visible: {few(visible_labels - infrared_labels)}, only infrared: "
      f"{few(infrared_labels - visible_labels)}.")
  check_one_person_per_label(dataset, root, list(visible) + list(infrared), sources)


def check_one_person_per_label(dataset: str, root: pathlib.Path, records: Sequence[Record],
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


def few(values: Iterable[int], limit: int = 8) -> str:
  """`values` sorted, for a message: "[1, 2, 3]", at most `limit` of them ("[1, …]"), or "none"."""
  values = sorted(values)
  shown = ", ".join(str(v) for v in values[:limit])
  return f"[{shown}{', …' if len(values) > limit else ''}]" if values else "none"


def check_disjoint_people(dataset: str, root: pathlib.Path, train: Sequence[Record],
                          test: Sequence[Record], sources: str) -> None:
  """No person may be in both the training and the test split (a leak)."""
  shared = {r.person_id for r in train} & {r.person_id for r in test}
  if shared:
    raise DatasetIntegrityError(
      f"{DISPLAY_NAMES[dataset]} {sources} in {root}: person ids {few(shared)} are in both "
      "the training and the test split; the splits must be disjoint.")


def check_folders(dataset: str, root: pathlib.Path, folders: Iterable[str],
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
