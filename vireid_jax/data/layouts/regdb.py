"""The RegDB layout: trials, index files, and the training and test records of a trial.

Images listed by index files, 10 random train/test splits ("trials")::

  <root>/
    Visible/<person>/<file>.bmp   Thermal/<person>/<file>.bmp
    idx/{train,test}_{visible,thermal}_{t}.txt    t = 1..10; lines "<relative path> <label>"

Records follow AGW's `data_loader.py`; cameras are 1 for every visible and 2 for every thermal
image (the AGW RegDB protocol's "query cam 1, gallery cam 2").
"""

from __future__ import annotations

import dataclasses
import pathlib

from vireid_jax.data.layouts.common import INFRARED
from vireid_jax.data.layouts.common import MODALITIES
from vireid_jax.data.layouts.common import NO_LABEL
from vireid_jax.data.layouts.common import VISIBLE
from vireid_jax.data.layouts.common import Modality
from vireid_jax.data.layouts.common import Record
from vireid_jax.data.layouts.common import check_disjoint_people
from vireid_jax.data.layouts.common import check_folders
from vireid_jax.data.layouts.common import check_one_person_per_label
from vireid_jax.data.layouts.common import check_training_labels
from vireid_jax.data.layouts.common import records_from_index

# RegDB (spec §1.2): one co-located visible/thermal camera pair; ten train/test splits of the
# 412 ids, each with its own index files. Camera numbers as the AGW RegDB protocol uses them.
REGDB_TRIALS = tuple(range(1, 11))
REGDB_VISIBLE_CAMERA = 1
REGDB_THERMAL_CAMERA = 2


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
  return check_folders("regdb", root, [], index_files)


def _regdb_records(root: pathlib.Path, split: str, modality: Modality,
                   trial: int) -> list[Record]:
  """Records of one RegDB index file, with the file's labels."""
  camera = REGDB_VISIBLE_CAMERA if modality == VISIBLE else REGDB_THERMAL_CAMERA
  return records_from_index(root, root / regdb_index_file(split, modality, trial), "regdb",
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
  check_training_labels("regdb", root, visible, thermal,
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
  check_one_person_per_label("regdb", root, labelled, sources)
  records = [dataclasses.replace(record, label=NO_LABEL) for record in labelled]
  visible_train, thermal_train = regdb_train_records(root, trial)
  check_disjoint_people("regdb", root, visible_train + thermal_train, records,
                        f"trial {trial} index files")
  return records
