"""Integrity: missing folders and files, corrupt images, wrong counts, interrupted builds.

Every case runs the real path a user runs (`datasets.build` / `datasets.load`) on a tiny
synthetic dataset of each layout, damaged on purpose, and checks that the error names the file
and what was expected, and that nothing half-built is ever loaded as complete.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import ml_collections
import numpy as np
import pytest

from vireid_jax.data import datasets
from vireid_jax.data import layouts
from vireid_jax.data import synthetic
from vireid_jax.data import translation
from vireid_jax.data.builders import common
from vireid_jax.data.builders import integrity

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SYSU_EVAL_DIR = REPO_ROOT.parent / "shared" / "data" / "sysu_mm01_eval"
HEIGHT, WIDTH = 32, 16
TINY = {
  "sysu": dict(seed=1, num_train_ids=4, num_val_ids=1, num_test_ids=3,
               num_single_modality_ids=0, images_per_camera=(1, 2), image_height=32,
               image_width=16),
  "regdb": dict(seed=1, num_ids=6, images_per_id=2, image_height=32, image_width=16),
  "llcm": dict(seed=1, num_train_ids=4, num_test_ids=3, images_per_camera=(1, 2),
               image_height=32, image_width=16),
}
# The TFDS folder of each dataset's configured build (RegDB: trial 3).
CONFIG_NAMES = {"sysu": f"{HEIGHT}x{WIDTH}", "regdb": f"trial3_{HEIGHT}x{WIDTH}",
                "llcm": f"{HEIGHT}x{WIDTH}"}
BUILDER_NAMES = {"sysu": "sysu_mm01", "regdb": "regdb", "llcm": "llcm"}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
  """One tiny generated dataset per layout; tests damage copies of them."""
  folder = tmp_path_factory.mktemp("pristine")
  return {dataset: synthetic.generate(dataset, folder / dataset, **options)
          for dataset, options in TINY.items()}


def copy_of(pristine, dataset, tmp_path) -> pathlib.Path:
  return pathlib.Path(shutil.copytree(pristine[dataset], tmp_path / "raw" / dataset))


def data_config(dataset, root, tmp_path, **overrides):
  fields = dict(dataset=dataset, root=str(root), tfds_dir=str(tmp_path / "tfds"), synthetic={},
                trial=3, image_height=HEIGHT, image_width=WIDTH, check_counts=True)
  return ml_collections.ConfigDict({**fields, **overrides})


def version_dir(tmp_path, dataset) -> pathlib.Path:
  return tmp_path / "tfds" / BUILDER_NAMES[dataset] / CONFIG_NAMES[dataset] / "1.0.0"


def leftovers(tmp_path, dataset) -> list[str]:
  """Everything TFDS left in the dataset's config folder."""
  folder = version_dir(tmp_path, dataset).parent
  return sorted(os.listdir(folder)) if folder.is_dir() else []


def train_and_test_records(dataset, root):
  if dataset == "sysu":
    visible, infrared = layouts.sysu_train_records(root)
    return visible + infrared, layouts.sysu_test_records(root)
  if dataset == "regdb":
    visible, infrared = layouts.regdb_train_records(root, 3)
    return visible + infrared, layouts.regdb_test_records(root, 3)
  visible, infrared = layouts.llcm_train_records(root)
  return visible + infrared, layouts.llcm_test_records(root)


# ----------------------------------------------------------------------------------------------
# The known counts.


def test_sysu_test_counts_match_the_official_split_files():
  if not SYSU_EVAL_DIR.is_dir():
    pytest.skip(f"official SYSU-MM01 split files not found at {SYSU_EVAL_DIR} (they live in "
                "shared/data beside the repository, not in it)")
  scipy_io = pytest.importorskip("scipy.io", reason="scipy is needed to read the .mat files")
  test_ids = {int(i) for i in scipy_io.loadmat(SYSU_EVAL_DIR / "test_id.mat")["id"].ravel()}
  cells = scipy_io.loadmat(SYSU_EVAL_DIR / "rand_perm_cam.mat")["rand_perm_cam"]
  # n = number of images of (camera, person): columns of that cell's 10 x n permutation.
  per_camera = {str(camera): sum(cell[0].shape[1]
                                 for person_id, cell in enumerate(cells[camera - 1, 0], start=1)
                                 if person_id in test_ids)
                for camera in layouts.SYSU_CAMERAS}
  expected = integrity.REAL_COUNTS["sysu"]["test"]
  assert expected["ids"] == len(test_ids)
  for modality, cameras in (("visible", (1, 2, 4, 5)), ("infrared", (3, 6))):
    assert expected["cameras"][modality] == {str(c): per_camera[str(c)] for c in cameras}
    assert expected["images"][modality] == sum(per_camera[str(c)] for c in cameras)


def test_real_counts_add_up():
  for dataset, splits in integrity.REAL_COUNTS.items():
    for counts in splits.values():
      if "cameras" in counts:
        for modality, per_camera in counts["cameras"].items():
          assert sum(per_camera.values()) == counts["images"][modality], dataset
  sysu = integrity.REAL_COUNTS["sysu"]
  assert sysu["train"]["images"] == {"visible": 22258, "infrared": 11909}  # spec §1.1.3
  # LLCM: 46,767 images of 1,064 ids (README); 713 training classes (n_class).
  llcm = integrity.REAL_COUNTS["llcm"]
  assert sum(sum(s["images"].values()) for s in llcm.values()) == 46767
  assert llcm["train"]["ids"] + llcm["test"]["ids"] == 1064 and llcm["train"]["ids"] == 713
  regdb = integrity.REAL_COUNTS["regdb"]
  assert all(s["ids"] * 10 == s["images"]["visible"] == s["images"]["infrared"]
             for s in regdb.values()) and regdb["train"]["ids"] * 2 == 412


def test_compare_counts_names_each_difference():
  expected = {"ids": 3, "images": {"visible": 5, "infrared": 2},
              "cameras": {"visible": {"1": 5}, "infrared": {"3": 2}}}
  found = {"ids": 2, "images": {"visible": 5, "infrared": 2},
           "cameras": {"visible": {"1": 4, "2": 1}, "infrared": {"3": 2}}}
  assert integrity.compare_counts(expected, found, "train") == [
    "train: identities: expected 3, found 2",
    "train: visible images of camera 1: expected 5, found 4",
    "train: visible images of camera 2: expected 0, found 1"]
  # Keys the expectation leaves out (LLCM has no per-camera counts) are not compared.
  del expected["cameras"]
  assert integrity.compare_counts(expected, found, "test") == [
    "test: identities: expected 3, found 2"]


def test_old_manifest_without_counts_gets_them_from_its_options(pristine, tmp_path):
  root = copy_of(pristine, "sysu", tmp_path)
  info = json.loads((root / synthetic.INFO_FILE_NAME).read_text())
  written = info.pop("expected_counts")
  (root / synthetic.INFO_FILE_NAME).write_text(json.dumps(info))
  counts, source = integrity.expected_counts("sysu", root)
  assert counts == written and str(root / synthetic.INFO_FILE_NAME) in source
  train, test = train_and_test_records("sysu", root)
  assert counts == {"train": layouts.count_records(train), "test": layouts.count_records(test)}


# ----------------------------------------------------------------------------------------------
# Missing folders and files.


@pytest.mark.parametrize("dataset, synthetic_config", [
  ("sysu", "configs/synthetic.py"), ("regdb", "configs/synthetic_regdb.py"),
  ("llcm", "configs/synthetic_llcm.py")])
def test_missing_root_names_the_folder(tmp_path, dataset, synthetic_config):
  missing = tmp_path / "nowhere" / dataset
  with pytest.raises(layouts.DatasetNotFoundError) as error:
    datasets.build(data_config(dataset, missing, tmp_path))
  message = str(error.value)
  assert f"root folder not found: {missing}" in message
  assert "data/README.md" in message and synthetic_config in message
  assert not version_dir(tmp_path, dataset).exists()


@pytest.mark.parametrize("dataset, missing", [
  ("sysu", "exp/val_id.txt"), ("sysu", "cam5"), ("regdb", "idx/train_thermal_8.txt"),
  ("llcm", "idx/test_id.txt"), ("llcm", "idx/train_nir.txt"), ("llcm", "test_vis/cam4")])
def test_missing_split_or_index_file_names_it(pristine, tmp_path, dataset, missing):
  root = copy_of(pristine, dataset, tmp_path)
  path = root / missing
  shutil.rmtree(path) if path.is_dir() else path.unlink()
  with pytest.raises(layouts.DatasetNotFoundError) as error:
    datasets.build(data_config(dataset, root, tmp_path))
  assert f"{missing} (looked for {path})" in str(error.value)
  assert not version_dir(tmp_path, dataset).exists()


def test_missing_listed_image_names_index_line(pristine, tmp_path):
  root = copy_of(pristine, "llcm", tmp_path)
  first_line = (root / "idx" / "train_vis.txt").read_text().splitlines()[0]
  (root / first_line.split()[0]).unlink()
  with pytest.raises(layouts.DatasetNotFoundError) as error:
    datasets.build(data_config("llcm", root, tmp_path))
  assert "idx/train_vis.txt, line 1 lists " + first_line.split()[0] in str(error.value)


# ----------------------------------------------------------------------------------------------
# Corrupt images.


@pytest.mark.parametrize("dataset, damage", [
  ("sysu", "garbage"), ("sysu", "truncated"), ("regdb", "truncated"), ("regdb", "empty"),
  ("llcm", "garbage")])
def test_corrupt_image_stops_the_build_naming_the_file(pristine, tmp_path, dataset, damage):
  root = copy_of(pristine, dataset, tmp_path)
  train, _ = train_and_test_records(dataset, root)
  victim = pathlib.Path(train[len(train) // 2].path)
  content = victim.read_bytes()
  victim.write_bytes({"garbage": b"not an image at all" * 20,
                      "truncated": content[:len(content) // 2],
                      "empty": b""}[damage])
  with pytest.raises(layouts.DatasetIntegrityError) as error:
    datasets.load_dataset(data_config(dataset, root, tmp_path))
  assert isinstance(error.value, ValueError)
  assert f"Cannot decode image {victim}" in str(error.value)
  # Nothing complete, nothing half-built left behind.
  assert leftovers(tmp_path, dataset) == []


def test_load_resized_image_never_returns_a_blank_for_a_truncated_file(pristine, tmp_path):
  path = tmp_path / "half.jpg"
  content = next(pristine["sysu"].glob("cam1/*/*.jpg")).read_bytes()
  path.write_bytes(content[:len(content) * 3 // 4])
  with pytest.raises(ValueError, match=f"Cannot decode image {path}: image file is truncated"):
    common.load_resized_image(str(path), HEIGHT, WIDTH)


# ----------------------------------------------------------------------------------------------
# Wrong counts.


def expected_counts_of(root):
  return json.loads((root / synthetic.INFO_FILE_NAME).read_text())["expected_counts"]


def test_sysu_missing_image_is_a_wrong_count(pristine, tmp_path):
  root = copy_of(pristine, "sysu", tmp_path)
  expected = expected_counts_of(root)
  train, _ = train_and_test_records("sysu", root)
  # A visible image of a (camera, person) folder that keeps another image: ids do not change.
  victim = next(r for r in train if r.modality == "visible"
                and len(list(pathlib.Path(r.path).parent.iterdir())) > 1)
  pathlib.Path(victim.path).unlink()
  with pytest.raises(layouts.DatasetIntegrityError) as error:
    datasets.build(data_config("sysu", root, tmp_path))
  message = str(error.value)
  visible = expected["train"]["images"]["visible"]
  in_camera = expected["train"]["cameras"]["visible"][str(victim.camera)]
  assert f"SYSU-MM01 raw folder at {root}" in message
  assert f"train: visible images: expected {visible}, found {visible - 1}" in message
  assert (f"train: visible images of camera {victim.camera}: expected {in_camera}, found "
          f"{in_camera - 1}") in message
  assert "identities" not in message and "Delete" in message
  assert not version_dir(tmp_path, "sysu").exists()


def test_regdb_shortened_index_file_is_a_wrong_count(pristine, tmp_path):
  root = copy_of(pristine, "regdb", tmp_path)
  index = root / "idx" / "test_thermal_3.txt"
  index.write_text("".join(f"{line}\n" for line in index.read_text().splitlines()[:-1]))
  with pytest.raises(layouts.DatasetIntegrityError) as error:
    datasets.build(data_config("regdb", root, tmp_path))
  message = str(error.value)
  assert "test: infrared images: expected 6, found 5" in message  # 3 test ids x 2 images
  assert "test: infrared images of camera 2: expected 6, found 5" in message


def test_llcm_extra_image_is_a_wrong_count(pristine, tmp_path):
  root = copy_of(pristine, "llcm", tmp_path)
  expected = expected_counts_of(root)["test"]["images"]["infrared"]
  test_id = int((root / "idx" / "test_id.txt").read_text().split(",")[0])
  extra = root / "test_nir" / "cam9" / f"{test_id:04d}" / "extra.jpg"
  extra.parent.mkdir(parents=True, exist_ok=True)
  shutil.copy(next(root.glob("test_nir/cam*/*/*.jpg")), extra)
  with pytest.raises(layouts.DatasetIntegrityError,
                     match=f"test: infrared images: expected {expected}, found {expected + 1}"):
    datasets.build(data_config("llcm", root, tmp_path))


def test_folder_without_manifest_is_held_to_the_real_counts(pristine, tmp_path):
  root = copy_of(pristine, "sysu", tmp_path)
  (root / synthetic.INFO_FILE_NAME).unlink()
  train, test = train_and_test_records("sysu", root)
  with pytest.raises(layouts.DatasetIntegrityError) as error:
    datasets.build(data_config("sysu", root, tmp_path))
  message = str(error.value)
  assert "does not have the counts of spec baseline_data_eval.md §1.1.3" in message
  assert "train: identities: expected 395, found 5" in message  # 4 train + 1 val ids
  test_infrared = sum(r.modality == "infrared" for r in test)
  assert f"test: infrared images: expected 3803, found {test_infrared}" in message
  assert "config.data.check_counts=False" in message
  # The escape hatch for a complete download whose published counts are wrong.
  loaded_train, loaded_test = datasets.load_dataset(
    data_config("sysu", root, tmp_path, check_counts=False))
  assert (len(loaded_train), len(loaded_test)) == (len(train), len(test))


def test_stale_tfrecords_of_other_raw_data_are_refused(pristine, tmp_path):
  """Raw folder regenerated with other options, TFRecords of the old one left in tfds_dir."""
  root = tmp_path / "raw"
  options = dict(TINY["sysu"])
  datasets.load_dataset(data_config("sysu", root, tmp_path, synthetic=options))
  shutil.rmtree(root)
  options["num_test_ids"] = 2
  config = data_config("sysu", root, tmp_path, synthetic=options)
  # The TFRecords recorded the old folder's content.
  with pytest.raises(layouts.DatasetIntegrityError) as error:
    datasets.load_dataset(config)
  message = str(error.value)
  assert f"TFRecords in {version_dir(tmp_path, 'sysu')} were written from {root}, whose " in (
    message)
  assert f"delete {version_dir(tmp_path, 'sysu')}" in message
  # TFRecords without that record (older builds) are still caught by their counts.
  (version_dir(tmp_path, "sysu") / "metadata.json").unlink()
  with pytest.raises(layouts.DatasetIntegrityError) as error:
    datasets.load_dataset(config)
  message = str(error.value)
  assert f"TFRecords in {version_dir(tmp_path, 'sysu')}" in message
  assert "test: identities: expected 2, found 3" in message
  assert f"delete {version_dir(tmp_path, 'sysu')}" in message


def invert(image):
  return 255 - image


def test_tfrecords_of_a_same_count_folder_with_other_images_are_refused(pristine, tmp_path):
  """An IR→VIS translated copy has its source's counts; the recorded raw folder tells them
  apart."""
  original = copy_of(pristine, "sysu", tmp_path)
  datasets.load_dataset(data_config("sysu", original, tmp_path))
  translated = translation.translate_infrared(original, tmp_path / "translated", invert,
                                              progress=False)
  assert ([layouts.count_records(records) for records in train_and_test_records("sysu",
                                                                                translated)]
          == [layouts.count_records(records) for records in train_and_test_records("sysu",
                                                                                   original)])
  with pytest.raises(layouts.DatasetIntegrityError) as error:
    datasets.load_dataset(data_config("sysu", translated, tmp_path))
  message = str(error.value)
  assert isinstance(error.value, ValueError)
  assert (f"The TFRecords in {version_dir(tmp_path, 'sysu')} were written from the raw folder "
          f"{original}, but config.data.root is {translated}, which holds other images") in message
  assert f"Set config.data.tfds_dir to a folder of its own for {translated}" in message
  assert f"or delete {version_dir(tmp_path, 'sysu')} to rebuild" in message
  # With a TFRecords folder of its own it builds and loads.
  datasets.load_dataset(data_config("sysu", translated, tmp_path,
                                    tfds_dir=str(tmp_path / "tfds_translated")))


def test_a_moved_raw_folder_keeps_its_tfrecords_and_one_replaced_in_place_does_not(
    pristine, tmp_path, capsys):
  original = copy_of(pristine, "sysu", tmp_path)
  train, _ = datasets.load_dataset(data_config("sysu", original, tmp_path))
  moved = tmp_path / "moved"
  original.rename(moved)
  capsys.readouterr()
  moved_train, _ = datasets.load_dataset(data_config("sysu", moved, tmp_path))
  assert "Writing the TFRecords" not in capsys.readouterr().out  # not rebuilt
  np.testing.assert_array_equal(moved_train.images, train.images)
  # Other images (same counts) under the path the TFRecords recorded.
  translation.translate_infrared(moved, original, invert, progress=False)
  with pytest.raises(layouts.DatasetIntegrityError,
                     match=f"were written from {original}, whose images have changed since"):
    datasets.load_dataset(data_config("sysu", original, tmp_path))


def test_tfrecords_without_the_record_of_their_raw_folder_still_load_with_a_note(
    pristine, tmp_path, capsys):
  root = copy_of(pristine, "regdb", tmp_path)
  config = data_config("regdb", root, tmp_path)
  train, _ = datasets.load_dataset(config)
  metadata = version_dir(tmp_path, "regdb") / "metadata.json"
  recorded = json.loads(metadata.read_text())[integrity.RAW_FOLDER_KEY]
  assert recorded["root"] == str(root) and len(recorded["fingerprint"]) == 64
  metadata.unlink()  # as TFRecords written before builds recorded their raw folder
  capsys.readouterr()
  old_train, _ = datasets.load_dataset(config)
  assert "do not record which raw folder they were written from" in capsys.readouterr().out
  np.testing.assert_array_equal(old_train.images, train.images)


def test_synthetic_folder_of_another_layout_is_refused(pristine, tmp_path):
  config = data_config("regdb", pristine["sysu"], tmp_path, synthetic=dict(seed=1))
  with pytest.raises(ValueError, match="in the 'sysu' layout, but config.data.dataset='regdb'"):
    datasets.build(config)


# ----------------------------------------------------------------------------------------------
# Interrupted builds.


def test_build_failing_midway_leaves_nothing_loadable_and_a_fixed_input_builds(
    pristine, tmp_path, monkeypatch):
  root = copy_of(pristine, "sysu", tmp_path)
  train, test = train_and_test_records("sysu", root)
  # The test split is written after the train split: its last image fails once the training
  # examples are on disk.
  victim = pathlib.Path(test[-1].path)
  content = victim.read_bytes()
  victim.write_bytes(content[: len(content) // 3])
  written_before_failure = []
  real_load = common.load_resized_image

  def watching_load(path, height, width):
    if path == str(victim):
      written_before_failure.extend(
        str(p.relative_to(tmp_path)) for p in (tmp_path / "tfds").rglob("*train.tfrecord*"))
    return real_load(path, height, width)

  monkeypatch.setattr(common, "load_resized_image", watching_load)
  config = data_config("sysu", root, tmp_path)
  with pytest.raises(layouts.DatasetIntegrityError, match=f"Cannot decode image {victim}"):
    datasets.load_dataset(config)
  # Training examples had been written, into TFDS's temporary folder only ...
  assert written_before_failure and all("incomplete" in p for p in written_before_failure)
  # ... which is gone: nothing is accepted as complete, so a second load rebuilds and fails.
  assert leftovers(tmp_path, "sysu") == []
  with pytest.raises(layouts.DatasetIntegrityError, match=f"Cannot decode image {victim}"):
    datasets.load_dataset(config)
  victim.write_bytes(content)
  loaded_train, loaded_test = datasets.load_dataset(config)
  assert loaded_train.relative_paths.tolist() == [r.relative_path for r in train]
  assert loaded_test.relative_paths.tolist() == [r.relative_path for r in test]


def test_killed_build_leaves_nothing_loadable(pristine, tmp_path):
  """A build killed with SIGKILL (no clean-up runs) midway through the test split."""
  root = copy_of(pristine, "regdb", tmp_path)
  config = data_config("regdb", root, tmp_path)
  script = textwrap.dedent(f"""
      import os, signal
      import ml_collections
      from vireid_jax.data import datasets
      from vireid_jax.data.builders import common
      real_load, calls = common.load_resized_image, []
      def dying_load(path, height, width):
        calls.append(path)
        if "Thermal" in path and len(calls) > 12 + 3:  # train: 12 images; test: 3 in
          os.kill(os.getpid(), signal.SIGKILL)
        return real_load(path, height, width)
      common.load_resized_image = dying_load
      datasets.build(ml_collections.ConfigDict({config.to_dict()!r}))
      """)
  completed = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=300)
  assert completed.returncode == -9, completed.stderr.decode()[-2000:]
  # The kill left TFDS's temporary folder (with the finished train split) but no version folder.
  left = leftovers(tmp_path, "regdb")
  assert not version_dir(tmp_path, "regdb").exists()
  assert len(left) == 1 and left[0].startswith("incomplete.") and left[0].endswith("_1.0.0")
  assert list((version_dir(tmp_path, "regdb").parent / left[0]).glob("*train.tfrecord*"))
  # A later load ignores it and builds the whole dataset.
  train, test = datasets.load_dataset(config)
  expected_train, expected_test = train_and_test_records("regdb", root)
  assert train.relative_paths.tolist() == [r.relative_path for r in expected_train]
  assert test.relative_paths.tolist() == [r.relative_path for r in expected_test]
