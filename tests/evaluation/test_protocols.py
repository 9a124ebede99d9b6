"""Tests of the SYSU-MM01 protocol: query order, the reference's random gallery
draw (against a direct re-implementation over a folder tree), and `sysu_trials`
scored with `rank_metrics` on features with a known answer."""

import os
import random

import numpy as np
import pytest

from vireid_jax.data import splits
from vireid_jax.evaluation import protocols
from vireid_jax.evaluation import rank_metrics
from vireid_jax.evaluation import rank_metrics_from_features
from vireid_jax.evaluation import sysu_gallery_indices
from vireid_jax.evaluation import sysu_query_indices

# Images per (camera, person id) of a small fake SYSU-MM01 test split; a
# missing entry = no folder. Counts differ so that `random.choice` positions
# depend on the list length.
#   6: every camera.   10: no cam2, no cam5.   17: RGB only in cam2 (its cam3
#   queries have no match once cam2 is dropped; indoor: only cam6 queries are
#   valid).   21: infrared only (never in a gallery).   24: outdoor RGB only.
IMAGES_PER_CAMERA_AND_ID = {
    (1, 6): 5, (2, 6): 3, (3, 6): 4, (4, 6): 7, (5, 6): 2, (6, 6): 3,
    (1, 10): 9, (3, 10): 2, (4, 10): 1, (6, 10): 5,
    (2, 17): 6, (3, 17): 3, (6, 17): 2,
    (3, 21): 2, (6, 21): 4,
    (4, 24): 11, (5, 24): 4, (3, 24): 1, (6, 24): 3,
}  # fmt: skip
TEST_IDS = (6, 10, 17, 21, 24)


@pytest.fixture(scope="module")
def sysu_root(tmp_path_factory):
  root = tmp_path_factory.mktemp("sysu")
  for (camera, person_id), num_images in IMAGES_PER_CAMERA_AND_ID.items():
    folder = root / f"cam{camera}" / f"{person_id:04d}"
    folder.mkdir(parents=True)
    for k in range(1, num_images + 1):
      (folder / f"{k:04d}.jpg").touch()
  return str(root)


@pytest.fixture(scope="module")
def metadata(sysu_root):
  """Test-split metadata from os.walk, deliberately shuffled."""
  relative_paths = []
  for folder, _, file_names in os.walk(sysu_root):
    for file_name in file_names:
      relative_paths.append(os.path.relpath(os.path.join(folder, file_name), sysu_root))
  np.random.default_rng(0).shuffle(relative_paths)
  cameras = np.array([int(path.split(os.sep)[0][3:]) for path in relative_paths])
  person_ids = np.array([int(path.split(os.sep)[1]) for path in relative_paths])
  return person_ids, cameras, relative_paths


def _reference_query_paths(data_path):
  """The reference's process_query_sysu, paths only."""
  ids = ["%04d" % x for x in TEST_IDS]
  files_ir = []
  for id in sorted(ids):  # noqa: A001 - the reference's names
    for cam in ["cam3", "cam6"]:
      img_dir = os.path.join(data_path, cam, id)
      if os.path.isdir(img_dir):
        files_ir.extend(sorted([img_dir + "/" + i for i in os.listdir(img_dir)]))
  return files_ir


def _reference_gallery_paths(data_path, mode, trial):
  """The reference's process_gallery_sysu (global `random`), paths only."""
  random.seed(trial)
  rgb_cameras = ["cam1", "cam2", "cam4", "cam5"] if mode == "all" else ["cam1", "cam2"]
  ids = ["%04d" % x for x in TEST_IDS]
  files_rgb = []
  for id in sorted(ids):  # noqa: A001 - the reference's names
    for cam in rgb_cameras:
      img_dir = os.path.join(data_path, cam, id)
      if os.path.isdir(img_dir):
        new_files = sorted([img_dir + "/" + i for i in os.listdir(img_dir)])
        files_rgb.append(random.choice(new_files))
  return files_rgb


def _relative(paths, root):
  return [os.path.relpath(path, root) for path in paths]


@pytest.mark.parametrize("mode", ["all", "indoor"])
def test_gallery_draw_matches_reference_loop(sysu_root, metadata, mode):
  person_ids, cameras, relative_paths = metadata
  saved_state = random.getstate()
  try:
    for trial in (0, 1, 2, 9):
      expected = _relative(_reference_gallery_paths(sysu_root, mode, trial), sysu_root)
      indices = sysu_gallery_indices(person_ids, cameras, relative_paths, trial=trial, mode=mode)
      assert [relative_paths[i] for i in indices] == expected
  finally:
    random.setstate(saved_state)


def test_gallery_draw_depends_on_trial_and_not_on_global_random_state(metadata):
  person_ids, cameras, relative_paths = metadata
  draws = set()
  for trial in range(10):
    random.seed(12345 + trial)  # must not matter
    state_before = random.getstate()
    indices = sysu_gallery_indices(person_ids, cameras, relative_paths, trial=trial)
    assert random.getstate() == state_before
    random.seed(999)
    repeated = sysu_gallery_indices(person_ids, cameras, relative_paths, trial=trial)
    np.testing.assert_array_equal(indices, repeated)
    draws.add(tuple(indices))
  assert len(draws) > 1


@pytest.mark.parametrize(
    "mode, expected_id_camera_pairs",
    [
        # (id, camera) in draw order: one image per RGB folder present.
        ("all", [(6, 1), (6, 2), (6, 4), (6, 5), (10, 1), (10, 4), (17, 2), (24, 4), (24, 5)]),
        ("indoor", [(6, 1), (6, 2), (10, 1), (17, 2)]),
    ],
)
def test_gallery_has_one_image_per_id_and_rgb_camera(metadata, mode, expected_id_camera_pairs):
  person_ids, cameras, relative_paths = metadata
  indices = sysu_gallery_indices(person_ids, cameras, relative_paths, trial=3, mode=mode)
  assert list(zip(person_ids[indices].tolist(), cameras[indices].tolist())) == (
      expected_id_camera_pairs
  )


@pytest.mark.parametrize("mode", ["all", "indoor"])
def test_query_indices_match_reference_order(sysu_root, metadata, mode):
  person_ids, cameras, relative_paths = metadata
  indices = sysu_query_indices(person_ids, cameras, relative_paths, mode=mode)
  # Every infrared image: cam3 + cam6 counts of the table above.
  assert len(indices) == 4 + 3 + 2 + 5 + 3 + 2 + 2 + 4 + 1 + 3
  expected = _relative(_reference_query_paths(sysu_root), sysu_root)
  assert [relative_paths[i] for i in indices] == expected


def test_rejects_unknown_mode(metadata):
  person_ids, cameras, relative_paths = metadata
  with pytest.raises(ValueError, match="mode"):
    sysu_gallery_indices(person_ids, cameras, relative_paths, trial=0, mode="outdoor")


def _features(metadata, num_features=None, seed=None):
  """[N] features of the fake split: one-hot id features, or random unit features."""
  person_ids = metadata[0]
  id_position = {person_id: i for i, person_id in enumerate(TEST_IDS)}
  if seed is None:
    return np.eye(len(TEST_IDS), dtype=np.float32)[[id_position[p] for p in person_ids]]
  features = np.random.default_rng(seed).normal(size=[len(person_ids), num_features])
  return (features / np.linalg.norm(features, axis=1, keepdims=True)).astype(np.float32)


def _score_trials(variant, features, person_ids, cameras, max_rank=20):
  """Every trial of `variant` scored as the evaluation does: rank_metrics on the
  negative cosine distances of its queries to its gallery, plus "gallery_size"."""
  trials = []
  for trial in range(variant.num_trials):
    queries, gallery = variant.queries(trial), variant.gallery(trial)
    result = rank_metrics(
        protocols.negative_cosine_distance(features[queries], features[gallery]),
        person_ids[queries], person_ids[gallery], cameras[queries], cameras[gallery],
        protocol=variant.metric_protocol, cmc=variant.cmc, max_rank=max_rank)
    trials.append({**result, "gallery_size": len(gallery)})
  return trials


@pytest.mark.parametrize(
    "mode, num_valid_queries, gallery_size",
    [
        # 29 queries; invalid: id 17's 3 cam3 queries (its RGB is cam2 only) and
        # id 21's 6 queries (no RGB) -> 20 valid.
        ("all", 20, 9),
        # Indoor galleries hold ids 6, 10, 17 only: valid = id 6's 7, id 10's 7,
        # id 17's 2 cam6 queries = 16.
        ("indoor", 16, 4),
    ],
)
def test_sysu_trials_with_one_hot_identity_features(
    metadata, mode, num_valid_queries, gallery_size
):
  # True matches are at distance -1, everything else at 0: every valid query
  # ranks all its matches first, so R1 = mAP = mINP = 1 in every trial.
  person_ids, cameras, relative_paths = metadata
  variant = protocols.sysu_trials(person_ids, cameras, relative_paths, mode=mode, num_trials=3)
  assert variant.name == f"sysu_{mode}" and variant.metric_protocol == "sysu"
  assert variant.num_trials == 3 and len(variant.queries(0)) == 29
  trials = _score_trials(variant, _features(metadata), person_ids, cameras)
  assert len(trials) == 3
  for trial in trials:
    assert trial["num_valid_queries"] == num_valid_queries
    assert trial["gallery_size"] == gallery_size
  result = protocols.mean_over_trials(trials)
  np.testing.assert_array_equal(result["cmc"], np.ones(gallery_size))
  assert result["mAP"] == pytest.approx(1.0) and result["mINP"] == pytest.approx(1.0)


def test_sysu_trials_scored_at_once_equal_per_trial_rank_metrics_and_average(metadata):
  # Random features: trial t's gallery is the reference draw over the RGB
  # candidates, all trials scored in one `rank_metrics_from_features` call (as
  # `evaluate` does) equal rank_metrics on -(Q Gᵀ) of each trial, and the
  # result is their arithmetic mean.
  person_ids, cameras, relative_paths = metadata
  features = _features(metadata, num_features=8, seed=0)
  variant = protocols.sysu_trials(person_ids, cameras, relative_paths, num_trials=4)
  queries = variant.queries(0)
  galleries = np.stack([variant.gallery(trial) for trial in range(4)])
  trials = rank_metrics_from_features(
      features[queries], features[galleries], person_ids[queries], person_ids[galleries],
      cameras[queries], cameras[galleries], protocol=variant.metric_protocol, distance="cosine")
  candidates = np.flatnonzero(np.isin(cameras, [1, 2, 4, 5]))
  expected_trials = []
  for trial in range(4):
    chosen = candidates[sysu_gallery_indices(
        person_ids[candidates], cameras[candidates], [relative_paths[i] for i in candidates],
        trial=trial)]
    np.testing.assert_array_equal(variant.gallery(trial), chosen)
    distmat = -(features[queries].astype(np.float64) @ features[chosen].T.astype(np.float64))
    expected = rank_metrics(
        distmat, person_ids[queries], person_ids[chosen], cameras[queries], cameras[chosen]
    )
    np.testing.assert_allclose(trials[trial]["cmc"], expected["cmc"], atol=1e-6)
    assert trials[trial]["mAP"] == pytest.approx(expected["mAP"], abs=1e-6)
    expected_trials.append(expected)
  assert len({tuple(variant.gallery(trial)) for trial in range(4)}) > 1
  result = protocols.mean_over_trials(trials)
  np.testing.assert_allclose(
      result["cmc"], np.mean([t["cmc"] for t in expected_trials], axis=0), atol=1e-6
  )
  assert result["mAP"] == pytest.approx(np.mean([t["mAP"] for t in expected_trials]), abs=1e-6)
  assert result["mINP"] == pytest.approx(np.mean([t["mINP"] for t in expected_trials]), abs=1e-6)


def test_negative_cosine_distance():
  query_features = np.array([[1.0, 0.0], [0.6, 0.8]], np.float32)
  gallery_features = np.array([[0.0, 1.0], [1.0, 0.0], [0.8, 0.6]], np.float32)
  np.testing.assert_allclose(
      protocols.negative_cosine_distance(query_features, gallery_features),
      [[0.0, -1.0, -0.8], [-0.8, -0.6, -0.96]],
      atol=1e-6,
  )


# ---------------------------------------------------------------------------
# Official SYSU-MM01 scheme (rand_perm_cam.mat).

REAL_SPLIT_FOLDER = "/work/shared/data/sysu_mm01_eval"


def _write_rand_perm_cam(path, permutations_by_camera_and_id, num_ids):
  """A rand_perm_cam.mat in the official structure: cell{camera}{id} = [trials, n]."""
  import scipy.io

  cells = np.empty((6, 1), dtype=object)
  for camera in range(1, 7):
    per_id = np.empty((num_ids, 1), dtype=object)
    for person_id in range(1, num_ids + 1):
      per_id[person_id - 1, 0] = permutations_by_camera_and_id.get(
          (camera, person_id), np.zeros((0, 0), np.uint8)
      )
    cells[camera - 1, 0] = per_id
  scipy.io.savemat(path, {"rand_perm_cam": cells})


@pytest.fixture(scope="module")
def fake_rand_perm_cam(tmp_path_factory):
  """Permutations for the fake split: 4 trials, row t = a seeded permutation of 1..n."""
  rng = np.random.default_rng(7)
  permutations = {
      (camera, person_id): np.stack([rng.permutation(n) + 1 for _ in range(4)]).astype(np.uint8)
      for (camera, person_id), n in IMAGES_PER_CAMERA_AND_ID.items()
  }
  path = tmp_path_factory.mktemp("split") / "rand_perm_cam.mat"
  _write_rand_perm_cam(path, permutations, num_ids=30)
  return str(path), permutations


@pytest.mark.parametrize("mode, shots", [("all", 1), ("indoor", 1), ("all", 10)])
def test_official_gallery_takes_first_shots_of_each_permutation_row(
    metadata, fake_rand_perm_cam, mode, shots
):
  person_ids, cameras, relative_paths = metadata
  path, permutations = fake_rand_perm_cam
  table = protocols.load_rand_perm_cam(path)
  assert set(table) == set(permutations)
  for trial in (0, 3):
    indices = protocols.sysu_official_gallery_indices(
        person_ids, cameras, relative_paths, trial=trial, mode=mode, shots=shots,
        rand_perm_cam=table,
    )
    expected = sorted(
        f"cam{camera}/{person_id:04d}/{number:04d}.jpg"
        for (camera, person_id), rows in permutations.items()
        if camera in protocols.SYSU_GALLERY_CAMERAS[mode]
        for number in rows[trial, :shots]
    )
    assert sorted(relative_paths[i] for i in indices) == expected


def test_sysu_trials_names_and_sizes(metadata, fake_rand_perm_cam):
  person_ids, cameras, relative_paths = metadata
  table = protocols.load_rand_perm_cam(fake_rand_perm_cam[0])
  agw = protocols.sysu_trials(person_ids, cameras, relative_paths, num_trials=3)
  assert agw.name == "sysu_all" and agw.num_trials == 3
  for trial in range(3):
    np.testing.assert_array_equal(
        agw.gallery(trial), sysu_gallery_indices(person_ids, cameras, relative_paths, trial=trial)
    )
    np.testing.assert_array_equal(agw.queries(trial),
                                  sysu_query_indices(person_ids, cameras, relative_paths))
  official = protocols.sysu_trials(person_ids, cameras, relative_paths, mode="indoor",
                                   num_trials=4, gallery_shots=10, gallery_scheme="official",
                                   rand_perm_cam=table)
  assert official.name == "sysu_indoor_10shot_official"
  # Indoor RGB folders: (6, 1): 5, (6, 2): 3, (10, 1): 9, (17, 2): 6 images -> all of them.
  assert len(official.gallery(0)) == 5 + 3 + 9 + 6
  with pytest.raises(ValueError, match="official"):
    protocols.sysu_trials(person_ids, cameras, relative_paths, gallery_shots=10)
  with pytest.raises(ValueError, match="num_trials"):
    protocols.sysu_trials(person_ids, cameras, relative_paths, num_trials=5,
                          gallery_scheme="official", rand_perm_cam=table)


def test_official_scheme_refuses_a_file_of_another_dataset(metadata, tmp_path):
  person_ids, cameras, relative_paths = metadata
  path = tmp_path / "rand_perm_cam.mat"
  # Camera 1, id 6 has 5 images; a permutation naming image 9 is not this dataset.
  _write_rand_perm_cam(path, {(1, 6): np.array([[9, 1, 2, 3, 4]], np.uint8)}, num_ids=30)
  table = protocols.load_rand_perm_cam(path)
  with pytest.raises(ValueError, match="cam1/0006/0009"):
    protocols.sysu_official_gallery_indices(person_ids, cameras, relative_paths, trial=0,
                                            rand_perm_cam=table, source=str(path))
  with pytest.raises(FileNotFoundError, match="rand_perm_cam"):
    protocols.load_rand_perm_cam(tmp_path / "missing.mat")
  not_mat = tmp_path / "not.mat"
  not_mat.write_text("hello")
  with pytest.raises(ValueError, match="not.mat"):
    protocols.load_rand_perm_cam(not_mat)


@pytest.mark.skipif(not os.path.isdir(REAL_SPLIT_FOLDER),
                    reason=f"the official SYSU-MM01 split files are not in {REAL_SPLIT_FOLDER}")
@pytest.mark.parametrize("mode, shots, expected_size", [
    ("all", 1, 301), ("indoor", 1, 112), ("all", 10, 3010), ("indoor", 10, 1120),
])
def test_official_gallery_sizes_on_the_real_split_files(mode, shots, expected_size):
  # Spec §1.1.3: 301 / 112 single-shot and 3,010 / 1,120 multi-shot gallery images.
  # The test split's RGB file list is rebuilt from the permutation sizes (n images
  # per (camera, id) = the permutation length).
  import scipy.io

  table = protocols.load_rand_perm_cam(os.path.join(REAL_SPLIT_FOLDER, "rand_perm_cam.mat"))
  test_ids = scipy.io.loadmat(os.path.join(REAL_SPLIT_FOLDER, "test_id.mat"))["id"].ravel()
  assert len(test_ids) == 96
  paths, person_ids, cameras = [], [], []
  for (camera, person_id), rows in table.items():
    if person_id in test_ids and camera in (1, 2, 4, 5):
      assert rows.shape[0] == 10 and sorted(rows[0]) == list(range(1, rows.shape[1] + 1))
      for number in range(1, rows.shape[1] + 1):
        paths.append(f"cam{camera}/{person_id:04d}/{number:04d}.jpg")
        person_ids.append(person_id)
        cameras.append(camera)
  assert len(paths) == 1374 + 1565 + 1918 + 1918  # test RGB images per camera (spec)
  for trial in (0, 9):
    indices = protocols.sysu_official_gallery_indices(
        person_ids, cameras, paths, trial=trial, mode=mode, shots=shots, rand_perm_cam=table)
    assert len(indices) == len(set(indices.tolist())) == expected_size


# ---------------------------------------------------------------------------
# RegDB and LLCM.


def test_regdb_directions():
  modalities = np.array([0, 1, 1, 0, 0, 1])
  forward = protocols.regdb_trials(modalities)
  assert forward.name == "regdb_visible_to_thermal" and forward.num_trials == 1
  np.testing.assert_array_equal(forward.queries(0), [0, 3, 4])
  np.testing.assert_array_equal(forward.gallery(0), [1, 2, 5])
  backward = protocols.regdb_trials(modalities, direction="thermal_to_visible",
                                    cmc="deduplicated")
  assert backward.name == "regdb_thermal_to_visible_dedup_cmc"
  assert backward.cmc == "deduplicated" and backward.query_modality == splits.INFRARED
  np.testing.assert_array_equal(backward.queries(0), [1, 2, 5])
  with pytest.raises(ValueError, match="regdb_directions"):
    protocols.regdb_trials(modalities, direction="v2t")


@pytest.fixture(scope="module")
def llcm_metadata():
  """A small LLCM test split: 4 ids; VIS cams 1..9 and NIR cams without 3, varying counts."""
  rng = np.random.default_rng(8)
  paths, person_ids, cameras, modalities = [], [], [], []
  for person_id in (3, 11, 12, 40):
    for modality, folder, camera_list in ((0, "test_vis", protocols.LLCM_VISIBLE_CAMERAS),
                                          (1, "test_nir", protocols.LLCM_INFRARED_CAMERAS)):
      for camera in rng.choice(camera_list, size=3, replace=False):
        for k in range(int(rng.integers(1, 5))):
          paths.append(f"{folder}/cam{camera}/{person_id:04d}/c{camera}_{k:03d}.jpg")
          person_ids.append(person_id)
          cameras.append(int(camera))
          modalities.append(modality)
  order = rng.permutation(len(paths))
  return (np.array(person_ids)[order], np.array(cameras)[order], np.array(modalities)[order],
          [paths[i] for i in order])


def _reference_llcm_draw(paths, trial, folder, camera_list):
  """The reference's process_gallery_llcm draw over a folder list, paths only."""
  random.seed(trial)
  by_folder = {}
  for path in paths:
    if path.startswith(folder + "/"):
      by_folder.setdefault(os.path.dirname(path), []).append(path)
  chosen = []
  for person_id in sorted({path.split("/")[2] for path in by_folder}):
    for camera in camera_list:
      files = by_folder.get(f"{folder}/cam{camera}/{person_id}")
      if files:
        chosen.append(random.choice(sorted(files)))
  return chosen


def test_llcm_directions_and_draws(llcm_metadata):
  person_ids, cameras, modalities, paths = llcm_metadata
  saved_state = random.getstate()
  try:
    ir_to_vis = protocols.llcm_trials(person_ids, cameras, modalities, paths, num_trials=3)
    vis_to_ir = protocols.llcm_trials(person_ids, cameras, modalities, paths,
                                      direction="vis_to_ir", num_trials=3)
    swapped = protocols.llcm_trials(person_ids, cameras, modalities, paths,
                                    direction="vis_to_ir_swapped", num_trials=3)
    visible = set(np.flatnonzero(modalities == 0).tolist())
    infrared = set(np.flatnonzero(modalities == 1).tolist())
    assert set(ir_to_vis.queries(0).tolist()) == infrared
    assert set(vis_to_ir.queries(0).tolist()) == visible
    assert set(swapped.gallery(0).tolist()) == visible
    for trial in range(3):
      vis_draw = _reference_llcm_draw(paths, trial, "test_vis", protocols.LLCM_VISIBLE_CAMERAS)
      nir_draw = _reference_llcm_draw(paths, trial, "test_nir", protocols.LLCM_INFRARED_CAMERAS)
      assert [paths[i] for i in ir_to_vis.gallery(trial)] == vis_draw
      assert [paths[i] for i in vis_to_ir.gallery(trial)] == nir_draw
      # The reference's "VIS→IR": the sampled NIR images are the queries.
      assert [paths[i] for i in swapped.queries(trial)] == nir_draw
  finally:
    random.setstate(saved_state)
  assert swapped.query_modality == splits.INFRARED and swapped.metric_protocol == "llcm"
  assert ir_to_vis.name == "llcm_ir_to_vis" and swapped.name == "llcm_vis_to_ir_swapped"
  # Queries in the reference's order: id, camera, file name.
  query_keys = [(person_ids[i], cameras[i], paths[i]) for i in ir_to_vis.queries(0)]
  assert query_keys == sorted(query_keys)
