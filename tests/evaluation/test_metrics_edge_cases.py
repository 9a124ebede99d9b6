"""Edge cases of `rank_metrics`, which ranks by counting instead of sorting: ties
(broken by gallery index, as a stable sort breaks them), special float values,
queries without a valid match, galleries emptied by the removal rule, CMC curves
longer than the kept gallery, and trials whose identity tables differ."""

import numpy as np
import pytest

from vireid_jax.evaluation import rank_metrics
from vireid_jax.evaluation import rank_metrics_from_features


def _stable_reference(distmat, q_pids, g_pids, q_cams, g_cams, protocol, cmc, max_rank=20):
  """The reference loop (spec §7.2) on a stable argsort of the float32 distances.

  A deduplicated list shorter than max_rank keeps its last value (the reference
  would build a ragged array); every curve is averaged over valid queries.
  """
  distmat = np.asarray(distmat, np.float32)
  num_q, num_g = distmat.shape
  max_rank = min(max_rank, num_g)
  indices = np.argsort(distmat, axis=1, kind="stable")
  curves, aps, inps = [], [], []
  for q in range(num_q):
    order = indices[q]
    if protocol == "sysu":
      remove = (q_cams[q] == 3) & (g_cams[order] == 2)
    elif protocol == "llcm":
      remove = (g_pids[order] == q_pids[q]) & (g_cams[order] == q_cams[q])
    else:
      remove = np.zeros(num_g, bool)
    ranked = g_pids[order][~remove]
    match = ranked == q_pids[q]
    if not match.any():
      continue
    if cmc == "deduplicated":
      _, first = np.unique(ranked, return_index=True)
      hits = ranked[np.sort(first)] == q_pids[q]
    else:
      hits = match
    curve = np.minimum(np.cumsum(hits), 1)[:max_rank]
    curves.append(np.pad(curve, (0, max_rank - len(curve)), mode="edge"))
    positions = np.flatnonzero(match)
    aps.append(np.mean(np.arange(1, len(positions) + 1) / (positions + 1.0)))
    inps.append(len(positions) / (positions[-1] + 1.0))
  if not curves:
    return np.zeros(max_rank), 0.0, 0.0, 0
  return np.mean(curves, axis=0), np.mean(aps), np.mean(inps), len(curves)


def _assert_equal_to_reference(result, reference, atol=1e-12):
  reference_cmc, reference_map, reference_minp, reference_num_valid = reference
  assert result["num_valid_queries"] == reference_num_valid
  np.testing.assert_allclose(result["cmc"], reference_cmc, rtol=0, atol=atol)
  np.testing.assert_allclose([result["mAP"], result["mINP"]], [reference_map, reference_minp],
                             rtol=0, atol=atol)


PROTOCOL_CASES = [
    ("sysu", "deduplicated", [3, 6], [1, 2, 4, 5]),
    ("llcm", "deduplicated", [1, 2, 3], [1, 2, 3]),
    ("regdb", "standard", [1], [2]),
    ("regdb", "deduplicated", [1], [2]),
]


@pytest.mark.parametrize("protocol, cmc, query_cameras, gallery_cameras", PROTOCOL_CASES)
def test_heavy_ties_are_broken_by_gallery_index(protocol, cmc, query_cameras, gallery_cameras):
  # Distances from 4 values: most of a row is tied, so the tie rule decides
  # almost every position. -0.0 and +0.0 are one value.
  rng = np.random.default_rng(11)
  num_query, num_gallery = 90, 60
  distmat = rng.choice(np.array([-0.0, 0.0, 0.5, 1.0, 2.0], np.float32),
                       size=[num_query, num_gallery])
  gallery_pids = rng.integers(0, 12, num_gallery)
  query_pids = rng.integers(0, 14, num_query)
  args = (distmat, query_pids, gallery_pids, rng.choice(query_cameras, num_query),
          rng.choice(gallery_cameras, num_gallery))
  result = rank_metrics(*args, protocol=protocol, cmc=cmc, query_block_size=32)
  _assert_equal_to_reference(result, _stable_reference(*args, protocol, cmc))
  # The case is a real test of the tie rule: ties broken the other way (by
  # reversed gallery index) give other metrics.
  reversed_args = (distmat[:, ::-1], query_pids, gallery_pids[::-1], args[3], args[4][::-1])
  reversed_reference = _stable_reference(*reversed_args, protocol, cmc)
  assert abs(result["mAP"] - reversed_reference[1]) > 1e-3


def test_nan_and_infinities_rank_like_a_stable_sort():
  # NumPy's and JAX's sorts put NaN after +inf, NaNs in index order.
  rng = np.random.default_rng(12)
  distmat = rng.choice(np.array([np.nan, np.inf, -np.inf, 1.0, -1.0], np.float32), size=[40, 30])
  args = (distmat, rng.integers(0, 5, 40), rng.integers(0, 5, 30), np.ones(40), 2 * np.ones(30))
  result = rank_metrics(*args, protocol="regdb")
  _assert_equal_to_reference(result, _stable_reference(*args, "regdb", "standard"))


def test_float64_distances_closer_than_float32_resolution_tie():
  # In float64 item 1 is closer; in float32 both are 1.0, so item 0 (the match)
  # comes first by index: AP = INP = 1.
  distmat = np.array([[1.0 + 1e-12, 1.0]])
  result = rank_metrics(distmat, [7], [7, 8], [1], [2, 2], protocol="regdb")
  assert result["mAP"] == result["mINP"] == 1.0
  np.testing.assert_array_equal(result["cmc"], [1, 1])


def test_integer_distances_rank_like_their_float_values():
  rng = np.random.default_rng(13)
  distmat = rng.integers(-3, 4, [25, 20])
  args = (rng.integers(0, 6, 25), rng.integers(0, 6, 20), rng.choice([3, 6], 25),
          rng.choice([1, 2], 20))
  as_integers = rank_metrics(distmat, *args)
  as_floats = rank_metrics(distmat.astype(np.float32), *args)
  np.testing.assert_array_equal(as_integers["cmc"], as_floats["cmc"])
  assert as_integers["mAP"] == as_floats["mAP"] and as_integers["mINP"] == as_floats["mINP"]


def test_queries_without_a_valid_match_do_not_count():
  # Gallery: pids 1, 1, 2, 3 in cameras 2, 1, 2, 2. Camera-3 queries drop the
  # camera-2 items: a pid-2 camera-3 query has no match left, a pid-5 query
  # has none at all. The valid camera-6 pid-2 query and pid-1 camera-3 query
  # alone must give the same metrics as with the invalid ones added.
  distmat = np.array([[0.4, 0.3, 0.2, 0.1]] * 4, np.float32)
  gallery = ([1, 1, 2, 3], [2, 1, 2, 2])
  query_pids, query_cams = np.array([2, 1, 2, 5]), np.array([6, 3, 3, 6])
  everything = rank_metrics(distmat, query_pids, *gallery[:1], query_cams, gallery[1])
  valid_only = rank_metrics(distmat[:2], query_pids[:2], gallery[0], query_cams[:2], gallery[1])
  assert everything["num_valid_queries"] == valid_only["num_valid_queries"] == 2
  np.testing.assert_array_equal(everything["cmc"], valid_only["cmc"])
  assert everything["mAP"] == valid_only["mAP"]
  # pid 2 from camera 6: ranked pids 3, 2, 1, 1 -> match at 1, AP = INP = 1/2,
  # dedup rank 1. pid 1 from camera 3: kept items 1 (pid 1) only -> rank 0, AP 1.
  np.testing.assert_allclose([valid_only["mAP"], valid_only["mINP"]], [3 / 4, 3 / 4])
  np.testing.assert_allclose(valid_only["cmc"], [1 / 2, 1, 1, 1])


@pytest.mark.parametrize("protocol", ["sysu", "llcm"])
def test_gallery_emptied_by_the_removal_rule(protocol):
  # sysu: camera-3 queries against an all-camera-2 gallery; llcm: every gallery
  # item shares the query's pid and camera. Nothing is left to rank.
  distmat = np.random.default_rng(14).random([3, 5]).astype(np.float32)
  result = rank_metrics(distmat, [4, 4, 4], [4] * 5, [3, 3, 3] if protocol == "sysu" else [2] * 3,
                        [2] * 5, protocol=protocol)
  assert result["num_valid_queries"] == 0
  assert result["mAP"] == result["mINP"] == 0.0
  np.testing.assert_array_equal(result["cmc"], np.zeros(5))


def test_max_rank_beyond_the_kept_gallery():
  # 6 gallery items, 4 in camera 2: a camera-3 query keeps items 4 and 5 only
  # (pids 7, 9), ranked 5 then 4 by distance; its pid 9 is first. A camera-6
  # query keeps all: pids 9, 8, 8, 7, 7, 9 in index order (distances 0.1..0.6).
  gallery_pids, gallery_cams = [9, 8, 8, 7, 7, 9], [2, 2, 2, 2, 1, 4]
  distmat = np.array([[0.1, 0.2, 0.3, 0.4, 0.6, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]],
                     np.float32)
  result = rank_metrics(distmat, [9, 7], gallery_pids, [3, 6], gallery_cams, max_rank=20)
  # Dedup ranks 0 and 2 (pids 9, 8 before 7); curves 1,1,1,... and 0,0,1,...
  np.testing.assert_allclose(result["cmc"], [1 / 2, 1 / 2, 1, 1, 1, 1])
  # AP: first query 1; second: matches at 3 and 4 -> (1/4 + 2/5) / 2.
  np.testing.assert_allclose(result["mAP"], (1 + (1 / 4 + 2 / 5) / 2) / 2, atol=1e-15)
  np.testing.assert_allclose(result["mINP"], (1 + 2 / 5) / 2, atol=1e-15)


def test_trials_with_different_identity_tables():
  # Trial 0: two identities with many items each; trial 1: thirty singletons.
  # The per-identity tables are padded to a common shape across trials; every
  # trial must equal the stable reference on the same float32 distances.
  rng = np.random.default_rng(15)
  num_query, num_gallery, dim = 50, 30, 8
  query_features = rng.normal(size=[num_query, dim]).astype(np.float32)
  gallery_features = rng.normal(size=[2, num_gallery, dim]).astype(np.float32)
  gallery_pids = np.stack([rng.integers(0, 2, num_gallery), np.arange(num_gallery)])
  query_pids = rng.integers(0, num_gallery, num_query)
  query_pids[:20] = rng.integers(0, 2, 20)
  query_cams, gallery_cams = rng.choice([3, 6], num_query), rng.choice([1, 2], [2, num_gallery])
  results = rank_metrics_from_features(query_features, gallery_features, query_pids,
                                       gallery_pids, query_cams, gallery_cams,
                                       protocol="sysu", distance="euclidean", max_rank=10,
                                       query_block_size=16)
  for trial, result in enumerate(results):
    differences = query_features[:, None] - gallery_features[trial][None]
    distmat = np.sqrt(np.sum(differences.astype(np.float64) ** 2, axis=-1))
    reference = _stable_reference(distmat, query_pids, gallery_pids[trial], query_cams,
                                  gallery_cams[trial], "sysu", "deduplicated", max_rank=10)
    assert reference[3] > 0
    _assert_equal_to_reference(result, reference, atol=1e-6)
