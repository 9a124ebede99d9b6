"""SYSU-MM01 builder round trip (raw layout → TFRecords → arrays), the resize filter, and the
tf.data pipelines."""

import json
import os
import shutil

import ml_collections
import numpy as np
from PIL import Image
import pytest

from vireid_jax.data import datasets
from vireid_jax.data import layouts
from vireid_jax.data import pipeline
from vireid_jax.data import splits
from vireid_jax.data import synthetic
from vireid_jax.data.builders import common

HEIGHT, WIDTH = 32, 16


@pytest.fixture(scope="module")
def tiny_sysu(tmp_path_factory):
  root = tmp_path_factory.mktemp("raw") / "sysu"
  synthetic.generate_sysu(root, seed=3, num_train_ids=6, num_val_ids=2, num_test_ids=4,
                          num_single_modality_ids=1, images_per_camera=(1, 3),
                          image_height=48, image_width=24)
  data_config = ml_collections.ConfigDict(dict(
      dataset="sysu", root=str(root), tfds_dir=str(tmp_path_factory.mktemp("tfds")),
      synthetic={}, image_height=HEIGHT, image_width=WIDTH))
  train, test = datasets.load_dataset(data_config)
  return root, data_config, train, test


def test_round_trip_keeps_every_record_and_its_metadata(tiny_sysu):
  root, _, train, test = tiny_sysu
  visible, infrared = layouts.sysu_train_records(root)
  test_records = layouts.sysu_test_records(root)
  expected_train = visible + infrared
  assert len(train) == len(expected_train) and len(test) == len(test_records)
  for arrays, records in ((train, expected_train), (test, test_records)):
    assert arrays.relative_paths.tolist() == [r.relative_path for r in records]
    assert arrays.person_ids.tolist() == [r.person_id for r in records]
    assert arrays.cameras.tolist() == [r.camera for r in records]
    assert arrays.labels.tolist() == [r.label for r in records]
    assert arrays.modalities.tolist() == [
        splits.VISIBLE if r.modality == "visible" else splits.INFRARED for r in records]
  assert train.images.shape == (len(train), HEIGHT, WIDTH, 3)
  assert train.images.dtype == np.uint8


def test_round_trip_has_the_planned_counts_per_split_and_camera(tiny_sysu):
  root, _, train, test = tiny_sysu
  planned = json.loads((root / synthetic.INFO_FILE_NAME).read_text())["expected_counts"]
  assert datasets.count_arrays(train) == planned["train"]
  assert datasets.count_arrays(test) == planned["test"]
  # Train = train + val ids (6 + 2), test = 4 ids; the single-modality id is in neither.
  assert (planned["train"]["ids"], planned["test"]["ids"]) == (8, 4)
  assert set(planned["train"]["cameras"]["infrared"]) <= {"3", "6"}


def test_images_are_lanczos_resized_losslessly(tiny_sysu):
  root, _, train, _ = tiny_sysu
  for position in (0, len(train) - 1):
    with Image.open(os.path.join(root, train.relative_paths[position])) as image:
      expected = np.asarray(image.convert("RGB").resize((WIDTH, HEIGHT), Image.LANCZOS))
    np.testing.assert_array_equal(train.images[position], expected)


def test_second_build_reuses_the_tfrecords(tiny_sysu):
  _, data_config, _, _ = tiny_sysu
  builder = datasets.build(data_config)
  files = sorted(os.listdir(builder.data_dir))
  stamps = [os.path.getmtime(os.path.join(builder.data_dir, name)) for name in files]
  again = datasets.build(data_config)
  assert [os.path.getmtime(os.path.join(again.data_dir, name)) for name in files] == stamps


def test_missing_real_dataset_names_the_folder(tmp_path):
  data_config = ml_collections.ConfigDict(dict(
      dataset="sysu", root=str(tmp_path / "SYSU-MM01"), tfds_dir=str(tmp_path / "tfds"),
      synthetic={}, image_height=HEIGHT, image_width=WIDTH))
  with pytest.raises(layouts.DatasetNotFoundError) as error:
    datasets.build(data_config)
  message = str(error.value)
  assert str(tmp_path / "SYSU-MM01") in message
  assert "data/README.md" in message and "configs/synthetic.py" in message
  assert not os.path.exists(tmp_path / "tfds" / "sysu_mm01" / f"{HEIGHT}x{WIDTH}" / "1.0.0")


def test_train_dataset_batches_follow_the_sampler_and_resume(tiny_sysu):
  _, _, train, _ = tiny_sysu
  data_config = ml_collections.ConfigDict(dict(
      sampler="agw", augmentation="agw", random_erasing="none", ids_per_batch=3,
      images_per_id=2, pad=2))
  kwargs = dict(seed=5, epoch=1)
  batches = list(pipeline.train_dataset(train, data_config, **kwargs).as_numpy_iterator())
  assert len(batches) == pipeline.steps_per_epoch(train, data_config)
  first = batches[0]
  assert first["visible"].shape == (6, HEIGHT, WIDTH, 3)
  assert first["visible"].dtype == np.float32
  np.testing.assert_array_equal(first["visible_labels"], first["infrared_labels"])
  assert len(set(first["visible_labels"].tolist())) == 3
  # Starting at batch 2 gives exactly batches 2.. of the full epoch (same images, same crops).
  resumed = list(pipeline.train_dataset(train, data_config, start_batch=2, **kwargs)
                 .as_numpy_iterator())
  assert len(resumed) == len(batches) - 2
  for full, again in zip(batches[2:], resumed):
    for key in full:
      np.testing.assert_array_equal(full[key], again[key])


def test_synthetic_folder_generated_with_other_options_is_refused(tiny_sysu):
  root, data_config, _, _ = tiny_sysu
  other = ml_collections.ConfigDict(data_config.to_dict())
  other.synthetic = dict(seed=3, nir_luminance_mix=0.5)
  with pytest.raises(ValueError, match="nir_luminance_mix") as error:
    datasets.ensure_raw_dataset(other)
  assert str(root) in str(error.value)
  other.synthetic = dict(seed=3, num_train_ids=6, images_per_camera=(1, 3))
  assert datasets.ensure_raw_dataset(other) == str(root)


# --- The resize filter (config.data.resize_filter) --------------------------------------------


@pytest.fixture(scope="module")
def tiny_sysu_bicubic(tiny_sysu):
  """The bicubic build of tiny_sysu's raw folder, into the same TFRecords folder."""
  root, lanczos_config, _, _ = tiny_sysu
  data_config = ml_collections.ConfigDict(lanczos_config.to_dict())
  data_config.resize_filter = "bicubic"
  train, _ = datasets.load_dataset(data_config)
  return root, data_config, train


def test_bicubic_build_stores_pil_bicubic_resizes(tiny_sysu, tiny_sysu_bicubic):
  _, _, lanczos_train, _ = tiny_sysu
  root, _, train = tiny_sysu_bicubic
  assert train.relative_paths.tolist() == lanczos_train.relative_paths.tolist()
  for position in (0, len(train) // 2, len(train) - 1):
    with Image.open(os.path.join(root, train.relative_paths[position])) as image:
      expected = np.asarray(image.convert("RGB").resize((WIDTH, HEIGHT), Image.BICUBIC))
    np.testing.assert_array_equal(train.images[position], expected)
  # The two filters give other pixels: the bicubic build is not the Lanczos one reloaded.
  assert not np.array_equal(train.images, lanczos_train.images)


def test_bicubic_and_lanczos_builds_live_in_their_own_folders(tiny_sysu, tiny_sysu_bicubic):
  _, lanczos_config, _, _ = tiny_sysu
  _, bicubic_config, _ = tiny_sysu_bicubic
  lanczos, bicubic = datasets.build(lanczos_config), datasets.build(bicubic_config)
  assert os.path.basename(os.path.dirname(lanczos.data_dir)) == f"{HEIGHT}x{WIDTH}"
  assert os.path.basename(os.path.dirname(bicubic.data_dir)) == f"{HEIGHT}x{WIDTH}_bicubic"
  assert os.path.dirname(os.path.dirname(lanczos.data_dir)) == \
      os.path.dirname(os.path.dirname(bicubic.data_dir))
  assert lanczos.info.metadata[common.RESIZE_FILTER_KEY] == "lanczos"
  assert bicubic.info.metadata[common.RESIZE_FILTER_KEY] == "bicubic"


def test_default_build_names_are_unchanged_and_the_filter_extends_them():
  sysu = ml_collections.ConfigDict(dict(dataset="sysu", image_height=288, image_width=144))
  regdb = ml_collections.ConfigDict(dict(dataset="regdb", trial=3, image_height=288,
                                         image_width=144, resize_filter="lanczos"))
  # Builds written before the option existed keep their names (a config without the field too).
  assert datasets.builder_config(sysu).name == "288x144"
  assert datasets.builder_config(regdb).name == "trial3_288x144"
  sysu.resize_filter = regdb.resize_filter = "bicubic"
  assert datasets.builder_config(sysu).name == "288x144_bicubic"
  assert datasets.builder_config(regdb).name == "trial3_288x144_bicubic"
  assert datasets.builder_config(regdb).resize_filter == "bicubic"


def test_unknown_resize_filter_is_an_error_naming_the_field_and_the_filters():
  config = ml_collections.ConfigDict(dict(dataset="llcm", image_height=288, image_width=144,
                                          resize_filter="bilinear"))
  with pytest.raises(ValueError, match="config.data.resize_filter='bilinear'") as error:
    datasets.builder_config(config)
  assert "'lanczos'" in str(error.value) and "'bicubic'" in str(error.value)


def test_a_lanczos_build_in_the_bicubic_folder_is_refused(tiny_sysu, tmp_path):
  _, lanczos_config, _, _ = tiny_sysu
  lanczos = datasets.build(lanczos_config)
  # Copy the Lanczos build to where the bicubic build of another TFRecords folder belongs.
  relative = os.path.relpath(lanczos.data_dir, lanczos_config.tfds_dir)
  misplaced = tmp_path / relative.replace(f"{HEIGHT}x{WIDTH}", f"{HEIGHT}x{WIDTH}_bicubic")
  shutil.copytree(lanczos.data_dir, misplaced)
  config = ml_collections.ConfigDict(lanczos_config.to_dict())
  config.tfds_dir, config.resize_filter = str(tmp_path), "bicubic"
  with pytest.raises(layouts.DatasetIntegrityError, match="resized with 'lanczos'") as error:
    datasets.build(config)
  assert str(misplaced) in str(error.value)
