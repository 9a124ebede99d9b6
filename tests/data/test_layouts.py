"""Tests for vireid_jax.data.layouts on hand-built SYSU-MM01 trees and the real split files."""

import pathlib

import pytest

from vireid_jax.data import layouts

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
# CI checks the project out with shared/ beside it; the split files are never copied in.
SYSU_EVAL_DIR = REPO_ROOT.parent / "shared" / "data" / "sysu_mm01_eval"

# Spec baseline_data_eval.md §1.1.3.
SPEC_TEST_IDS = [
  6, 10, 17, 21, 24, 25, 27, 28, 31, 34, 36, 37, 40, 41, 42, 43, 44, 45, 49, 50, 51, 54, 63, 69,
  75, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 93, 102, 104, 105, 106, 108, 112, 116, 117,
  122, 125, 129, 130, 134, 138, 139, 150, 152, 162, 166, 167, 170, 172, 176, 185, 190, 192, 202,
  204, 207, 210, 215, 223, 229, 232, 237, 252, 253, 257, 259, 263, 266, 269, 272, 273, 274, 275,
  282, 285, 291, 300, 301, 302, 303, 307, 312, 315, 318, 331, 333]
SPEC_VAL_IDS = list(range(334, 347)) + list(range(348, 434))


def make_sysu_tree(root: pathlib.Path, images: dict[tuple[int, int], list[str]],
                   splits: dict[str, str]) -> pathlib.Path:
  """A SYSU-MM01 skeleton: empty image files (layouts never opens them) and id files."""
  for camera in layouts.SYSU_CAMERAS:
    (root / f"cam{camera}").mkdir(parents=True, exist_ok=True)
  for (camera, person_id), file_names in images.items():
    person_dir = root / f"cam{camera}" / f"{person_id:04d}"
    person_dir.mkdir(parents=True, exist_ok=True)
    for file_name in file_names:
      (person_dir / file_name).write_bytes(b"")
  (root / "exp").mkdir(exist_ok=True)
  for split, line in splits.items():
    (root / "exp" / f"{split}_id.txt").write_text(line)
  return root


@pytest.fixture
def tiny_root(tmp_path):
  """Train ids 3, 1 (listed unsorted), val id 5, test ids 4, 2, plus id 9 in no split.

  The root path itself contains "cam" and digits, which would break string-offset parsing.
  """
  images = {
    # File names are created out of order; "0010" must sort after "0002".
    (1, 1): ["0010.jpg", "0002.jpg"], (2, 1): ["0001.jpg"], (3, 1): ["0002.jpg", "0001.jpg"],
    (6, 1): ["0001.jpg"],
    (4, 3): ["0001.jpg"], (5, 3): ["0002.jpg", "0001.jpg"], (6, 3): ["0001.jpg"],
    (3, 5): ["0001.jpg"], (4, 5): ["0001.jpg"],
    (1, 2): ["0001.jpg"], (3, 2): ["0001.jpg"], (6, 2): ["0001.jpg"],
    (5, 4): ["0001.jpg"], (6, 4): ["0002.jpg", "0001.jpg"],
    (1, 9): ["0001.jpg"],
  }
  root = make_sysu_tree(tmp_path / "cam7" / "0123" / "SYSU-MM01", images,
                        {"train": "3,1\n", "val": "5\n", "test": "4,2\n"})
  # Stray non-image files must not become records.
  (root / "cam1" / "0001" / "Thumbs.db").write_bytes(b"junk")
  return root


def test_camera_constants_partition_the_six_cameras():
  assert sorted(layouts.SYSU_VISIBLE_CAMERAS + layouts.SYSU_INFRARED_CAMERAS) == [1, 2, 3, 4, 5, 6]
  assert [layouts.sysu_camera_modality(c) for c in range(1, 7)] == [
    "visible", "visible", "infrared", "visible", "visible", "infrared"]
  # cam3 (IR) shares cam2's indoor location; cam6 is outdoor.
  assert 3 in layouts.SYSU_INDOOR_CAMERAS and 6 not in layouts.SYSU_INDOOR_CAMERAS
  with pytest.raises(ValueError, match="camera 7"):
    layouts.sysu_camera_modality(7)


def test_train_records_follow_reference_order_and_labels(tiny_root):
  visible, infrared = layouts.sysu_train_records(tiny_root)
  assert [r.relative_path for r in visible] == [
    "cam1/0001/0002.jpg", "cam1/0001/0010.jpg", "cam2/0001/0001.jpg",
    "cam4/0003/0001.jpg", "cam5/0003/0001.jpg", "cam5/0003/0002.jpg",
    "cam4/0005/0001.jpg"]
  assert [r.relative_path for r in infrared] == [
    "cam3/0001/0001.jpg", "cam3/0001/0002.jpg", "cam6/0001/0001.jpg",
    "cam6/0003/0001.jpg", "cam3/0005/0001.jpg"]
  # Label = rank of the person id among train + val ids: 1 -> 0, 3 -> 1, 5 -> 2.
  assert [(r.person_id, r.label) for r in visible] == [
    (1, 0), (1, 0), (1, 0), (3, 1), (3, 1), (3, 1), (5, 2)]
  assert [(r.person_id, r.label) for r in infrared] == [(1, 0), (1, 0), (1, 0), (3, 1), (5, 2)]
  assert {r.modality for r in visible} == {"visible"}
  assert {r.modality for r in infrared} == {"infrared"}
  assert [r.camera for r in infrared] == [3, 3, 6, 6, 3]


def test_record_paths_are_absolute_and_match_relative_path(tiny_root, monkeypatch):
  monkeypatch.chdir(tiny_root.parent)
  visible, infrared = layouts.sysu_train_records("SYSU-MM01")  # a relative root
  for record in visible + infrared:
    path = pathlib.Path(record.path)
    assert path.is_absolute() and path.is_file()
    assert path.relative_to(tiny_root).as_posix() == record.relative_path


def test_test_records_cover_all_cameras_in_order(tiny_root):
  records = layouts.sysu_test_records(tiny_root)
  assert [r.relative_path for r in records] == [
    "cam1/0002/0001.jpg", "cam3/0002/0001.jpg", "cam6/0002/0001.jpg",
    "cam5/0004/0001.jpg", "cam6/0004/0001.jpg", "cam6/0004/0002.jpg"]
  assert {r.label for r in records} == {layouts.NO_LABEL}
  assert [r.modality for r in records] == [
    "visible", "infrared", "infrared", "visible", "infrared", "infrared"]
  assert layouts.count_by(records, "camera") == {1: 1, 3: 1, 5: 1, 6: 3}


def test_visible_only_training_id_is_an_error_naming_the_id(tmp_path):
  root = make_sysu_tree(tmp_path, {(1, 1): ["0001.jpg"], (3, 1): ["0001.jpg"],
                                   (2, 7): ["0001.jpg"]},
                        {"train": "1,7", "val": "8", "test": "2"})
  with pytest.raises(ValueError, match="person id 7 has visible images but no infrared"):
    layouts.sysu_train_records(root)


def test_infrared_only_training_id_keeps_its_label(tmp_path):
  root = make_sysu_tree(tmp_path, {(1, 1): ["0001.jpg"], (3, 1): ["0001.jpg"],
                                   (6, 4): ["0001.jpg"], (4, 6): ["0001.jpg"],
                                   (3, 6): ["0001.jpg"]},
                        {"train": "1,4,6", "val": "8", "test": "2"})
  visible, infrared = layouts.sysu_train_records(root)
  assert [(r.person_id, r.label) for r in infrared] == [(1, 0), (4, 1), (6, 2)]
  assert [(r.person_id, r.label) for r in visible] == [(1, 0), (6, 2)]


@pytest.mark.parametrize("content, expected", [
  ("1,2,4,5", [1, 2, 4, 5]),
  ("1, 2,3\n", [1, 2, 3]),
  ("7,3\n99,100\n", [7, 3]),  # only the first line counts, as in the reference
])
def test_read_sysu_id_file(tmp_path, content, expected):
  path = tmp_path / "train_id.txt"
  path.write_text(content)
  assert layouts.read_sysu_id_file(path) == expected


@pytest.mark.parametrize("content, bad_token", [
  ("1,2,x", "'x'"), ("1,,3", "''"), ("1,2,", "''"), ("0001;0002", "'0001;0002'"),
  ("3,0", "'0'")])
def test_malformed_id_file_names_file_and_token(tmp_path, content, bad_token):
  path = tmp_path / "val_id.txt"
  path.write_text(content)
  with pytest.raises(ValueError) as error:
    layouts.read_sysu_id_file(path)
  assert str(path) in str(error.value) and bad_token in str(error.value)


def test_empty_id_file_is_an_error(tmp_path):
  path = tmp_path / "test_id.txt"
  path.write_text("\n1,2\n")
  with pytest.raises(ValueError, match="empty"):
    layouts.read_sysu_id_file(path)


def test_missing_id_file(tmp_path):
  with pytest.raises(layouts.DatasetNotFoundError, match="nope_id.txt"):
    layouts.read_sysu_id_file(tmp_path / "nope_id.txt")


def _assert_helpful(message: str, *names: str) -> None:
  for name in names:
    assert name in message
  assert "data/README.md" in message and "configs/synthetic.py" in message


def test_missing_root_error_names_folder_and_alternatives(tmp_path):
  missing = tmp_path / "SYSU-MM01"
  with pytest.raises(layouts.DatasetNotFoundError) as error:
    layouts.sysu_train_records(missing)
  _assert_helpful(str(error.value), str(missing), "cam1", "exp/")
  assert isinstance(error.value, FileNotFoundError)


def test_missing_exp_file_error_names_it(tiny_root):
  (tiny_root / "exp" / "val_id.txt").unlink()
  with pytest.raises(layouts.DatasetNotFoundError) as error:
    layouts.check_sysu_root(tiny_root)
  _assert_helpful(str(error.value), str(tiny_root / "exp" / "val_id.txt"))


def test_missing_camera_folder_error_names_it(tiny_root):
  for child in (tiny_root / "cam4").iterdir():
    for file in child.iterdir():
      file.unlink()
    child.rmdir()
  (tiny_root / "cam4").rmdir()
  with pytest.raises(layouts.DatasetNotFoundError) as error:
    layouts.sysu_test_records(tiny_root)
  _assert_helpful(str(error.value), str(tiny_root / "cam4"))


@pytest.mark.parametrize("splits, message", [
  ({"train": "1,2", "val": "5", "test": "2,4"},
   "2 is listed in both exp/train_id.txt and exp/test_id.txt"),
  ({"train": "1,3,1", "val": "5", "test": "4"}, "1 is listed twice in exp/train_id.txt"),
])
def test_overlapping_or_duplicate_ids_are_errors(tmp_path, splits, message):
  root = make_sysu_tree(tmp_path, {}, splits)
  with pytest.raises(ValueError, match=message):
    layouts.read_sysu_splits(root)


# ----------------------------------------------------------------------------------------------
# The real SYSU-MM01 split (official evaluation files in ../shared/data).


@pytest.fixture(scope="module")
def real_split():
  if not SYSU_EVAL_DIR.is_dir():
    pytest.skip(f"official SYSU-MM01 split files not found at {SYSU_EVAL_DIR} (they live in "
                "shared/data beside the repository, not in it)")
  scipy_io = pytest.importorskip("scipy.io", reason="scipy is needed to read the .mat files")

  def ids(name):
    return sorted(int(i) for i in scipy_io.loadmat(SYSU_EVAL_DIR / name)["id"].ravel())

  images_per_camera = scipy_io.loadmat(SYSU_EVAL_DIR / "rand_perm_cam.mat")["rand_perm_cam"]
  return {
    "train": ids("train_id.mat"), "test": ids("test_id.mat"),
    "test_indoor": ids("test_id_indoor.mat"),
    # n = number of images of (camera, person): columns of the cell's 10 x n permutation matrix.
    "counts": {(camera, person_id): cell[0].shape[1]
               for camera in layouts.SYSU_CAMERAS
               for person_id, cell in enumerate(images_per_camera[camera - 1, 0], start=1)
               if cell[0].shape[1] > 0},
  }


def test_real_split_files_match_spec_and_id_file_format(real_split, tmp_path):
  assert real_split["test"] == SPEC_TEST_IDS
  assert len(real_split["train"]) == 296
  assert set(real_split["test_indoor"]) <= set(real_split["test"])
  # Written in the download's exp/ format and read back through the loader's parser.
  path = tmp_path / "test_id.txt"
  path.write_text(",".join(str(i) for i in real_split["test"]) + "\n")
  assert layouts.read_sysu_id_file(path) == SPEC_TEST_IDS


def test_real_split_test_records_match_spec_counts(real_split, tmp_path):
  """A skeleton of the real test split: one file per (camera, test id) folder."""
  test_ids = set(real_split["test"])
  test_counts = {key: n for key, n in real_split["counts"].items() if key[1] in test_ids}
  per_camera = {c: sum(n for (camera, _), n in test_counts.items() if camera == c)
                for c in layouts.SYSU_CAMERAS}
  assert per_camera == {1: 1374, 2: 1565, 3: 1883, 4: 1918, 5: 1918, 6: 1920}  # spec §1.1.3

  root = make_sysu_tree(tmp_path, {key: [f"{n:04d}.jpg"] for key, n in test_counts.items()}, {
    "train": ",".join(map(str, real_split["train"])),
    "val": ",".join(map(str, SPEC_VAL_IDS)),
    "test": ",".join(map(str, real_split["test"]))})
  assert layouts.read_sysu_splits(root)["val"] == SPEC_VAL_IDS  # disjoint from train and test

  records = layouts.sysu_test_records(root)
  assert layouts.count_by(records, "camera") == {1: 56, 2: 56, 3: 93, 4: 94, 5: 95, 6: 96}
  # Spec §1.1.3 / §7.3: the ids seen by cam1 are the 56 indoor test ids, and every test id has
  # a match for cam3 queries among cams 1, 4, 5.
  seen_by = lambda cameras: {r.person_id for r in records if r.camera in cameras}
  assert sorted(seen_by({1})) == real_split["test_indoor"]
  assert seen_by({1, 4, 5}) == test_ids
  assert seen_by(set(layouts.SYSU_INFRARED_CAMERAS)) == test_ids


def test_count_split_counts_ids_images_and_cameras():
  counts = layouts.count_split([5, 5, 7, 9], [1, 3, 10, 3],
                               ["visible", "infrared", "infrared", "infrared"])
  assert counts == {"ids": 3, "images": {"visible": 1, "infrared": 3},
                    "cameras": {"visible": {"1": 1}, "infrared": {"3": 2, "10": 1}}}
  assert layouts.count_split([], [], []) == {
    "ids": 0, "images": {"visible": 0, "infrared": 0},
    "cameras": {"visible": {}, "infrared": {}}}


def test_errors_are_dataset_errors_of_the_builtin_kinds():
  # main.py and users can catch one class; FileNotFoundError / ValueError handlers still work.
  assert issubclass(layouts.DatasetNotFoundError, layouts.DatasetError)
  assert issubclass(layouts.DatasetNotFoundError, FileNotFoundError)
  assert issubclass(layouts.DatasetIntegrityError, layouts.DatasetError)
  assert issubclass(layouts.DatasetIntegrityError, ValueError)
