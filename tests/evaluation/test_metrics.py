"""Tests of `vireid_jax.evaluation.rank_metrics` against hand-computed cases and
a per-query NumPy loop written like the reference (spec §7.2)."""

import subprocess
import sys

import numpy as np
import pytest

from vireid_jax.evaluation import rank_metrics
from vireid_jax.evaluation import rank_metrics_from_features

# A hand-made gallery of 7 items:
#   index:  0  1  2  3  4  5  6
#   pid:    1  2  1  3  2  1  4
#   camera: 2  1  1  4  2  5  2
GALLERY_PIDS = np.array([1, 2, 1, 3, 2, 1, 4])
GALLERY_CAMS = np.array([2, 1, 1, 4, 2, 5, 2])
# Distance row ranking the gallery in index order 0, 1, ..., 6.
IN_ORDER = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
# Distance row ranking the gallery as 1, 4, 3, 0, 2, 5, 6 (pids 2, 2, 3, 1, 1, 1, 4).
PIDS_2_2_3_FIRST = [0.4, 0.1, 0.5, 0.3, 0.2, 0.6, 0.7]

# Queries:
#   q0: pid 1, cam 3, IN_ORDER
#   q1: pid 1, cam 6, IN_ORDER
#   q2: pid 3, cam 6, PIDS_2_2_3_FIRST
#   q3: pid 4, cam 3, IN_ORDER  (only true match, item 6, is in camera 2)
#   q4: pid 9, cam 6, IN_ORDER  (pid absent from the gallery)
QUERY_PIDS = np.array([1, 1, 3, 4, 9])
QUERY_CAMS = np.array([3, 6, 6, 3, 6])
DISTMAT = np.array([IN_ORDER, IN_ORDER, PIDS_2_2_3_FIRST, IN_ORDER, IN_ORDER], np.float32)


def test_sysu_hand_computed_case():
  # q0 (cam 3): camera-2 items 0, 4, 6 are dropped whatever their pid; the kept
  #   list is items 1, 2, 3, 5 = pids 2, 1, 3, 1: matches at positions 1 and 3.
  #   AP = (1/2) (1/2 + 2/4) = 1/2; INP = 2/4 = 1/2; dedup list 2, 1, 3: rank 1.
  # q1 (cam 6): nothing dropped; pids 1, 2, 1, 3, 2, 1, 4: matches at 0, 2, 5.
  #   AP = (1/3) (1/1 + 2/3 + 3/6) = 13/18; INP = 3/6 = 1/2; dedup rank 0.
  # q2 (cam 6): pids 2, 2, 3, ...: one match at position 2.
  #   AP = 1/3; INP = 1/3; dedup list 2, 3, 1, 4: rank 1.
  # q3: its only match (item 6, camera 2) is dropped -> invalid.
  # q4: pid 9 is not in the gallery -> invalid.
  result = rank_metrics(DISTMAT, QUERY_PIDS, GALLERY_PIDS, QUERY_CAMS, GALLERY_CAMS)

  assert result["num_valid_queries"] == 3
  # Dedup ranks 1, 0, 1 over 3 valid queries; max_rank 20 is clipped to G = 7.
  np.testing.assert_allclose(result["cmc"], [1 / 3, 1, 1, 1, 1, 1, 1], atol=1e-7)
  np.testing.assert_allclose(result["mAP"], (1 / 2 + 13 / 18 + 1 / 3) / 3, atol=1e-7)
  np.testing.assert_allclose(result["mINP"], (1 / 2 + 1 / 2 + 1 / 3) / 3, atol=1e-7)


def test_camera3_query_whose_only_match_is_in_camera2_is_excluded():
  # q3 alone: invalid, so there is nothing to average.
  alone = rank_metrics(DISTMAT[3:4], QUERY_PIDS[3:4], GALLERY_PIDS, QUERY_CAMS[3:4], GALLERY_CAMS)
  assert alone["num_valid_queries"] == 0
  # The same query from camera 6 keeps item 6 at position 6: AP = INP = 1/7.
  from_camera6 = rank_metrics(DISTMAT[3:4], QUERY_PIDS[3:4], GALLERY_PIDS, [6], GALLERY_CAMS)
  assert from_camera6["num_valid_queries"] == 1
  np.testing.assert_allclose(from_camera6["mAP"], 1 / 7, atol=1e-7)
  np.testing.assert_allclose(from_camera6["mINP"], 1 / 7, atol=1e-7)
  # Adding the invalid q3 and q4 to q0 changes nothing: they are skipped, not zeros.
  q0_only = rank_metrics(DISTMAT[:1], QUERY_PIDS[:1], GALLERY_PIDS, QUERY_CAMS[:1], GALLERY_CAMS)
  with_invalid = rank_metrics(
      DISTMAT[[0, 3, 4]], QUERY_PIDS[[0, 3, 4]], GALLERY_PIDS, QUERY_CAMS[[0, 3, 4]], GALLERY_CAMS
  )
  np.testing.assert_array_equal(with_invalid["cmc"], q0_only["cmc"])
  assert with_invalid["mAP"] == q0_only["mAP"] == pytest.approx(0.5)
  assert with_invalid["num_valid_queries"] == 1


def test_no_valid_query_returns_zeros():
  # q4's pid is absent; q3 loses its only match; regdb keeps q3's match though.
  result = rank_metrics(DISTMAT[3:], QUERY_PIDS[3:], GALLERY_PIDS, QUERY_CAMS[3:], GALLERY_CAMS)
  assert result["num_valid_queries"] == 0
  assert result["mAP"] == 0.0 and result["mINP"] == 0.0
  np.testing.assert_array_equal(result["cmc"], np.zeros(7))


def test_dedup_cmc_differs_from_standard_cmc_at_rank2():
  # q2 ranks pids 2, 2, 3, ...: the first true match is at position 2 (standard
  # CMC hit from rank 3), but only one distinct pid precedes it (dedup hit from
  # rank 2). Camera 6 drops nothing under "sysu", so only the CMC kind differs.
  args = (DISTMAT[2:3], QUERY_PIDS[2:3], GALLERY_PIDS, QUERY_CAMS[2:3], GALLERY_CAMS)
  dedup = rank_metrics(*args, protocol="sysu")
  standard = rank_metrics(*args, protocol="regdb")
  np.testing.assert_array_equal(dedup["cmc"][:3], [0, 1, 1])
  np.testing.assert_array_equal(standard["cmc"][:3], [0, 0, 1])
  # AP and INP do not depend on the CMC kind.
  assert dedup["mAP"] == standard["mAP"] == pytest.approx(1 / 3)


def test_regdb_drops_nothing_and_ignores_cameras():
  # Same data as the sysu case, but nothing is removed:
  # q0 and q1 both rank pids 1, 2, 1, 3, 2, 1, 4: AP 13/18, INP 1/2, first hit 0.
  # q2: first hit 2, AP = INP = 1/3. q3: match at 6, AP = INP = 1/7. q4 invalid.
  result = rank_metrics(
      DISTMAT, QUERY_PIDS, GALLERY_PIDS, QUERY_CAMS, GALLERY_CAMS, protocol="regdb"
  )
  assert result["num_valid_queries"] == 4
  # First hits 0, 0, 2, 6.
  np.testing.assert_allclose(
      result["cmc"], [2 / 4, 2 / 4, 3 / 4, 3 / 4, 3 / 4, 3 / 4, 1], atol=1e-7
  )
  np.testing.assert_allclose(result["mAP"], (13 / 18 + 13 / 18 + 1 / 3 + 1 / 7) / 4, atol=1e-7)
  np.testing.assert_allclose(result["mINP"], (1 / 2 + 1 / 2 + 1 / 3 + 1 / 7) / 4, atol=1e-7)


def test_llcm_drops_same_pid_same_camera_only():
  # Gallery ranked in index order: (pid 1, cam 2), (pid 2, cam 2), (pid 1, cam 3).
  # Query pid 1 from camera 2:
  #   llcm drops item 0 only (same pid AND camera); item 1 shares only the
  #   camera and stays: pids 2, 1 -> match at 1, AP = INP = 1/2, CMC [0, 1].
  #   regdb keeps everything: pids 1, 2, 1 -> AP = (1 + 2/3)/2 = 5/6, INP = 2/3.
  gallery_pids, gallery_cams = [1, 2, 1], [2, 2, 3]
  distmat = np.array([[0.1, 0.2, 0.3]])
  llcm = rank_metrics(distmat, [1], gallery_pids, [2], gallery_cams, protocol="llcm")
  regdb = rank_metrics(distmat, [1], gallery_pids, [2], gallery_cams, protocol="regdb")
  np.testing.assert_allclose(llcm["cmc"], [0, 1, 1])
  np.testing.assert_allclose([llcm["mAP"], llcm["mINP"]], [1 / 2, 1 / 2], atol=1e-7)
  np.testing.assert_allclose(regdb["cmc"], [1, 1, 1])
  np.testing.assert_allclose([regdb["mAP"], regdb["mINP"]], [5 / 6, 2 / 3], atol=1e-7)
  # A query whose only matches share its camera is invalid under llcm.
  only_same_camera = rank_metrics(distmat, [2], gallery_pids, [2], gallery_cams, protocol="llcm")
  assert only_same_camera["num_valid_queries"] == 0


def test_ties_keep_gallery_order():
  # All distances equal: the stable sort keeps gallery order pids 5, 7, 5, 7,
  # so query pid 7 has matches at positions 1 and 3: AP = (1/2 + 2/4)/2 = 1/2.
  result = rank_metrics(
      np.full([1, 4], 0.5), [7], [5, 7, 5, 7], [6], [1, 1, 1, 1], protocol="regdb"
  )
  np.testing.assert_allclose(result["cmc"], [0, 1, 1, 1])
  np.testing.assert_allclose([result["mAP"], result["mINP"]], [1 / 2, 2 / 4], atol=1e-7)


def test_max_rank_is_clipped_to_gallery_size():
  args = (DISTMAT, QUERY_PIDS, GALLERY_PIDS, QUERY_CAMS, GALLERY_CAMS)
  assert rank_metrics(*args, max_rank=20)["cmc"].shape == (7,)
  short = rank_metrics(*args, max_rank=2)
  np.testing.assert_allclose(short["cmc"], [1 / 3, 1], atol=1e-7)
  # max_rank does not change mAP/mINP.
  assert short["mAP"] == rank_metrics(*args)["mAP"]


def test_non_integer_person_ids():
  # Ids are only compared: strings work like the integers they replace.
  as_strings = rank_metrics(
      DISTMAT,
      QUERY_PIDS.astype(str),
      GALLERY_PIDS.astype(str),
      QUERY_CAMS,
      GALLERY_CAMS,
  )
  as_integers = rank_metrics(DISTMAT, QUERY_PIDS, GALLERY_PIDS, QUERY_CAMS, GALLERY_CAMS)
  np.testing.assert_array_equal(as_strings["cmc"], as_integers["cmc"])
  assert as_strings["mAP"] == as_integers["mAP"]


def test_rejects_bad_arguments():
  with pytest.raises(ValueError, match="protocol"):
    rank_metrics(DISTMAT, QUERY_PIDS, GALLERY_PIDS, QUERY_CAMS, GALLERY_CAMS, protocol="market")
  with pytest.raises(ValueError, match="gallery"):
    rank_metrics(DISTMAT, QUERY_PIDS, GALLERY_PIDS[:-1], QUERY_CAMS, GALLERY_CAMS)


def _reference_metrics(distmat, q_pids, g_pids, q_camids, g_camids, protocol, max_rank=20):
  """The reference's eval_sysu / eval_llcm / eval_regdb (spec §7.2), per-query loop."""
  num_q, num_g = distmat.shape
  max_rank = min(max_rank, num_g)
  indices = np.argsort(distmat, axis=1)
  pred_label = g_pids[indices]
  matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
  if protocol == "regdb":
    q_camids = np.ones(num_q, np.int32)
    g_camids = 2 * np.ones(num_g, np.int32)
  new_all_cmc, all_cmc, all_ap, all_inp = [], [], [], []
  num_valid_q = 0.0
  for q_idx in range(num_q):
    q_pid, q_camid = q_pids[q_idx], q_camids[q_idx]
    order = indices[q_idx]
    if protocol == "sysu":
      remove = (q_camid == 3) & (g_camids[order] == 2)
    else:
      remove = (g_pids[order] == q_pid) & (g_camids[order] == q_camid)
    keep = np.invert(remove)
    new_cmc = pred_label[q_idx][keep]
    new_index = np.unique(new_cmc, return_index=True)[1]
    new_cmc = np.array([new_cmc[index] for index in sorted(new_index)])
    new_match = (new_cmc == q_pid).astype(np.int32)
    new_all_cmc.append(new_match.cumsum()[:max_rank])
    orig_cmc = matches[q_idx][keep]
    if not np.any(orig_cmc):
      continue
    cmc = orig_cmc.cumsum()
    pos_max_idx = np.max(np.where(orig_cmc == 1))
    all_inp.append(cmc[pos_max_idx] / (pos_max_idx + 1.0))
    cmc[cmc > 1] = 1
    all_cmc.append(cmc[:max_rank])
    num_valid_q += 1.0
    tmp_cmc = np.asarray([x / (i + 1.0) for i, x in enumerate(orig_cmc.cumsum())]) * orig_cmc
    all_ap.append(tmp_cmc.sum() / orig_cmc.sum())
  assert num_valid_q > 0
  if protocol == "regdb":
    curve = np.asarray(all_cmc, np.float64).sum(0) / num_valid_q
  else:
    curve = np.asarray(new_all_cmc, np.float64).sum(0) / num_valid_q
  return curve, np.mean(all_ap), np.mean(all_inp), int(num_valid_q)


def _random_problem(seed, num_query, num_gallery, num_ids, query_cameras, gallery_cameras):
  rng = np.random.default_rng(seed)
  # A permutation of a float32-exact grid: no ties, identical in float32 and float64.
  distmat = rng.permuted(
      np.tile(np.arange(num_gallery, dtype=np.float64), (num_query, 1)), axis=1
  ) + rng.integers(0, 8, size=(num_query, 1)) / 8
  # Some query ids are missing from the gallery, so some queries are invalid.
  gallery_pids = rng.integers(0, num_ids, num_gallery)
  query_pids = rng.integers(0, num_ids + num_ids // 8 + 1, num_query)
  query_cams = rng.choice(query_cameras, num_query)
  gallery_cams = rng.choice(gallery_cameras, num_gallery)
  return distmat, query_pids, gallery_pids, query_cams, gallery_cams


@pytest.mark.parametrize(
    "protocol, query_cameras, gallery_cameras",
    [
        ("sysu", [3, 6], [1, 2, 4, 5]),
        ("llcm", list(range(1, 10)), list(range(1, 10))),
        ("regdb", [1], [2]),
    ],
)
def test_matches_reference_loop_on_random_problem(protocol, query_cameras, gallery_cameras):
  problem = _random_problem(1, 180, 150, 40, query_cameras, gallery_cameras)
  reference_cmc, reference_map, reference_minp, reference_num_valid = _reference_metrics(
      *problem, protocol
  )
  assert 0 < reference_num_valid < 180  # the case covers invalid queries
  # 180 queries in blocks of 64: two full blocks and a padded one.
  result = rank_metrics(*problem, protocol=protocol, query_block_size=64)
  assert result["num_valid_queries"] == reference_num_valid
  np.testing.assert_allclose(result["cmc"], reference_cmc, rtol=0, atol=1e-6)
  np.testing.assert_allclose(result["mAP"], reference_map, rtol=0, atol=1e-6)
  np.testing.assert_allclose(result["mINP"], reference_minp, rtol=0, atol=1e-6)


def test_float32_precision_with_many_matches_per_query():
  # The float32 rounding of a query's AP grows with its number of matches R:
  # here R ~ 150 and good rankings (AP ~ 0.87), harder than SYSU (R <= 4) or
  # RegDB (R = 10); the float64 reference must still agree to 1e-6.
  rng = np.random.default_rng(3)
  num_query, num_gallery = 40, 3000
  gallery_pids = rng.integers(0, 20, num_gallery)
  query_pids = rng.integers(0, 20, num_query)
  is_match = query_pids[:, None] == gallery_pids[None, :]
  noise = rng.random((2, num_query, num_gallery))
  scores = 3 * is_match * noise[0] + noise[1]
  # Distances = rank of the score: distinct integers, so no ties.
  distmat = np.argsort(np.argsort(-scores, axis=1), axis=1).astype(np.float64)
  problem = (distmat, query_pids, gallery_pids, np.ones(num_query), 2 * np.ones(num_gallery))
  reference_cmc, reference_map, reference_minp, _ = _reference_metrics(*problem, "regdb")
  assert reference_map > 0.8
  result = rank_metrics(*problem, protocol="regdb")
  np.testing.assert_allclose(result["cmc"], reference_cmc, rtol=0, atol=1e-6)
  np.testing.assert_allclose(result["mAP"], reference_map, rtol=0, atol=1e-6)
  np.testing.assert_allclose(result["mINP"], reference_minp, rtol=0, atol=1e-6)


def test_evaluation_package_does_not_import_tensorflow():
  code = (
      "import sys, vireid_jax.evaluation; "
      "sys.exit(any(name.split('.')[0] == 'tensorflow' for name in sys.modules))"
  )
  assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def _reference_mcja_metrics(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=20):
  """MCJA's metric (spec mcja.md §9): same-camera removal, deduplicated CMC, per-query loop."""
  sorted_indices = np.argsort(distmat, axis=1)
  cmc_counts = np.zeros(len(np.unique(g_pids)))
  num_valid, ap_sum, inp_sum = 0, 0.0, 0.0
  for q in range(distmat.shape[0]):
    order = sorted_indices[q]
    ranked = g_pids[order][g_cams[order] != q_cams[q]]
    _, first = np.unique(ranked, return_index=True)
    distinct = ranked[np.sort(first)]
    match = ranked == q_pids[q]
    if match.sum() == 0:
      continue
    num_valid += 1
    hits = np.pad(distinct == q_pids[q], (0, len(cmc_counts) - len(distinct)))
    cmc_counts += hits
    positions = np.where(match)[0]
    ap_sum += np.mean(np.arange(1, match.sum() + 1) / (positions + 1))
    inp_sum += match.sum() / (positions[-1] + 1)
  return np.cumsum(cmc_counts / num_valid)[:max_rank], ap_sum / num_valid, inp_sum / num_valid


def test_regdb_with_deduplicated_cmc_matches_mcja_metric():
  # MCJA scores RegDB (visible cam 2, thermal cam 3: nothing removed) with the
  # deduplicated CMC: `cmc="deduplicated"` must reproduce it; mAP/mINP unchanged.
  distmat, query_pids, gallery_pids, _, _ = _random_problem(4, 120, 200, 30, [1], [2])
  query_cams, gallery_cams = np.full(120, 3), np.full(200, 2)
  expected_cmc, expected_map, expected_minp = _reference_mcja_metrics(
      distmat, query_pids, gallery_pids, query_cams, gallery_cams
  )
  dedup = rank_metrics(distmat, query_pids, gallery_pids, query_cams, gallery_cams,
                       protocol="regdb", cmc="deduplicated")
  standard = rank_metrics(distmat, query_pids, gallery_pids, query_cams, gallery_cams,
                          protocol="regdb")
  np.testing.assert_allclose(dedup["cmc"], expected_cmc, rtol=0, atol=1e-6)
  np.testing.assert_allclose([dedup["mAP"], dedup["mINP"]], [expected_map, expected_minp],
                             rtol=0, atol=1e-6)
  assert dedup["mAP"] == standard["mAP"]
  assert np.all(dedup["cmc"] >= standard["cmc"]) and np.any(dedup["cmc"] > standard["cmc"])
  with pytest.raises(ValueError, match="cmc"):
    rank_metrics(distmat, query_pids, gallery_pids, query_cams, gallery_cams, cmc="dedup")


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_rank_metrics_from_features_equals_per_trial_rank_metrics(distance):
  # Three trials, each with its own gallery (and ids and cameras), queries shared:
  # one call must equal three `rank_metrics` calls on distances computed in float64.
  rng = np.random.default_rng(5)
  num_trials, num_query, num_gallery, dim = 3, 70, 40, 6
  query_features = rng.normal(size=[num_query, dim]).astype(np.float32)
  gallery_features = rng.normal(size=[num_trials, num_gallery, dim]).astype(np.float32)
  # Few ids, short CMC: the reference fails when a query's deduplicated list is
  # shorter than max_rank (see `rank_metrics`).
  query_pids = rng.integers(0, 8, num_query)
  gallery_pids = rng.integers(0, 8, [num_trials, num_gallery])
  query_cams = rng.choice([3, 6], num_query)
  gallery_cams = rng.choice([1, 2, 4, 5], [num_trials, num_gallery])
  results = rank_metrics_from_features(
      query_features, gallery_features, query_pids, gallery_pids, query_cams, gallery_cams,
      protocol="sysu", distance=distance, max_rank=5, query_block_size=32,
  )
  assert len(results) == num_trials
  for trial, result in enumerate(results):
    q = query_features.astype(np.float64)
    g = gallery_features[trial].astype(np.float64)
    if distance == "cosine":
      q = q / np.linalg.norm(q, axis=1, keepdims=True)
      g = g / np.linalg.norm(g, axis=1, keepdims=True)
      distmat = -q @ g.T
    else:
      distmat = np.linalg.norm(q[:, None] - g[None], axis=-1)
    expected_cmc, expected_map, expected_minp, expected_valid = _reference_metrics(
        distmat, query_pids, gallery_pids[trial], query_cams, gallery_cams[trial], "sysu",
        max_rank=5,
    )
    assert result["num_valid_queries"] == expected_valid
    np.testing.assert_allclose(result["cmc"], expected_cmc, rtol=0, atol=1e-6)
    np.testing.assert_allclose([result["mAP"], result["mINP"]], [expected_map, expected_minp],
                               rtol=0, atol=1e-6)
  assert len({result["mAP"] for result in results}) == num_trials


def test_rank_metrics_from_features_with_per_trial_queries():
  # LLCM as the reference reports "VIS→IR": the queries change per trial, the
  # gallery is shared. Trial t must equal a single-trial call on its queries.
  rng = np.random.default_rng(6)
  query_features = rng.normal(size=[2, 25, 5]).astype(np.float32)
  gallery_features = rng.normal(size=[60, 5]).astype(np.float32)
  query_pids = rng.integers(0, 8, [2, 25])
  gallery_pids = rng.integers(0, 8, 60)
  query_cams = rng.integers(1, 10, [2, 25])
  gallery_cams = rng.integers(1, 10, 60)
  both = rank_metrics_from_features(query_features, gallery_features, query_pids, gallery_pids,
                                    query_cams, gallery_cams, protocol="llcm")
  for trial in range(2):
    (alone,) = rank_metrics_from_features(
        query_features[trial], gallery_features, query_pids[trial], gallery_pids,
        query_cams[trial], gallery_cams, protocol="llcm")
    np.testing.assert_array_equal(both[trial]["cmc"], alone["cmc"])
    assert both[trial]["mAP"] == alone["mAP"]
  with pytest.raises(ValueError, match="trials"):
    rank_metrics_from_features(query_features, gallery_features[None].repeat(3, 0), query_pids,
                               gallery_pids, query_cams, gallery_cams, protocol="llcm")
