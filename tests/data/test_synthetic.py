"""Tests for the synthetic RGB-IR dataset written in SYSU-MM01's raw layout."""

import dataclasses
import json
import re

import numpy as np
from PIL import Image
import pytest

from vireid_jax.data import layouts
from vireid_jax.data import synthetic

# Small enough to render in well under a second.
TINY = dict(num_train_ids=6, num_val_ids=2, num_test_ids=4, num_single_modality_ids=2,
            images_per_camera=(1, 3), image_height=64, image_width=32)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  return synthetic.generate_sysu(tmp_path_factory.mktemp("synthetic") / "sysu", seed=0, **TINY)


def read_image(path) -> np.ndarray:
  with Image.open(path) as image:
    assert image.mode == "RGB"  # 3 channels, IR included, like the real JPEGs
    return np.asarray(image, dtype=np.int32)


def folder_bytes(root) -> dict[str, bytes]:
  return {path.relative_to(root).as_posix(): path.read_bytes()
          for path in sorted(root.rglob("*")) if path.is_file()}


def test_raw_layout(dataset):
  assert sorted(p.name for p in dataset.iterdir()) == [
    "cam1", "cam2", "cam3", "cam4", "cam5", "cam6", "exp", synthetic.INFO_FILE_NAME]
  assert sorted(p.name for p in (dataset / "exp").iterdir()) == [
    "test_id.txt", "train_id.txt", "val_id.txt"]
  num_images = 0
  for camera in range(1, 7):
    for person_dir in (dataset / f"cam{camera}").iterdir():
      assert re.fullmatch(r"\d{4}", person_dir.name), person_dir
      names = sorted(p.name for p in person_dir.iterdir())
      # 1-based running index inside (camera, person), 4 digits.
      assert names == [f"{k:04d}.jpg" for k in range(1, len(names) + 1)]
      assert 1 <= len(names) <= 3
      num_images += len(names)
  info = json.loads((dataset / synthetic.INFO_FILE_NAME).read_text())
  assert info["num_images"] == num_images and info["seed"] == 0


def test_id_files_are_one_line_of_unpadded_ids(dataset):
  splits = {}
  for split in ("train", "val", "test"):
    text = (dataset / "exp" / f"{split}_id.txt").read_text()
    assert re.fullmatch(r"[1-9]\d*(,[1-9]\d*)*\n", text), text
    splits[split] = [int(token) for token in text.split(",")]
  assert [len(splits[s]) for s in ("train", "val", "test")] == [6, 2, 4]
  all_ids = splits["train"] + splits["val"] + splits["test"]
  assert len(set(all_ids)) == len(all_ids)  # disjoint
  # Numbered 1..N like SYSU; the ids after them are in no split, seen in one modality only.
  assert sorted(all_ids) == list(range(1, 13))
  assert splits == layouts.read_sysu_splits(dataset)
  for person_id in (13, 14):
    cameras = {c for c in range(1, 7) if (dataset / f"cam{c}" / f"{person_id:04d}").is_dir()}
    assert len({layouts.sysu_camera_modality(c) for c in cameras}) == 1


def test_split_ids_interleave_test_ids_like_sysu():
  split_ids = synthetic.sysu_split_ids(80, 16, 24, 2)
  assert split_ids["test"][:3] == [3, 7, 11]
  assert sorted(split_ids["train"] + split_ids["test"]) == list(range(1, 105))
  assert split_ids["val"] == list(range(105, 121)) and split_ids["none"] == [121, 122]


def test_camera_presence_guarantees_over_many_ids():
  split_ids = synthetic.sysu_split_ids(300, 100, 200, 10)
  counts = synthetic.sysu_image_counts(7, split_ids, (2, 5))
  cameras_of = {}
  for (person_id, camera), count in counts.items():
    assert 2 <= count <= 5
    cameras_of.setdefault(person_id, set()).add(camera)
  for person_id in split_ids["train"] + split_ids["val"]:
    assert cameras_of[person_id] & {1, 2, 4, 5} and cameras_of[person_id] & {3, 6}
  for person_id in split_ids["val"]:
    assert cameras_of[person_id] <= {3, 4, 5}  # as SYSU-MM01's val ids
  for person_id in split_ids["test"]:
    # An IR query always exists, and cam3 queries (which ignore cam2) always have a match.
    assert cameras_of[person_id] & {3, 6} and cameras_of[person_id] & {1, 4, 5}
  # But some test ids are never seen indoors: indoor-search has queries without a match.
  indoor = [p for p in split_ids["test"] if cameras_of[p] & {1, 2}]
  assert 0.4 * 200 < len(indoor) < 0.8 * 200
  for person_id in split_ids["none"]:
    assert len({layouts.sysu_camera_modality(c) for c in cameras_of[person_id]}) == 1


def test_infrared_images_are_grey_and_visible_images_are_not(dataset):
  colour_spread = {}
  for camera in range(1, 7):
    for path in sorted((dataset / f"cam{camera}").rglob("*.jpg")):
      image = read_image(path)
      spread = np.abs(image - image.mean(-1, keepdims=True)).max()
      colour_spread.setdefault(layouts.sysu_camera_modality(camera), []).append(spread)
  assert max(colour_spread["infrared"]) <= 3  # R = G = B up to JPEG rounding
  assert min(colour_spread["visible"]) > 20


def test_native_size_varies_around_nominal(dataset):
  sizes = {Image.open(path).size for path in dataset.rglob("*.jpg")}
  widths, heights = zip(*sizes)
  assert len(sizes) > 5
  assert 0.8 * 64 < min(heights) and max(heights) < 1.25 * 64
  assert 0.8 * 32 < min(widths) and max(widths) < 1.25 * 32


def test_layout_functions_on_generated_data(dataset):
  splits = layouts.read_sysu_splits(dataset)
  visible, infrared = layouts.sysu_train_records(dataset)
  training_ids = sorted(splits["train"] + splits["val"])
  for records, modality in ((visible, "visible"), (infrared, "infrared")):
    assert {r.modality for r in records} == {modality}
    assert all(layouts.sysu_camera_modality(r.camera) == modality for r in records)
    assert all(r.label == training_ids.index(r.person_id) for r in records)
    # Id-major, then camera order of the reference, then file name.
    cameras = layouts.SYSU_VISIBLE_CAMERAS if modality == "visible" else (3, 6)
    keys = [(r.person_id, cameras.index(r.camera), r.relative_path) for r in records]
    assert keys == sorted(keys)
  assert {r.person_id for r in visible} == {r.person_id for r in infrared} == set(training_ids)

  test = layouts.sysu_test_records(dataset)
  assert {r.person_id for r in test} == set(splits["test"])
  assert [(r.person_id, r.camera) for r in test] == sorted((r.person_id, r.camera) for r in test)
  num_files = sum(1 for _ in dataset.rglob("*.jpg"))
  num_single_modality = sum(1 for p in dataset.glob("cam*/001[34]/*.jpg"))
  assert len(visible) + len(infrared) + len(test) == num_files - num_single_modality


def test_same_seed_same_bytes_and_other_seed_differs(dataset, tmp_path):
  again = synthetic.generate_sysu(tmp_path / "again", seed=0, **TINY)
  assert folder_bytes(again) == folder_bytes(dataset)
  other = synthetic.generate_sysu(tmp_path / "other", seed=1, **TINY)
  other_bytes, dataset_bytes = folder_bytes(other), folder_bytes(dataset)
  common_images = [p for p in other_bytes if p.endswith(".jpg") and p in dataset_bytes]
  assert common_images and all(other_bytes[p] != dataset_bytes[p] for p in common_images)


def test_identities_are_stable_when_ids_are_added():
  few = synthetic.sample_identities(3, range(1, 11))
  many = synthetic.sample_identities(3, range(1, 31))
  assert all(few[person_id] == many[person_id] for person_id in few)
  image_a = synthetic.render_image(few[5], 4, 2, seed=3, image_height=64, image_width=32)
  image_b = synthetic.render_image(many[5], 4, 2, seed=3, image_height=64, image_width=32)
  np.testing.assert_array_equal(image_a, image_b)


def test_identities_differ_in_at_least_three_discrete_attributes():
  people = synthetic.sample_identities(0, range(1, 201))
  signatures = [p.signature() for p in people.values()]
  for i, first in enumerate(signatures):
    for second in signatures[:i]:
      assert sum(a != b for a, b in zip(first, second)) >= 3
  # And the attribute space is actually used, not a few near-duplicates.
  for position in range(len(signatures[0])):
    assert len({s[position] for s in signatures}) >= 2


def test_infrared_reflectance_is_unpredictable_from_colour():
  """At the parameter level: NIR reflectance is independent of the RGB colour."""
  people = [synthetic.sample_person_attributes(0, person_id) for person_id in range(1, 301)]
  materials = [m for p in people for m in (p.upper.primary, p.lower.primary, p.shoes,
                                           p.bag_material, p.hat_material)]
  rgb = np.array([m.rgb for m in materials])
  nir = np.array([m.nir for m in materials])
  luminance = rgb @ np.array([0.299, 0.587, 0.114])
  assert abs(np.corrcoef(luminance, nir)[0, 1]) < 0.1
  for channel in range(3):
    assert abs(np.corrcoef(rgb[:, channel], nir)[0, 1]) < 0.1
  # Similar colours, very different NIR: a garment's IR brightness cannot be read off its colour.
  dark = nir[luminance < 0.25]
  assert dark.min() < 0.2 and dark.max() > 0.8


def _clothing_rgb_and_nir(nir_luminance_mix):
  people = [synthetic.sample_person_attributes(0, i, nir_luminance_mix=nir_luminance_mix)
            for i in range(1, 201)]
  materials = [m for p in people for m in (p.upper.primary, p.lower.primary, p.bag_material)]
  rgb = np.array([m.rgb for m in materials])
  return rgb @ np.array([0.299, 0.587, 0.114]), np.array([m.nir for m in materials])


def test_nir_luminance_mix_narrows_the_gap():
  luminance, nir = _clothing_rgb_and_nir(1.0)
  np.testing.assert_allclose(nir, luminance, atol=1e-6)  # IR = visible brightness
  luminance, nir = _clothing_rgb_and_nir(0.5)
  assert np.corrcoef(luminance, nir)[0, 1] > 0.5
  # The default is the true gap; the mix changes materials, not the shapes drawn before them.
  default = synthetic.sample_person_attributes(0, 1)
  assert default == synthetic.sample_person_attributes(0, 1, nir_luminance_mix=0.0)
  mixed = synthetic.sample_person_attributes(0, 1, nir_luminance_mix=0.5)
  assert (mixed.upper.style, mixed.upper.pattern) == (default.upper.style, default.upper.pattern)
  assert mixed.upper.primary.nir != default.upper.primary.nir


def _with_materials(person, change):
  """`person` with `change(material)` applied to every material."""
  def garment(g):
    return dataclasses.replace(g, primary=change(g.primary), secondary=change(g.secondary))
  return dataclasses.replace(
    person, skin=change(person.skin), hair=change(person.hair), upper=garment(person.upper),
    lower=garment(person.lower), shoes=change(person.shoes),
    hat_material=change(person.hat_material), bag_material=change(person.bag_material),
    emblem_material=change(person.emblem_material))


def test_infrared_rendering_ignores_colour_and_visible_ignores_nir():
  person = synthetic.sample_identities(0, [1])[1]
  recoloured = _with_materials(person, lambda m: dataclasses.replace(
    m, rgb=tuple(1.0 - c for c in m.rgb)))
  renir = _with_materials(person, lambda m: dataclasses.replace(m, nir=1.0 - m.nir))
  render = lambda p, camera: synthetic.render_image(p, camera, 1, seed=0, image_height=64,
                                                    image_width=32)
  for ir_camera in (3, 6):
    np.testing.assert_array_equal(render(recoloured, ir_camera), render(person, ir_camera))
    assert np.abs(render(renir, ir_camera) - render(person, ir_camera).astype(int)).max() > 100
  for visible_camera in (1, 2, 4, 5):
    np.testing.assert_array_equal(render(renir, visible_camera), render(person, visible_camera))
    assert np.abs(render(recoloured, visible_camera)
                  - render(person, visible_camera).astype(int)).max() > 100


def test_shape_cues_survive_the_modality_change():
  """A pattern drawn in RGB is drawn at the same place in IR, with its own contrast."""
  person = synthetic.sample_identities(0, [1])[1]
  striped = dataclasses.replace(person, upper=dataclasses.replace(
    person.upper, pattern="horizontal", pattern_period=synthetic.PATTERN_PERIODS[1]))
  mask = synthetic.pattern_mask(striped.upper, np.zeros((1, 1)), np.linspace(0, 1, 200)[:, None])
  # Alternating bands along the body's height: two edges per period.
  expected_edges = 2 / synthetic.PATTERN_PERIODS[1]
  assert abs(np.count_nonzero(np.diff(mask[:, 0].astype(int))) - expected_edges) <= 2
  assert abs(striped.upper.primary.nir - striped.upper.secondary.nir) >= 0.15


def test_refuses_to_overwrite_and_overwrite_replaces(dataset, tmp_path):
  target = tmp_path / "out"
  target.mkdir()
  (target / "keep.txt").write_text("user data")
  with pytest.raises(FileExistsError, match=str(target)):
    synthetic.generate_sysu(target, **TINY)
  assert (target / "keep.txt").read_text() == "user data"
  synthetic.generate_sysu(target, overwrite=True, **TINY)
  assert not (target / "keep.txt").exists()
  assert (target / "exp" / "test_id.txt").is_file()
  assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folders left


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
  calls = []

  def failing_render(*args, **kwargs):
    calls.append(1)
    if len(calls) > 3:
      raise KeyboardInterrupt
    return np.zeros((8, 8, 3), np.uint8)

  monkeypatch.setattr(synthetic.render, "render_image", failing_render)
  with pytest.raises(KeyboardInterrupt):
    synthetic.generate_sysu(tmp_path / "out", **TINY)
  assert list(tmp_path.iterdir()) == []


def test_cli_writes_each_layout_and_rejects_options_of_another(tmp_path, capsys):
  out = tmp_path / "cli"
  assert synthetic.main(["--out", str(out), "--layout", "sysu", "--seed", "2",
                         "--num-train-ids", "2", "--num-val-ids", "1", "--num-test-ids", "1",
                         "--num-single-modality-ids", "0", "--images-per-camera", "1", "1",
                         "--image-height", "32", "--image-width", "16"]) == 0
  assert layouts.read_sysu_splits(out) == {"train": [1, 3], "val": [4], "test": [2]}
  assert synthetic.main(["--out", str(tmp_path / "regdb"), "--layout", "regdb", "--num-ids",
                         "4", "--images-per-id", "1", "--image-height", "32",
                         "--image-width", "16"]) == 0
  visible, thermal = layouts.regdb_train_records(tmp_path / "regdb", 10)
  assert (len(visible), len(thermal)) == (2, 2)
  # An option of another layout is refused by name, and nothing is written.
  assert synthetic.main(["--out", str(tmp_path / "bad"), "--layout", "llcm",
                         "--num-val-ids", "3"]) == 2
  assert "num_val_ids do not apply to the 'llcm' layout" in capsys.readouterr().err
  assert synthetic.main(["--out", str(tmp_path / "bad"), "--layout", "market1501"]) == 2
  assert "available: llcm, regdb, sysu" in capsys.readouterr().err
  assert not (tmp_path / "bad").exists()


def test_manifest_counts_match_the_files(dataset):
  """The generator's planned counts (what integrity checks use) are what the layout holds."""
  info = json.loads((dataset / synthetic.INFO_FILE_NAME).read_text())
  visible, infrared = layouts.sysu_train_records(dataset)
  assert info["expected_counts"] == {
    "train": layouts.count_records(visible + infrared),
    "test": layouts.count_records(layouts.sysu_test_records(dataset))}
  assert info["num_images"] == sum(
    sum(split["images"].values()) for split in info["expected_counts"].values()) + sum(
    1 for _ in dataset.glob("cam*/001[34]/*.jpg"))  # single-modality ids are in no split


@pytest.mark.parametrize("layout", ["regdb", "llcm"])
def test_other_layouts_same_seed_same_bytes_and_interrupted_leaves_nothing(
    tmp_path, monkeypatch, layout):
  options = dict(seed=3, image_height=32, image_width=16)
  options.update(dict(num_ids=4, images_per_id=1) if layout == "regdb" else
                 dict(num_train_ids=2, num_test_ids=1, images_per_camera=(1, 1)))
  first = synthetic.generate(layout, tmp_path / "first", **options)
  assert folder_bytes(synthetic.generate(layout, tmp_path / "again", **options)) == (
    folder_bytes(first))
  calls = []

  def failing_render(*args, **kwargs):
    calls.append(1)
    if len(calls) > 2:
      raise KeyboardInterrupt
    return np.zeros((32, 16, 3), np.uint8)

  monkeypatch.setattr(synthetic.render, "render_image", failing_render)
  with pytest.raises(KeyboardInterrupt):
    synthetic.generate(layout, tmp_path / "broken", **options)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "first"]


@pytest.mark.parametrize("options, message", [
  (dict(num_val_ids=0), "num_val_ids"), (dict(images_per_camera=(3, 2)), "images_per_camera"),
  (dict(seed=-1), "seed"), (dict(nir_luminance_mix=1.5), "nir_luminance_mix")])
def test_invalid_options(tmp_path, options, message):
  with pytest.raises(ValueError, match=message):
    synthetic.generate_sysu(tmp_path / "bad", **{**TINY, **options})
  assert not (tmp_path / "bad").exists()
