"""Integrity checks: a dataset's images against the counts it is known to have.

A real dataset is compared with the published counts (spec baseline_data_eval.md §1): identities
per split, images per modality and, where known, images per camera. A synthetic dataset cannot
have those counts; its generator writes the counts it planned into its manifest
(`synthetic.json`), and the same comparison runs against them. The builders check the records
they are about to write; `vireid_jax.data.datasets.load` checks the decoded splits again, which
catches TFRecords left over from another raw folder.

Counts are plain JSON-ready dicts in `layouts.count_split` form::

  {"ids": 395, "images": {"visible": 22258, "infrared": 11909},
   "cameras": {"visible": {"1": 4721, ...}, "infrared": {"3": 7909, "6": 4000}}}

An expected-counts dict may leave out "cameras" (or "images"); only the keys it has are compared.

Counts cannot tell two folders of the same dataset apart: an IR→VIS translated copy of SYSU-MM01
(DJANet's data, `vireid_jax.data.translation`) has exactly the original's counts. So the
builders also record which raw folder they wrote TFRecords from (`raw_folder_record`: its path
and a content fingerprint, `raw_fingerprint`), and `check_raw_folder` refuses TFRecords whose
fingerprint is not that of the configured folder. The fingerprint, not the path, decides: a
dataset folder moved or copied elsewhere keeps its TFRecords, and a folder whose images were
replaced under the same path does not.

TensorFlow-free, like `layouts` and `synthetic`.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from collections.abc import Mapping, Sequence

from vireid_jax.data import layouts
from vireid_jax.data import synthetic

# Published counts of the real datasets, per split ("train" = what the reference trains on).
REAL_COUNTS = {
  # Spec §1.1.3, derived from the official split files (`rand_perm_cam.mat` gives the images of
  # every (camera, id)); train = train ∪ val ids, as AGW trains.
  "sysu": {
    "train": {"ids": 395, "images": {"visible": 22258, "infrared": 11909},
              "cameras": {"visible": {"1": 4721, "2": 5753, "4": 5811, "5": 5973},
                          "infrared": {"3": 7909, "6": 4000}}},
    "test": {"ids": 96, "images": {"visible": 6775, "infrared": 3803},
             "cameras": {"visible": {"1": 1374, "2": 1565, "4": 1918, "5": 1918},
                         "infrared": {"3": 1883, "6": 1920}}},
  },
  # Spec §1.2: 412 ids with 10 visible + 10 thermal images each, split 206 / 206 by every
  # trial; visible = camera 1, thermal = camera 2.
  "regdb": {
    split: {"ids": 206, "images": {"visible": 2060, "infrared": 2060},
            "cameras": {"visible": {"1": 2060}, "infrared": {"2": 2060}}}
    for split in ("train", "test")},
  # Spec §1.3: 713 training ids (the reference's n_class), 1,064 - 713 = 351 test ids; image
  # counts as the DEEN paper states them (they add up to the README's 46,767), per camera
  # unknown.
  "llcm": {
    "train": {"ids": 713, "images": {"visible": 16946, "infrared": 13975}},
    "test": {"ids": 351, "images": {"visible": 8680, "infrared": 7166}},
  },
}
_REAL_SOURCES = {
  "sysu": "the counts of spec baseline_data_eval.md §1.1.3 (official split files)",
  "regdb": "the counts of spec baseline_data_eval.md §1.2 (RegDB paper)",
  "llcm": "the counts of spec baseline_data_eval.md §1.3 (DEEN paper, CVPR'23; not yet checked "
          "against a download)",
}


def expected_counts(dataset: str, root: str | pathlib.Path) -> tuple[dict, str]:
  """The counts `root` must have, and where they come from (for messages).

  A folder with a synthetic manifest is held to the counts its generator planned (written into
  the manifest; recomputed from the recorded options for manifests written before they were);
  any other folder to the real dataset's published counts.

  Args:
    dataset: "sysu", "regdb" or "llcm".
    root: the raw dataset folder.

  Returns:
    ({"train": counts, "test": counts}, source description).

  Raises:
    layouts.DatasetIntegrityError: the manifest is unreadable or describes another layout.
  """
  info_path = pathlib.Path(root) / synthetic.INFO_FILE_NAME
  if not info_path.is_file():
    return REAL_COUNTS[dataset], _REAL_SOURCES[dataset]
  try:
    info = json.loads(info_path.read_text(encoding="utf-8"))
  except (OSError, ValueError) as error:
    raise layouts.DatasetIntegrityError(
      f"Cannot read the synthetic dataset manifest {info_path}: {error}. Delete {root} to "
      "regenerate it.") from error
  if info.get("layout") != dataset:
    raise layouts.DatasetIntegrityError(
      f"{info_path} describes a synthetic {info.get('layout')!r} dataset, but it is being read "
      f"as {layouts.DISPLAY_NAMES[dataset]}; point config.data.root at a {dataset!r} folder.")
  counts = info.get("expected_counts") or synthetic.expected_counts(info)
  return counts, f"the counts its generator planned ({info_path})"


def compare_counts(expected: Mapping, found: Mapping, split: str) -> list[str]:
  """Differences between one split's expected and found counts, one readable line each.

  Only the keys `expected` has are compared ("ids", "images", "cameras"); a modality or camera
  missing on one side counts as 0, so an unexpected camera reads "expected 0".

  Returns:
    e.g. ["train: infrared images of camera 3: expected 7909, found 7908"]; empty if equal.
  """
  differences = []

  def compare(what, expected_value, found_value):
    if expected_value != found_value:
      differences.append(f"{split}: {what}: expected {expected_value}, found {found_value}")

  if "ids" in expected:
    compare("identities", expected["ids"], found.get("ids", 0))
  for modality, number in expected.get("images", {}).items():
    compare(f"{modality} images", number, found.get("images", {}).get(modality, 0))
  if "cameras" in expected:
    for modality in layouts.MODALITIES:
      expected_cameras = expected["cameras"].get(modality, {})
      found_cameras = found.get("cameras", {}).get(modality, {})
      for camera in sorted({*expected_cameras, *found_cameras}, key=int):
        compare(f"{modality} images of camera {camera}", expected_cameras.get(camera, 0),
                found_cameras.get(camera, 0))
  return differences


def check_counts(dataset: str, root: str | pathlib.Path, found: Mapping[str, Mapping], *,
                 what: str = "raw folder", hint: str | None = None) -> None:
  """Raises unless each split's found counts match the expected ones.

  Args:
    dataset: "sysu", "regdb" or "llcm".
    root: the raw dataset folder: where the expected counts come from (`expected_counts`).
    found: {split: counts} of the images found.
    what: what was counted, for the message ("raw folder", "TFRecords in <dir>").
    hint: what to do, for the message; None = re-extract / regenerate advice.

  Raises:
    layouts.DatasetIntegrityError: naming every split and count that differs, with the
      expected and the found value.
  """
  expected, source = expected_counts(dataset, root)
  differences = []
  for split, split_found in found.items():
    differences += compare_counts(expected[split], split_found, split)
  if not differences:
    return
  if hint is None:
    is_synthetic = (pathlib.Path(root) / synthetic.INFO_FILE_NAME).is_file()
    hint = (f"Delete {root} to regenerate it." if is_synthetic else
            "The download may be incomplete or another version: re-extract it (data/README.md). "
            "If you are sure it is complete and the published counts are wrong, set "
            "config.data.check_counts=False to skip this comparison.")
  listed = "\n  ".join(differences)
  raise layouts.DatasetIntegrityError(
    f"{layouts.DISPLAY_NAMES[dataset]} {what} at {root} does not have {source}:\n  {listed}\n"
    f"{hint}")


# ----------------------------------------------------------------------------------------------
# Which raw folder TFRecords were written from.

# The key of the builders' `DatasetInfo.metadata` (TFDS's metadata.json beside the TFRecords)
# that holds `raw_folder_record`.
RAW_FOLDER_KEY = "raw_folder"
# Files whose full bytes enter the fingerprint, per split and modality, evenly spaced.
FINGERPRINT_SAMPLES = 8


def raw_fingerprint(splits: Mapping[str, Sequence[layouts.Record]]) -> str:
  """A fingerprint of the images a build writes, cheap enough to recompute at every load.

  SHA-256 over, per split in order, every record (relative path, person id, camera, modality,
  label and file size, in record order) and the full bytes of `FINGERPRINT_SAMPLES` files per
  modality, evenly spaced in the list. Sizes and order cost one `stat` per image; the sampled
  contents tell apart folders whose re-encoded images happen to keep every size (a translated
  copy changes every infrared image, so every infrared sample). Neither the root path nor
  timestamps enter it, so a moved or copied folder keeps its fingerprint.

  Args:
    splits: {split: records}, as a builder's `split_records` gives them.

  Returns:
    64 hex digits.
  """
  digest = hashlib.sha256()
  for split, records in splits.items():
    for record in records:
      digest.update(f"{split}\t{record.relative_path}\t{record.person_id}\t{record.camera}\t"
                    f"{record.modality}\t{record.label}\t{os.stat(record.path).st_size}\n"
                    .encode("utf-8"))
    for modality in layouts.MODALITIES:
      of_modality = [record for record in records if record.modality == modality]
      count = min(len(of_modality), FINGERPRINT_SAMPLES)
      positions = sorted({i * (len(of_modality) - 1) // max(count - 1, 1) for i in range(count)})
      for position in positions:
        digest.update(hashlib.sha256(pathlib.Path(of_modality[position].path).read_bytes())
                      .digest())
  return digest.hexdigest()


def raw_folder_record(root: str | pathlib.Path,
                      splits: Mapping[str, Sequence[layouts.Record]]) -> dict:
  """What a build records about its raw folder: {"root": absolute path, "fingerprint": ...}."""
  return {"root": str(pathlib.Path(root).absolute()), "fingerprint": raw_fingerprint(splits)}


def check_raw_folder(recorded: Mapping | None, root: str | pathlib.Path,
                     splits: Mapping[str, Sequence[layouts.Record]], tfds_dir: str, *,
                     root_field: str = "config.data.root",
                     tfds_dir_field: str = "config.data.tfds_dir") -> bool:
  """Refuses TFRecords written from another raw folder than `root`.

  The fingerprints decide (`raw_fingerprint`): equal fingerprints accept TFRecords recorded
  under another path (the folder was moved or copied), different ones refuse them even under
  the same path (the folder's images were replaced).

  Args:
    recorded: the TFRecords' `raw_folder_record`, or None for TFRecords written before builds
      recorded it.
    root: the configured raw folder.
    splits: {split: records} of `root`, as its builder enumerates them.
    tfds_dir: the TFRecords' folder, for the message.
    root_field, tfds_dir_field: the config fields that name `root` and the TFRecords' folder,
      for the message.

  Returns:
    True if the TFRecords recorded their raw folder (and it is `root`'s content); False for
    TFRecords without a record, which only the counts check can judge.

  Raises:
    layouts.DatasetIntegrityError (a ValueError): the fingerprints differ; the message names
      both folders and the two ways out.
  """
  if not recorded or "fingerprint" not in recorded:
    return False
  if recorded["fingerprint"] == raw_fingerprint(splits):
    return True
  root = str(pathlib.Path(root).absolute())
  recorded_root = recorded.get("root", "<unknown>")
  if recorded_root == root:
    what = (f"were written from {root}, whose images have changed since (another dataset "
            "unpacked or generated into the same folder?)")
  else:
    what = (f"were written from the raw folder {recorded_root}, but {root_field} is {root}, "
            "which holds other images")
  raise layouts.DatasetIntegrityError(
    f"The TFRecords in {tfds_dir} {what}. Equal image counts do not make two folders the same "
    "(an IR→VIS translated copy of SYSU-MM01 has the original's counts), so they are not used. "
    f"Set {tfds_dir_field} to a folder of its own for {root}, or delete {tfds_dir} to rebuild "
    f"the TFRecords from {root}.")
