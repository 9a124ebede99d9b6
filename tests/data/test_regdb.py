"""RegDB: the raw layout (index files, ten trials), the synthetic generator, the TFDS builder."""

import json
import pathlib

import ml_collections
import numpy as np
from PIL import Image
import pytest

from vireid_jax.data import datasets
from vireid_jax.data import layouts
from vireid_jax.data import splits
from vireid_jax.data import synthetic

HEIGHT, WIDTH = 32, 16
TINY = dict(seed=4, num_ids=6, images_per_id=2, image_height=32, image_width=16)


def write_index(root: pathlib.Path, name: str, lines: list[str]) -> None:
  (root / "idx").mkdir(parents=True, exist_ok=True)
  (root / "idx" / name).write_text("".join(f"{line}\n" for line in lines))


def make_regdb_tree(root: pathlib.Path, trial_lists: dict[str, list[str]]) -> pathlib.Path:
  """Empty image files (layouts never opens them) and all 40 index files.

  Every trial gets a copy of `trial_lists` ({"train_visible": lines, ...}).
  """
  for lines in trial_lists.values():
    for line in lines:
      path = root / line.split()[0]
      path.parent.mkdir(parents=True, exist_ok=True)
      path.write_bytes(b"")
  for trial in layouts.REGDB_TRIALS:
    for name, lines in trial_lists.items():
      write_index(root, f"{name}_{trial}.txt", lines)
  return root


@pytest.fixture
def tiny_tree(tmp_path):
  """Persons 7 and 3 train (labels 0, 1), persons 5 and 9 test; lines deliberately unsorted."""
  return make_regdb_tree(tmp_path / "RegDB", {
    "train_visible": ["Visible/7/male_v_1.bmp 0", "Visible/3/female_v_2.bmp 1",
                      "Visible/7/male_v_0.bmp 0"],
    "train_thermal": ["Thermal/3/female_t_2.bmp 1", "Thermal/7/male_t_1.bmp 0"],
    "test_visible": ["Visible/9/a.bmp 1", "Visible/5/b.bmp 0"],
    "test_thermal": ["Thermal/5/c.bmp 0", "Thermal/9/d.bmp 1", "Thermal/9/e.bmp 1"],
  })


def test_train_records_keep_file_order_labels_and_cameras(tiny_tree):
  visible, thermal = layouts.regdb_train_records(tiny_tree, 4)
  assert [r.relative_path for r in visible] == [
    "Visible/7/male_v_1.bmp", "Visible/3/female_v_2.bmp", "Visible/7/male_v_0.bmp"]
  assert [(r.person_id, r.label, r.camera, r.modality) for r in visible] == [
    (7, 0, 1, "visible"), (3, 1, 1, "visible"), (7, 0, 1, "visible")]
  assert [(r.person_id, r.label, r.camera, r.modality) for r in thermal] == [
    (3, 1, 2, "infrared"), (7, 0, 2, "infrared")]
  assert pathlib.Path(thermal[0].path) == tiny_tree / "Thermal/3/female_t_2.bmp"


def test_test_records_are_visible_then_thermal_without_labels(tiny_tree):
  records = layouts.regdb_test_records(tiny_tree, 10)
  assert [(r.relative_path, r.person_id, r.camera, r.label) for r in records] == [
    ("Visible/9/a.bmp", 9, 1, -1), ("Visible/5/b.bmp", 5, 1, -1),
    ("Thermal/5/c.bmp", 5, 2, -1), ("Thermal/9/d.bmp", 9, 2, -1),
    ("Thermal/9/e.bmp", 9, 2, -1)]


def test_each_trial_reads_its_own_files(tiny_tree):
  write_index(tiny_tree, "train_visible_2.txt", ["Visible/3/female_v_2.bmp 0"])
  write_index(tiny_tree, "train_thermal_2.txt", ["Thermal/3/female_t_2.bmp 0"])
  visible, _ = layouts.regdb_train_records(tiny_tree, 2)
  assert [(r.person_id, r.label) for r in visible] == [(3, 0)]
  assert len(layouts.regdb_train_records(tiny_tree, 3)[0]) == 3


@pytest.mark.parametrize("trial", [0, 11, "1", True])
def test_trial_outside_one_to_ten_names_the_config_field(tiny_tree, trial):
  with pytest.raises(ValueError, match="config.data.trial"):
    layouts.regdb_train_records(tiny_tree, trial)


@pytest.mark.parametrize("lines, message", [
  (["Visible/7/male_v_1.bmp"], "line 1 .*expected '<relative path> <label>'"),
  (["Visible/7/male_v_1.bmp 0", "Visible/3/female_v_2.bmp one"], "line 2 .*not an integer"),
  (["Visible/7/male_v_1.bmp -1"], "negative"),
  (["../Visible/7/male_v_1.bmp 0"], "inside it"),
  (["Visible/x7/male_v_1.bmp 0"], "person folder 'x7'"),
])
def test_malformed_index_line_names_file_and_line(tiny_tree, lines, message):
  write_index(tiny_tree, "train_visible_1.txt", lines)
  with pytest.raises(layouts.DatasetIntegrityError, match=message) as error:
    layouts.regdb_train_records(tiny_tree, 1)
  assert str(tiny_tree / "idx" / "train_visible_1.txt") in str(error.value)


def test_missing_listed_image_names_the_line_and_the_path(tiny_tree):
  (tiny_tree / "Thermal/7/male_t_1.bmp").unlink()
  with pytest.raises(layouts.DatasetNotFoundError) as error:
    layouts.regdb_train_records(tiny_tree, 1)
  message = str(error.value)
  assert "train_thermal_1.txt, line 2" in message
  assert str(tiny_tree / "Thermal/7/male_t_1.bmp") in message


def test_missing_index_file_is_named(tiny_tree):
  (tiny_tree / "idx" / "test_thermal_7.txt").unlink()
  with pytest.raises(layouts.DatasetNotFoundError) as error:
    layouts.regdb_train_records(tiny_tree, 1)  # every trial's files belong to the layout
  message = str(error.value)
  assert "idx/test_thermal_7.txt" in message and str(tiny_tree) in message
  assert "data/README.md" in message and "configs/synthetic_regdb.py" in message


@pytest.mark.parametrize("visible, thermal, message", [
  # A gap: labels must be 0..C-1 (the reference indexes lists with them).
  (["Visible/7/a.bmp 0", "Visible/3/b.bmp 2"], ["Thermal/7/c.bmp 0", "Thermal/3/d.bmp 2"],
   r"missing \[1\], unexpected \[2\]"),
  # A label without thermal images.
  (["Visible/7/a.bmp 0", "Visible/3/b.bmp 1"], ["Thermal/7/c.bmp 0"], r"only visible: \[1\]"),
  # One label for two people.
  (["Visible/7/a.bmp 0", "Visible/3/b.bmp 0"], ["Thermal/7/c.bmp 0"],
   "must name exactly one person"),
])
def test_training_labels_must_be_dense_shared_and_one_per_person(tmp_path, visible, thermal,
                                                                 message):
  root = make_regdb_tree(tmp_path, {"train_visible": visible, "train_thermal": thermal,
                                    "test_visible": ["Visible/5/x.bmp 0"],
                                    "test_thermal": ["Thermal/5/y.bmp 0"]})
  with pytest.raises(layouts.DatasetIntegrityError, match=message):
    layouts.regdb_train_records(root, 1)


def test_a_person_in_train_and_test_is_a_leak(tiny_tree):
  write_index(tiny_tree, "test_visible_6.txt", ["Visible/9/a.bmp 1", "Visible/7/male_v_0.bmp 0"])
  write_index(tiny_tree, "test_thermal_6.txt", ["Thermal/9/d.bmp 1", "Thermal/7/male_t_1.bmp 0"])
  with pytest.raises(layouts.DatasetIntegrityError, match=r"person ids \[7\] are in both"):
    layouts.regdb_test_records(tiny_tree, 6)


# ----------------------------------------------------------------------------------------------
# The synthetic RegDB layout.


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
  return synthetic.generate_regdb(tmp_path_factory.mktemp("synthetic") / "regdb", **TINY)


def read_index(root, name):
  """(path, label) pairs of an index file, parsed independently of `layouts`."""
  lines = (root / "idx" / name).read_text().splitlines()
  return [(line.split(" ")[0], int(line.split(" ")[1])) for line in lines]


def test_generated_layout_has_ten_trials_of_halves(generated):
  assert sorted(p.name for p in generated.iterdir()) == sorted([
    "Thermal", "Visible", "idx", synthetic.INFO_FILE_NAME])
  assert len(list((generated / "idx").iterdir())) == 40
  test_sets = set()
  for trial in range(1, 11):
    people = {}
    for split in ("train", "test"):
      for modality in ("visible", "thermal"):
        entries = read_index(generated, f"{split}_{modality}_{trial}.txt")
        assert all(path.startswith(modality.capitalize() + "/") and path.endswith(".bmp")
                   for path, _ in entries)
        assert len(entries) == 3 * 2  # 3 ids x 2 images
        people.setdefault(split, set()).update(int(path.split("/")[1]) for path, _ in entries)
        # Labels: rank of the id within the half, the same for visible and thermal.
        ranks = sorted({int(path.split("/")[1]) for path, _ in entries})
        assert all(label == ranks.index(int(path.split("/")[1])) for path, label in entries)
    assert people["train"] | people["test"] == set(range(1, 7))
    assert not people["train"] & people["test"]
    test_sets.add(frozenset(people["test"]))
  assert len(test_sets) > 1  # the trials are different splits


def test_generated_pairs_are_co_registered_and_thermal_is_grey(generated):
  visible = sorted((generated / "Visible").rglob("*.bmp"))
  assert len(visible) == 12
  sizes = set()
  for visible_path in visible:
    thermal_path = generated / "Thermal" / visible_path.parent.name / visible_path.name.replace(
      "_v_", "_t_")
    with Image.open(visible_path) as v, Image.open(thermal_path) as t:
      assert v.size == t.size  # the same crop, rendered in each modality
      sizes.add(v.size)
      thermal = np.asarray(t.convert("RGB"), np.int32)
      assert np.abs(thermal - thermal.mean(-1, keepdims=True)).max() == 0  # lossless grey
  assert len(sizes) > 1


def test_generated_manifest_counts_match_every_trial(generated):
  expected = json.loads((generated / synthetic.INFO_FILE_NAME).read_text())["expected_counts"]
  for trial in layouts.REGDB_TRIALS:
    visible, thermal = layouts.regdb_train_records(generated, trial)
    assert layouts.count_records(visible + thermal) == expected["train"]
    assert layouts.count_records(layouts.regdb_test_records(generated, trial)) == expected["test"]
  assert expected["train"] == {"ids": 3, "images": {"visible": 6, "infrared": 6},
                               "cameras": {"visible": {"1": 6}, "infrared": {"2": 6}}}


def test_generated_people_differ_from_sysu_layout_people():
  """Layouts draw identities from separate streams, so no cross-dataset leak for one seed."""
  regdb_people = synthetic.sample_identities(synthetic.layout_seed("regdb", 4), [1, 2])
  sysu_people = synthetic.sample_identities(4, [1, 2])
  assert all(regdb_people[i] != sysu_people[i] for i in (1, 2))


@pytest.mark.parametrize("options, message", [
  (dict(num_ids=5), "even"), (dict(images_per_id=0), "images_per_id"),
  (dict(seed=2**32), "seed")])
def test_generator_rejects_bad_options(tmp_path, options, message):
  with pytest.raises(ValueError, match=message):
    synthetic.generate_regdb(tmp_path / "bad", **{**TINY, **options})
  assert not (tmp_path / "bad").exists()


# ----------------------------------------------------------------------------------------------
# Builder round trip.


def regdb_config(root, tfds_dir, trial, **overrides):
  return ml_collections.ConfigDict(dict(
    dataset="regdb", root=str(root), tfds_dir=str(tfds_dir), synthetic={}, trial=trial,
    image_height=HEIGHT, image_width=WIDTH, check_counts=True, **overrides))


@pytest.mark.parametrize("trial", [2, 9])
def test_builder_round_trip_per_trial(generated, tmp_path_factory, trial):
  tfds_dir = tmp_path_factory.mktemp("tfds")
  train, test = datasets.load_dataset(regdb_config(generated, tfds_dir, trial))
  for arrays, split, labelled in ((train, "train", True), (test, "test", False)):
    entries = (read_index(generated, f"{split}_visible_{trial}.txt")
               + read_index(generated, f"{split}_thermal_{trial}.txt"))
    assert arrays.relative_paths.tolist() == [path for path, _ in entries]
    assert arrays.person_ids.tolist() == [int(path.split("/")[1]) for path, _ in entries]
    assert arrays.cameras.tolist() == [1 if p.startswith("Visible/") else 2 for p, _ in entries]
    assert arrays.modalities.tolist() == [
      splits.VISIBLE if p.startswith("Visible/") else splits.INFRARED for p, _ in entries]
    assert arrays.labels.tolist() == [label if labelled else -1 for _, label in entries]
  assert sorted(set(train.labels.tolist())) == [0, 1, 2]
  assert not set(train.person_ids.tolist()) & set(test.person_ids.tolist())
  assert train.images.shape == (12, HEIGHT, WIDTH, 3) and test.images.shape == (12, HEIGHT,
                                                                                 WIDTH, 3)
  # Lanczos pre-resize of the BMP, stored losslessly.
  with Image.open(generated / test.relative_paths[-1]) as image:
    expected = np.asarray(image.convert("RGB").resize((WIDTH, HEIGHT), Image.LANCZOS))
  np.testing.assert_array_equal(test.images[-1], expected)
  assert (tfds_dir / "regdb" / f"trial{trial}_{HEIGHT}x{WIDTH}" / "1.0.0").is_dir()
