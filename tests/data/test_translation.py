"""IR→VIS translated SYSU-MM01 (DJANet's data): `translation.translate_infrared`, the synthetic
stand-in (`ir_to_visible="colour_transfer"`) and evaluating on another folder's test split
(`config.eval.test_root` / `test_tfds_dir`).

Everything runs on one tiny generated SYSU-MM01-layout folder (32 x 16 crops, a few ids).
"""

import json
import pathlib

import ml_collections
import numpy as np
from PIL import Image
import pytest

from configs import default
from vireid_jax.data import datasets
from vireid_jax.data import files
from vireid_jax.data import layouts
from vireid_jax.data import synthetic
from vireid_jax.data import translation
from vireid_jax.data.builders import integrity

HEIGHT, WIDTH = 32, 16
# Train, val and test ids, and ids of no split: every kind of infrared image is there.
TINY = dict(seed=1, num_train_ids=4, num_val_ids=1, num_test_ids=3, num_single_modality_ids=2,
            images_per_camera=(1, 2), image_height=32, image_width=16)


def invert(image: np.ndarray) -> np.ndarray:
  return 255 - image


def folder_files(root: pathlib.Path) -> dict[str, bytes]:
  return {path.relative_to(root).as_posix(): path.read_bytes()
          for path in sorted(root.rglob("*")) if path.is_file()}


def is_infrared_image(relative_path: str) -> bool:
  return relative_path.split("/")[0] in ("cam3", "cam6") and relative_path.endswith(".jpg")


def decode(path) -> np.ndarray:
  with Image.open(path) as image:
    return np.asarray(image.convert("RGB"), dtype=np.float64)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
  """The untranslated folder, with a stray non-image file in an infrared person folder."""
  root = synthetic.generate_sysu(tmp_path_factory.mktemp("source") / "sysu", **TINY)
  stray = next((root / "cam3").iterdir()) / "Thumbs.db"
  stray.write_bytes(b"not an image")
  return root


@pytest.fixture(scope="module")
def translated(source, tmp_path_factory):
  """`source` translated by `invert`, with every image the translator was given."""
  given = []

  def recording_invert(image):
    given.append(image.copy())
    return invert(image)

  out = translation.translate_infrared(source, tmp_path_factory.mktemp("out") / "ir2vis",
                                       recording_invert, progress=False)
  return out, given


@pytest.fixture(scope="module")
def colour_transferred(tmp_path_factory):
  """The synthetic stand-in: TINY generated with ir_to_visible="colour_transfer"."""
  return synthetic.generate_sysu(tmp_path_factory.mktemp("stand_in") / "sysu_ir2vis",
                                 ir_to_visible="colour_transfer", **TINY)


# ----------------------------------------------------------------------------------------------
# translate_infrared.


def test_only_infrared_images_change_and_each_is_the_translation_of_its_source(
    source, translated, tmp_path):
  out, given = translated
  before, after = folder_files(source), folder_files(out)
  assert sorted(after) == sorted(before)  # same names, nothing added or lost
  infrared = [path for path in before if is_infrared_image(path)]
  assert infrared == translation.infrared_relative_paths(source)
  assert len(given) == len(infrared)
  # Every id kind is translated: train, val, test and ids of no split.
  splits = layouts.read_sysu_splits(source)
  ids = {int(path.split("/")[1]) for path in infrared}
  assert set(splits["train"]) & ids and set(splits["val"]) & ids and set(splits["test"]) & ids
  assert ids - set(splits["train"] + splits["val"] + splits["test"])
  for path, content in before.items():
    if not is_infrared_image(path):
      # Visible images, exp/*_id.txt, synthetic.json, the stray file: byte for byte.
      assert after[path] == content, path
      continue
    assert after[path] != content, path
    with Image.open(out / path) as image_after, Image.open(source / path) as image_before:
      assert (image_after.format, image_after.size) == ("JPEG", image_before.size)
    # The translator saw the decoded RGB image; the file holds its result as written by
    # files.write_image (deterministic settings).
    image, _ = files.read_image(source / path)
    expected = tmp_path / "expected.jpg"
    files.write_image(invert(image), expected, "JPEG")
    assert after[path] == expected.read_bytes(), path
  assert all(image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
             for image in given)


@pytest.mark.parametrize("bad_translate, found", [
  (lambda image: image[:-1], "uint8 [{h_minus_1}, {w}, 3]"),
  (lambda image: image.astype(np.float32), "float32 [{h}, {w}, 3]")])
def test_a_translate_that_changes_shape_or_dtype_names_the_file(source, tmp_path,
                                                                bad_translate, found):
  first = source / translation.infrared_relative_paths(source)[0]
  height, width = files.read_image(first)[0].shape[:2]
  out = tmp_path / "out"
  with pytest.raises(ValueError) as error:
    translation.translate_infrared(source, out, bad_translate, progress=False)
  message = str(error.value)
  assert f"translate changed {first}" in message
  assert found.format(h=height, w=width, h_minus_1=height - 1) in message
  assert f"uint8 [{height}, {width}, 3] image" in message
  # Nothing half-written: neither the output nor a temporary folder is left.
  assert list(tmp_path.iterdir()) == []


def test_an_existing_non_empty_out_root_is_refused_and_left_alone(source, tmp_path):
  out = tmp_path / "out"
  out.mkdir()
  (out / "keep.txt").write_text("user data")
  with pytest.raises(FileExistsError, match=f"Output folder {out} exists and is not empty"):
    translation.translate_infrared(source, out, invert, progress=False)
  assert [path.name for path in out.iterdir()] == ["keep.txt"]
  assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]


def test_other_layouts_are_refused(source, tmp_path):
  with pytest.raises(ValueError, match="layout='regdb': only 'sysu'.*untranslated"):
    translation.translate_infrared(source, tmp_path / "out", invert, layout="regdb")
  assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------
# colour_transfer and the synthetic stand-in.


def hand_colour_transfer(image, mean, std):
  """The formula, written out: luma, standardised per image, recoloured, clipped, rounded."""
  grey = 0.299 * image[..., 0] + 0.587 * image[..., 1] + 0.114 * image[..., 2]
  standardised = (grey - grey.mean()) / grey.std()
  channels = [np.clip(mean[c] + std[c] * standardised, 0, 255) for c in range(3)]
  return np.rint(np.stack(channels, axis=-1)).astype(np.uint8)


def test_colour_transfer_is_the_formula():
  rng = np.random.default_rng(0)
  mean, std = [120.0, 100.0, 80.0], [40.0, 50.0, 60.0]
  translate = translation.colour_transfer(mean, std)
  grey = rng.integers(0, 256, size=(9, 5, 1)).astype(np.uint8)
  infrared = np.repeat(grey, 3, axis=-1)  # as an IR image: one grey level in three channels
  result = translate(infrared)
  assert result.dtype == np.uint8 and result.shape == (9, 5, 3)
  np.testing.assert_array_equal(result, hand_colour_transfer(infrared.astype(float), mean, std))
  # The single channel is the grey level (luma weights sum to 1).
  standardised = (grey[..., 0] - grey.mean()) / grey.std()
  np.testing.assert_allclose(result[..., 1], np.clip(100 + 50 * standardised, 0, 255), atol=0.5)
  # A coloured input goes through its luma; a constant one becomes the mean colour.
  colour = rng.integers(0, 256, size=(6, 4, 3)).astype(np.uint8)
  np.testing.assert_array_equal(translate(colour), hand_colour_transfer(colour.astype(float),
                                                                        mean, std))
  np.testing.assert_array_equal(translate(np.full((3, 2, 3), 7, np.uint8)),
                                np.broadcast_to(np.uint8([120, 100, 80]), (3, 2, 3)))


def visible_training_statistics_by_hand(root):
  """Per-channel mean and std over every pixel of the visible images of train + val ids."""
  splits = layouts.read_sysu_splits(root)
  pixels = np.concatenate([
      decode(path).reshape(-1, 3) for person_id in splits["train"] + splits["val"]
      for camera in (1, 2, 4, 5)
      for path in sorted((root / f"cam{camera}" / f"{person_id:04d}").glob("*.jpg"))])
  return pixels.mean(axis=0), pixels.std(axis=0)


def test_synthetic_stand_in_touches_only_infrared_images_and_records_itself(
    source, colour_transferred):
  stand_in = folder_files(colour_transferred)
  plain = {path: content for path, content in folder_files(source).items()
           if not path.endswith("Thumbs.db")}  # the fixture's stray file
  assert sorted(stand_in) == sorted(plain)
  infrared = [path for path in plain if is_infrared_image(path)]
  assert infrared
  for path in plain:
    if path == synthetic.INFO_FILE_NAME:
      continue
    if is_infrared_image(path):
      assert stand_in[path] != plain[path], path
      with Image.open(source / path) as before, Image.open(colour_transferred / path) as after:
        assert (after.format, after.size) == (before.format, before.size)
    else:
      assert stand_in[path] == plain[path], path
  info = json.loads((colour_transferred / synthetic.INFO_FILE_NAME).read_text())
  assert info["ir_to_visible"] == "colour_transfer"
  assert json.loads((source / synthetic.INFO_FILE_NAME).read_text())["ir_to_visible"] == ""
  mean, std = visible_training_statistics_by_hand(colour_transferred)
  np.testing.assert_allclose(info["ir_to_visible_statistics"]["visible_mean"], mean, rtol=1e-9)
  np.testing.assert_allclose(info["ir_to_visible_statistics"]["visible_std"], std, rtol=1e-9)


def test_synthetic_stand_in_follows_the_formula_and_takes_the_visible_colour_statistics(
    source, colour_transferred):
  mean, std = visible_training_statistics_by_hand(colour_transferred)
  infrared = translation.infrared_relative_paths(colour_transferred)
  # One image by hand, from the untranslated rendering (JPEG re-encoding: a few levels).
  path = infrared[len(infrared) // 2]
  expected = hand_colour_transfer(decode(source / path), mean, std).astype(np.float64)
  assert np.abs(decode(colour_transferred / path) - expected).mean() < 2.5
  # Every infrared image takes the visible images' per-channel mean and std (up to clipping
  # and JPEG), whatever its identity: the grey renderings had R = G = B.
  pixels = [decode(colour_transferred / p).reshape(-1, 3) for p in infrared]
  channel_means = np.array([image.mean(axis=0) for image in pixels])
  channel_stds = np.array([image.std(axis=0) for image in pixels])
  np.testing.assert_allclose(channel_means, np.broadcast_to(mean, channel_means.shape), atol=2)
  np.testing.assert_allclose(channel_stds, np.broadcast_to(std, channel_stds.shape), atol=5)
  assert abs(mean[0] - mean[2]) > 4  # so the check above tells colour from grey
  grey_means = np.array([decode(source / p).reshape(-1, 3).mean(axis=0) for p in infrared])
  assert np.abs(grey_means[:, 0] - grey_means[:, 2]).max() < 1


def test_unknown_ir_to_visible_is_refused(tmp_path):
  with pytest.raises(ValueError, match=r"ir_to_visible must be one of \('', 'colour_transfer'\)"):
    synthetic.generate_sysu(tmp_path / "bad", ir_to_visible="cyclegan", **TINY)
  assert not (tmp_path / "bad").exists()


def data_config(root, tfds_dir, **overrides):
  fields = dict(dataset="sysu", root=str(root), tfds_dir=str(tfds_dir), synthetic={}, trial=1,
                image_height=HEIGHT, image_width=WIDTH, check_counts=True)
  return ml_collections.ConfigDict({**fields, **overrides})


def test_a_missing_synthetic_root_is_generated_with_ir_to_visible_deterministically(
    colour_transferred, tmp_path):
  options = dict(TINY, ir_to_visible="colour_transfer")
  root = tmp_path / "generated"
  datasets.ensure_raw_dataset(data_config(root, tmp_path / "tfds", synthetic=options))
  # A second generation (elsewhere) is byte-identical to the fixture's, manifest included.
  assert folder_files(root) == folder_files(colour_transferred)
  # The untranslated folder is not taken for the translated one, nor the reverse; a manifest
  # written before the option existed counts as ir_to_visible="" (its default).
  info = json.loads((root / synthetic.INFO_FILE_NAME).read_text())
  with pytest.raises(ValueError, match="ir_to_visible: folder 'colour_transfer', config ''"):
    datasets.check_synthetic_options(str(root), dict(TINY, ir_to_visible=""))
  del info["ir_to_visible"]
  (root / synthetic.INFO_FILE_NAME).write_text(json.dumps(info))
  datasets.check_synthetic_options(str(root), dict(TINY, ir_to_visible=""))
  with pytest.raises(ValueError, match="ir_to_visible: folder '', config 'colour_transfer'"):
    datasets.check_synthetic_options(str(root), options)


# ----------------------------------------------------------------------------------------------
# Evaluating on another folder's test split.


def test_eval_test_root_makes_evaluation_read_the_other_folder(source, translated, tmp_path):
  out, _ = translated
  data = data_config(out, tmp_path / "tfds_ir2vis")
  eval_config = default.get_config().eval
  eval_config.test_root = str(source)
  eval_config.test_tfds_dir = str(tmp_path / "tfds")
  splits = datasets.load(data, eval_config=eval_config)
  own_train, own_test = datasets.load_dataset(data)
  # Training reads config.data.root (translated), evaluation the test root (untranslated).
  np.testing.assert_array_equal(splits.train.images, own_train.images)
  assert splits.test.relative_paths.tolist() == own_test.relative_paths.tolist()
  infrared = splits.test.modalities == 1
  assert infrared.any() and (~infrared).any()
  np.testing.assert_array_equal(splits.test.images[~infrared], own_test.images[~infrared])
  assert np.abs(splits.test.images[infrared].astype(int)
                - own_test.images[infrared].astype(int)).mean() > 50  # inverted, up to JPEG
  # The test root's TFRecords went to test_tfds_dir and record the test root.
  metadata = json.loads(next((tmp_path / "tfds").rglob("metadata.json")).read_text())
  assert metadata[integrity.RAW_FOLDER_KEY]["root"] == str(source)
  # Empty fields: config.data's test split.
  default_splits = datasets.load(data, eval_config=default.get_config().eval)
  np.testing.assert_array_equal(default_splits.test.images, own_test.images)


def test_eval_test_root_errors_come_before_any_work(tmp_path):
  config = default.get_config()
  config.data.root = str(tmp_path / "missing")  # nothing is read before the checks
  config.eval.test_root = str(tmp_path / "other")
  with pytest.raises(ValueError, match="config.eval.test_root=.* both would use the TFRecords "
                                       "in config.data.tfds_dir=.*config.eval.test_tfds_dir"):
    datasets.load(config.data, eval_config=config.eval)
  config.eval.test_tfds_dir = str(tmp_path / "tfds_other")
  config.data.target.dataset = "regdb"
  with pytest.raises(ValueError, match="config.eval.test_root / config.eval.test_tfds_dir "
                                       "replace the test split .* target"):
    datasets.load(config.data, with_target=True, eval_config=config.eval)
  assert list(tmp_path.iterdir()) == []


def test_evaluation_data_config_keeps_the_run_settings_and_drops_only_ir_to_visible():
  config = default.get_config()
  config.data.root, config.data.tfds_dir = "data/synthetic_sysu_ir2vis", "data/ir2vis_tfds"
  config.data.synthetic = dict(seed=0, nir_luminance_mix=0.8, ir_to_visible="colour_transfer")
  assert datasets.evaluation_data_config(config.data, config.eval) is None
  config.eval.test_root, config.eval.test_tfds_dir = "data/synthetic_sysu", "data/plain_tfds"
  test = datasets.evaluation_data_config(config.data, config.eval)
  assert (test.root, test.tfds_dir) == ("data/synthetic_sysu", "data/plain_tfds")
  assert test.synthetic.to_dict() == dict(seed=0, nir_luminance_mix=0.8)
  assert (test.image_height, test.dataset, test.trial) == (
      config.data.image_height, config.data.dataset, config.data.trial)
  assert config.data.synthetic.ir_to_visible == "colour_transfer"  # config.data is unchanged
