"""Tests of the SYSU-MM01 protocol: query order, the reference's random gallery
draw (against a direct re-implementation over a folder tree), and
`evaluate_sysu` on features with a known answer."""

import os
import random

import numpy as np
import pytest

from vireid_jax.evaluation import evaluate_sysu
from vireid_jax.evaluation import protocols
from vireid_jax.evaluation import rank_metrics
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


def _split(metadata, num_features=None, seed=None):
  """Queries and RGB candidates of the fake split, with one-hot id features or
  random unit features."""
  person_ids, cameras, relative_paths = metadata
  id_position = {person_id: i for i, person_id in enumerate(TEST_IDS)}
  if seed is None:
    features = np.eye(len(TEST_IDS), dtype=np.float32)[[id_position[p] for p in person_ids]]
  else:
    features = np.random.default_rng(seed).normal(size=[len(person_ids), num_features])
    features = (features / np.linalg.norm(features, axis=1, keepdims=True)).astype(np.float32)
  query = sysu_query_indices(person_ids, cameras, relative_paths)
  candidates = np.flatnonzero(np.isin(cameras, [1, 2, 4, 5]))
  return (
      features[query],
      person_ids[query],
      cameras[query],
      features[candidates],
      person_ids[candidates],
      cameras[candidates],
      [relative_paths[i] for i in candidates],
  )


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
def test_evaluate_sysu_with_one_hot_identity_features(
    metadata, mode, num_valid_queries, gallery_size
):
  # True matches are at distance -1, everything else at 0: every valid query
  # ranks all its matches first, so R1 = mAP = mINP = 1 in every trial.
  result = evaluate_sysu(*_split(metadata), mode=mode, num_trials=3, max_rank=20)
  assert result["protocol"] == f"sysu_{mode}"
  assert result["num_trials"] == 3 and len(result["trials"]) == 3
  assert result["num_queries"] == 29
  for trial in result["trials"]:
    assert trial["num_valid_queries"] == num_valid_queries
    assert trial["gallery_size"] == gallery_size
  np.testing.assert_array_equal(result["cmc"], np.ones(gallery_size))
  assert result["mAP"] == pytest.approx(1.0) and result["mINP"] == pytest.approx(1.0)


def test_evaluate_sysu_averages_per_trial_rank_metrics(metadata):
  # Random features: each trial must equal rank_metrics on -(Q Gᵀ) of that
  # trial's drawn gallery, and the result their arithmetic mean.
  split = _split(metadata, num_features=8, seed=0)
  query_features, query_pids, query_cams = split[:3]
  candidate_features, candidate_pids, candidate_cams, paths = split[3:]
  result = evaluate_sysu(*split, num_trials=4)
  expected_trials = []
  for trial in range(4):
    chosen = sysu_gallery_indices(candidate_pids, candidate_cams, paths, trial=trial)
    distmat = -(query_features.astype(np.float64) @ candidate_features[chosen].T.astype(np.float64))
    expected = rank_metrics(
        distmat, query_pids, candidate_pids[chosen], query_cams, candidate_cams[chosen]
    )
    np.testing.assert_array_equal(result["trials"][trial]["gallery_indices"], chosen)
    np.testing.assert_allclose(result["trials"][trial]["cmc"], expected["cmc"], atol=1e-6)
    assert result["trials"][trial]["mAP"] == pytest.approx(expected["mAP"], abs=1e-6)
    expected_trials.append(expected)
  assert len({tuple(t["gallery_indices"]) for t in result["trials"]}) > 1
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
