"""The LLCM layout: cameras, index and id files, and its training and test records.

Training images listed by index files, test images in camera folders::

  <root>/
    idx/train_vis.txt  idx/train_nir.txt     lines "<relative path> <label>"
    idx/test_id.txt                          one line of comma-separated test ids
    test_vis/cam1 … cam9/<person_id:04d>/<file>.jpg
    test_nir/cam1, cam2, cam4 … cam9/<person_id:04d>/<file>.jpg

Records follow the LLCM fork of AGW; cameras come from the `cam<k>` folder (training images:
the `_c<kk>_` part of the file name) and name the same physical camera in both modalities.
"""

from __future__ import annotations

import pathlib
import re

from vireid_jax.data.layouts.common import INFRARED
from vireid_jax.data.layouts.common import MODALITIES
from vireid_jax.data.layouts.common import NO_LABEL
from vireid_jax.data.layouts.common import VISIBLE
from vireid_jax.data.layouts.common import DatasetIntegrityError
from vireid_jax.data.layouts.common import IndexEntry
from vireid_jax.data.layouts.common import Record
from vireid_jax.data.layouts.common import check_folders
from vireid_jax.data.layouts.common import check_training_labels
from vireid_jax.data.layouts.common import few
from vireid_jax.data.layouts.common import list_images_in
from vireid_jax.data.layouts.common import read_id_file
from vireid_jax.data.layouts.common import records_from_index

# LLCM (spec §1.3): nine cameras, each filming in both modalities, so a camera number names the
# same physical camera in both. The reference's NIR test set lists no cam3.
LLCM_CAMERAS = (1, 2, 3, 4, 5, 6, 7, 8, 9)
LLCM_VISIBLE_TEST_CAMERAS = LLCM_CAMERAS
LLCM_INFRARED_TEST_CAMERAS = (1, 2, 4, 5, 6, 7, 8, 9)

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
  return check_folders("llcm", root, folders,
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
    modality: records_from_index(root, root / LLCM_TRAIN_INDEX_FILES[modality], "llcm",
                                 modality, camera_of_entry=_llcm_train_camera,
                                 label_of_entry=lambda entry: entry.label)
    for modality in MODALITIES}
  visible, infrared = by_modality[VISIBLE], by_modality[INFRARED]
  sources = f"{LLCM_TRAIN_INDEX_FILES[VISIBLE]} and {LLCM_TRAIN_INDEX_FILES[INFRARED]}"
  check_training_labels("llcm", root, visible, infrared, sources)
  test_ids = set(read_id_file(root / LLCM_TEST_ID_FILE, "llcm"))
  leaked = {record.person_id for record in visible + infrared} & test_ids
  if leaked:
    raise DatasetIntegrityError(
      f"LLCM {sources} in {root}: person ids {few(leaked)} are training ids and also listed "
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
      f"LLCM id file {root / LLCM_TEST_ID_FILE} lists ids {few(duplicated)} more than once.")
  records = []
  for modality in MODALITIES:
    for person_id in sorted(test_ids):
      for camera in LLCM_TEST_CAMERAS[modality]:
        relative_dir = f"{LLCM_TEST_FOLDERS[modality]}/cam{camera}/{person_id:04d}"
        for file_name in list_images_in(root / relative_dir):
          records.append(Record(path=str(root / relative_dir / file_name),
                                relative_path=f"{relative_dir}/{file_name}",
                                person_id=person_id, camera=camera, modality=modality,
                                label=NO_LABEL))
  return records
