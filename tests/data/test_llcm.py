"""LLCM: the raw layout (index files, test camera folders), the synthetic generator, the builder."""

import json
import pathlib
import re

import ml_collections
import numpy as np
from PIL import Image
import pytest

from vireid_jax.data import datasets
from vireid_jax.data import layouts
from vireid_jax.data import splits
from vireid_jax.data import synthetic

HEIGHT, WIDTH = 32, 16
TINY = dict(seed=2, num_train_ids=5, num_test_ids=3, images_per_camera=(1, 2), image_height=32,
            image_width=16)


def touch(path: pathlib.Path) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(b"")


def make_llcm_tree(root: pathlib.Path, train_vis: list[str], train_nir: list[str],
                   test_ids: str, test_files: list[str]) -> pathlib.Path:
  """Empty image files (layouts never opens them), index files, all test camera folders."""
  for line in train_vis + train_nir:
    touch(root / line.split()[0])
  for relative_path in test_files:
    touch(root / relative_path)
  for modality, folder in layouts.LLCM_TEST_FOLDERS.items():
    for camera in layouts.LLCM_TEST_CAMERAS[modality]:
      (root / folder / f"cam{camera}").mkdir(parents=True, exist_ok=True)
  (root / "idx").mkdir(exist_ok=True)
  (root / "idx" / "train_vis.txt").write_text("".join(f"{line}\n" for line in train_vis))
  (root / "idx" / "train_nir.txt").write_text("".join(f"{line}\n" for line in train_nir))
  (root / "idx" / "test_id.txt").write_text(test_ids)
  return root


@pytest.fixture
def tiny_tree(tmp_path):
  """Train persons 4 (label 0) and 1 (label 1); test persons 12 and 3 (listed unsorted).

  The root path contains "cam", which breaks the reference's string parsing.
  """
  return make_llcm_tree(
    tmp_path / "cam7" / "LLCM",
    train_vis=["vis/0004/0004_c02_s1_f1_vis.jpg 0", "vis/0001/0001_c09_s1_f1_vis.jpg 1",
               "vis/0004/0004_c07_s2_f2_vis.jpg 0"],
    train_nir=["nir/0001/0001_c03_s1_f1_nir.jpg 1", "nir/0004/0004_c01_s1_f1_nir.jpg 0"],
    test_ids="12,3\n",
    test_files=["test_vis/cam9/0003/b.jpg", "test_vis/cam2/0012/a.jpg",
                "test_vis/cam2/0003/b.jpg", "test_vis/cam2/0003/a.jpg",
                "test_nir/cam8/0003/z.jpg", "test_nir/cam1/0012/y.jpg",
                # Reference lists no NIR cam3: such a folder is ignored, as are non-images.
                "test_nir/cam3/0003/x.jpg", "test_vis/cam2/0003/Thumbs.db"])


def test_train_records_take_camera_from_the_file_name(tiny_tree):
  visible, infrared = layouts.llcm_train_records(tiny_tree)
  assert [(r.relative_path, r.person_id, r.camera, r.label) for r in visible] == [
    ("vis/0004/0004_c02_s1_f1_vis.jpg", 4, 2, 0), ("vis/0001/0001_c09_s1_f1_vis.jpg", 1, 9, 1),
    ("vis/0004/0004_c07_s2_f2_vis.jpg", 4, 7, 0)]
  assert [(r.person_id, r.camera, r.label, r.modality) for r in infrared] == [
    (1, 3, 1, "infrared"), (4, 1, 0, "infrared")]


def test_test_records_follow_reference_order_per_modality(tiny_tree):
  records = layouts.llcm_test_records(tiny_tree)
  # Visible block then infrared block; inside each: id ascending, camera, file name.
  assert [r.relative_path for r in records] == [
    "test_vis/cam2/0003/a.jpg", "test_vis/cam2/0003/b.jpg", "test_vis/cam9/0003/b.jpg",
    "test_vis/cam2/0012/a.jpg", "test_nir/cam8/0003/z.jpg", "test_nir/cam1/0012/y.jpg"]
  assert [(r.person_id, r.camera, r.modality[0], r.label) for r in records] == [
    (3, 2, "v", -1), (3, 2, "v", -1), (3, 9, "v", -1), (12, 2, "v", -1), (3, 8, "i", -1),
    (12, 1, "i", -1)]


@pytest.mark.parametrize("file_name, camera", [
  ("0001_c01_s185535_f7010_nir.jpg", 1), ("0003_c09_s1_f2_vis.jpg", 9), ("c4_0001.jpg", 4),
  ("0001_s185535_f7010_nir.jpg", None), ("0001_cam1.jpg", None)])
def test_camera_of_file_name(file_name, camera):
  assert layouts.llcm_camera_of_file_name(file_name) == camera


def test_training_file_without_camera_is_named(tiny_tree):
  touch(tiny_tree / "nir/0004/0004_s9_f9_nir.jpg")
  (tiny_tree / "idx" / "train_nir.txt").write_text(
    "nir/0001/0001_c03_s1_f1_nir.jpg 1\nnir/0004/0004_s9_f9_nir.jpg 0\n")
  with pytest.raises(layouts.DatasetIntegrityError,
                     match=r"train_nir.txt, line 2: cannot read a camera .*0004_s9_f9_nir.jpg"):
    layouts.llcm_train_records(tiny_tree)


def test_training_person_listed_as_test_id_is_a_leak(tiny_tree):
  (tiny_tree / "idx" / "test_id.txt").write_text("12,3,4\n")
  with pytest.raises(layouts.DatasetIntegrityError, match=r"person ids \[4\] are training ids"):
    layouts.llcm_train_records(tiny_tree)


def test_duplicated_test_id_is_an_error(tiny_tree):
  (tiny_tree / "idx" / "test_id.txt").write_text("12,3,12\n")
  with pytest.raises(layouts.DatasetIntegrityError, match=r"ids \[12\] more than once"):
    layouts.llcm_test_records(tiny_tree)


@pytest.mark.parametrize("missing, kind", [
  ("idx/train_vis.txt", "index file"), ("idx/test_id.txt", "id file"),
  ("test_nir/cam9", "camera folder")])
def test_missing_file_or_folder_is_named(tiny_tree, missing, kind):
  path = tiny_tree / missing
  if path.is_dir():
    path.rmdir()
  else:
    path.unlink()
  with pytest.raises(layouts.DatasetNotFoundError) as error:
    layouts.llcm_test_records(tiny_tree)
  message = str(error.value)
  assert f"{kind} {missing}" in message and str(path) in message
  assert "configs/synthetic_llcm.py" in message


# ----------------------------------------------------------------------------------------------
# The synthetic LLCM layout.


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
  return synthetic.generate_llcm(tmp_path_factory.mktemp("synthetic") / "llcm", **TINY)


def read_index(root, name):
  lines = (root / "idx" / name).read_text().splitlines()
  return [(line.split(" ")[0], int(line.split(" ")[1])) for line in lines]


def test_generated_layout_and_naming(generated):
  assert sorted(p.name for p in generated.iterdir()) == sorted([
    "idx", "nir", "test_nir", "test_vis", "vis", synthetic.INFO_FILE_NAME])
  assert sorted(p.name for p in (generated / "test_vis").iterdir()) == [
    f"cam{c}" for c in range(1, 10)]
  assert sorted(p.name for p in (generated / "test_nir").iterdir()) == [
    f"cam{c}" for c in (1, 2, 4, 5, 6, 7, 8, 9)]
  test_ids = [int(i) for i in (generated / "idx" / "test_id.txt").read_text().split(",")]
  assert len(test_ids) == 3
  name = re.compile(r"(\d{4})_c(\d{2})_s\d{6}_f\d{4}_(vis|nir)\.jpg")
  train_people = set()
  for index_name, tag in (("train_vis.txt", "vis"), ("train_nir.txt", "nir")):
    for path, label in read_index(generated, index_name):
      folder, person, file_name = path.split("/")
      match = name.fullmatch(file_name)
      assert folder == tag and match and match.group(3) == tag and match.group(1) == person
      assert tag == "vis" or int(match.group(2)) != 3  # no NIR cam3 anywhere
      train_people.add((int(person), label))
  # Labels = rank of the person among the training ids; train and test ids partition 1..8.
  people = sorted(p for p, _ in train_people)
  assert sorted(train_people) == [(p, people.index(p)) for p in people]
  assert sorted(people + test_ids) == list(range(1, 9))


def test_every_test_id_has_two_cameras_per_modality(generated):
  """So each query keeps a match after the protocol drops its own camera, both directions."""
  for person_id in (int(i) for i in (generated / "idx" / "test_id.txt").read_text().split(",")):
    for folder in ("test_vis", "test_nir"):
      cameras = [p.parent.parent.name
                 for p in (generated / folder).glob(f"cam*/{person_id:04d}/*.jpg")]
      assert len(set(cameras)) >= 2, (person_id, folder)


def test_generated_visible_images_are_low_light(generated):
  visible = [np.asarray(Image.open(p), np.float32).mean()
             for p in generated.glob("test_vis/cam*/*/*.jpg")]
  infrared = [np.asarray(Image.open(p), np.float32).mean()
              for p in generated.glob("test_nir/cam*/*/*.jpg")]
  assert np.mean(visible) < 0.7 * np.mean(infrared)


def test_generated_manifest_counts_match_the_files(generated):
  expected = json.loads((generated / synthetic.INFO_FILE_NAME).read_text())["expected_counts"]
  visible, infrared = layouts.llcm_train_records(generated)
  assert layouts.count_records(visible + infrared) == expected["train"]
  assert layouts.count_records(layouts.llcm_test_records(generated)) == expected["test"]
  assert expected["train"]["ids"] == 5 and expected["test"]["ids"] == 3
  assert "3" not in expected["train"]["cameras"]["infrared"]


# ----------------------------------------------------------------------------------------------
# Builder round trip.


def test_builder_round_trip(generated, tmp_path):
  data_config = ml_collections.ConfigDict(dict(
    dataset="llcm", root=str(generated), tfds_dir=str(tmp_path / "tfds"), synthetic={},
    image_height=HEIGHT, image_width=WIDTH))
  train, test = datasets.load_dataset(data_config)
  entries = read_index(generated, "train_vis.txt") + read_index(generated, "train_nir.txt")
  assert train.relative_paths.tolist() == [path for path, _ in entries]
  assert train.labels.tolist() == [label for _, label in entries]
  assert train.person_ids.tolist() == [int(path.split("/")[1]) for path, _ in entries]
  assert train.cameras.tolist() == [int(path.split("_c")[1][:2]) for path, _ in entries]
  assert train.modalities.tolist() == [
    splits.VISIBLE if path.startswith("vis/") else splits.INFRARED for path, _ in entries]
  # Test split: every image under test_vis then test_nir, camera and person from the folders.
  test_ids = sorted(int(i) for i in (generated / "idx" / "test_id.txt").read_text().split(","))
  expected_test = []
  for folder, cameras in (("test_vis", range(1, 10)), ("test_nir", (1, 2, 4, 5, 6, 7, 8, 9))):
    for person_id in test_ids:
      for camera in cameras:
        expected_test += sorted(
          (p.relative_to(generated).as_posix(), person_id, camera)
          for p in (generated / folder / f"cam{camera}" / f"{person_id:04d}").glob("*.jpg"))
  assert list(zip(test.relative_paths.tolist(), test.person_ids.tolist(),
                  test.cameras.tolist())) == expected_test
  assert set(test.labels.tolist()) == {-1}
  assert test.modalities.tolist() == [
    splits.VISIBLE if path.startswith("test_vis/") else splits.INFRARED
    for path, _, _ in expected_test]
  assert train.images.shape[1:] == (HEIGHT, WIDTH, 3)
  with Image.open(generated / train.relative_paths[0]) as image:
    expected = np.asarray(image.convert("RGB").resize((WIDTH, HEIGHT), Image.LANCZOS))
  np.testing.assert_array_equal(train.images[0], expected)
