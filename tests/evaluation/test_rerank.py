"""Tests of the re-ranking functions against NumPy transcriptions of the published
algorithms (Zhong et al. CVPR 2017's `re_ranking`, and MCJA's MSER from spec mcja.md §6),
written per sample with loops as the references are, in float64 (the references store V
in float16; see the module docstring of `vireid_jax.evaluation.rerank`)."""

import numpy as np
import pytest

from vireid_jax.evaluation import rank_metrics
from vireid_jax.evaluation import rerank


def _squared_distances(features):
  squared_norms = np.sum(features**2, axis=1)
  return squared_norms[:, None] + squared_norms[None, :] - 2 * features @ features.T


def _reference_k_reciprocal(probe, gallery, k1, k2, lambda_value, expansion=True,
                            probe_neighbours_only=False):
  """The published k-reciprocal re-ranking, per sample (steps of the paper's code)."""
  query_num = probe.shape[0]
  features = np.concatenate([probe, gallery]).astype(np.float64)
  all_num = features.shape[0]
  dist = _squared_distances(features)
  original_dist = np.transpose(dist / np.max(dist, axis=0))
  if probe_neighbours_only:
    dist = dist.copy()
    dist[:, query_num:] = dist.max()
  initial_rank = np.argsort(dist, kind="stable").astype(np.int32)
  V = np.zeros_like(original_dist)
  for i in range(all_num):
    forward_k_neigh_index = initial_rank[i, : k1 + 1]
    backward_k_neigh_index = initial_rank[forward_k_neigh_index, : k1 + 1]
    fi = np.where(backward_k_neigh_index == i)[0]
    k_reciprocal_index = forward_k_neigh_index[fi]
    k_reciprocal_expansion_index = k_reciprocal_index
    if expansion:
      for candidate in k_reciprocal_index:
        half = int(np.around(k1 / 2)) + 1
        candidate_forward = initial_rank[candidate, :half]
        candidate_backward = initial_rank[candidate_forward, :half]
        fi_candidate = np.where(candidate_backward == candidate)[0]
        candidate_k_reciprocal_index = candidate_forward[fi_candidate]
        if len(np.intersect1d(candidate_k_reciprocal_index, k_reciprocal_index)) > 2 / 3 * len(
            candidate_k_reciprocal_index
        ):
          k_reciprocal_expansion_index = np.append(
              k_reciprocal_expansion_index, candidate_k_reciprocal_index
          )
    k_reciprocal_expansion_index = np.unique(k_reciprocal_expansion_index)
    weight = np.exp(-original_dist[i, k_reciprocal_expansion_index])
    if len(weight):
      V[i, k_reciprocal_expansion_index] = weight / np.sum(weight)
  original_dist = original_dist[:query_num]
  if k2 != 1:
    V_qe = np.zeros_like(V)
    for i in range(all_num):
      V_qe[i, :] = np.mean(V[initial_rank[i, :k2], :], axis=0)
    V = V_qe
  # Inverted index, as the reference accumulates the min-sums.
  inv_index = [np.where(V[:, column] != 0)[0] for column in range(all_num)]
  jaccard_dist = np.zeros_like(original_dist)
  for i in range(query_num):
    temp_min = np.zeros(all_num)
    ind_non_zero = np.where(V[i, :] != 0)[0]
    for column in ind_non_zero:
      images = inv_index[column]
      temp_min[images] += np.minimum(V[i, column], V[images, column])
    jaccard_dist[i] = 1 - temp_min / (2 - temp_min)
  final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
  return final_dist[:, query_num:]


def _reference_mser(query_views, gallery_views, k1, k2, lambda_value, probe_neighbours_only):
  """MSER as spec mcja.md §6.2–6.3 describes it: stack, re-rank (no R*), average views."""
  def normalise(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)
  probe = normalise(np.concatenate(query_views))
  gallery = normalise(np.concatenate(gallery_views))
  final = _reference_k_reciprocal(probe, gallery, k1, k2, lambda_value, expansion=False,
                                  probe_neighbours_only=probe_neighbours_only)
  num_query, num_gallery = len(query_views[0]), len(gallery_views[0])
  if len(gallery_views) > 1:  # i2v: columns are [G0; Gr; Gg; Gb].
    return final.reshape(num_query, len(gallery_views), num_gallery).mean(axis=1)
  return final.reshape(len(query_views), num_query, num_gallery).mean(axis=0)  # v2i


def _clustered_features(seed, num_query, num_gallery, num_ids=12, dim=16):
  """Random features around per-identity centres, so neighbourhoods are meaningful."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=[num_ids, dim])
  query_ids = rng.integers(0, num_ids, num_query)
  gallery_ids = rng.integers(0, num_ids, num_gallery)
  query = centres[query_ids] + 0.8 * rng.normal(size=[num_query, dim])
  gallery = centres[gallery_ids] + 0.8 * rng.normal(size=[num_gallery, dim])
  return query.astype(np.float32), gallery.astype(np.float32), query_ids, gallery_ids


@pytest.mark.parametrize(
    "k1, k2, lambda_value, block_size",
    [(20, 6, 0.3, 256), (7, 3, 0.5, 16), (5, 1, 0.0, 32), (9, 12, 1.0, 64)],
    ids=["paper_defaults", "odd_k1_small_blocks", "no_query_expansion", "k2_beyond_k1"],
)
def test_k_reciprocal_matches_published_algorithm(k1, k2, lambda_value, block_size):
  query, gallery, query_ids, gallery_ids = _clustered_features(0, 45, 70)
  expected = _reference_k_reciprocal(query, gallery, k1, k2, lambda_value)
  result = np.asarray(
      rerank.k_reciprocal_rerank(
          query, gallery, k1=k1, k2=k2, lambda_value=lambda_value, block_size=block_size
      )
  )
  assert result.shape == (45, 70)
  np.testing.assert_allclose(result, expected, rtol=0, atol=2e-5)
  # Same metrics (the rankings agree up to float32 near-ties).
  cams = np.ones(45), 2 * np.ones(70)
  ours = rank_metrics(result, query_ids, gallery_ids, *cams, protocol="regdb")
  theirs = rank_metrics(expected, query_ids, gallery_ids, *cams, protocol="regdb")
  assert ours["mAP"] == pytest.approx(theirs["mAP"], abs=1e-6)


def test_k_reciprocal_expansion_changes_the_result():
  # Guards the test above: with these data the R* expansion must matter, or the
  # comparison would not cover it.
  query, gallery, _, _ = _clustered_features(0, 45, 70)
  with_expansion = _reference_k_reciprocal(query, gallery, 20, 6, 0.3)
  without = _reference_k_reciprocal(query, gallery, 20, 6, 0.3, expansion=False)
  assert np.max(np.abs(with_expansion - without)) > 1e-2


def test_k_reciprocal_improves_a_noisy_ranking():
  # The point of re-ranking: on clustered data it should not hurt mAP.
  query, gallery, query_ids, gallery_ids = _clustered_features(1, 60, 120)
  cams = np.ones(60), 2 * np.ones(120)
  plain = rank_metrics(_squared_distances(np.concatenate([query, gallery]))[:60, 60:],
                       query_ids, gallery_ids, *cams, protocol="regdb")
  reranked = rank_metrics(np.asarray(rerank.k_reciprocal_rerank(query, gallery)),
                          query_ids, gallery_ids, *cams, protocol="regdb")
  assert reranked["mAP"] > plain["mAP"]


@pytest.mark.parametrize(
    "direction, probe_neighbours_only, k1, k2, lambda_value",
    [
        ("i2v", True, 8, 5, 0.3),    # SYSU-MM01 shape: probe-only neighbours
        ("i2v", False, 10, 4, 0.2),
        ("v2i", False, 10, 4, 0.2),  # RegDB shape: 4 probe views
    ],
)
def test_mser_matches_spec(direction, probe_neighbours_only, k1, k2, lambda_value):
  rng = np.random.default_rng(2)
  query, gallery, _, _ = _clustered_features(3, 30, 24)
  # Spectral views: the visible side gets 4 perturbed copies, the other one view.
  def views(base):
    return [base] + [base + 0.3 * rng.normal(size=base.shape).astype(np.float32)
                     for _ in range(3)]
  query_views = views(query) if direction == "v2i" else [query]
  gallery_views = views(gallery) if direction == "i2v" else [gallery]
  expected = _reference_mser(query_views, gallery_views, k1, k2, lambda_value,
                             probe_neighbours_only)
  result = np.asarray(
      rerank.mser_rerank(query_views, gallery_views, k1=k1, k2=k2, lambda_value=lambda_value,
                         probe_neighbours_only=probe_neighbours_only, block_size=16)
  )
  assert result.shape == (30, 24)
  np.testing.assert_allclose(result, expected, rtol=0, atol=2e-5)


def test_mser_probe_only_neighbours_leave_gallery_sets_empty():
  # Spec §6.3.4: with probe-only neighbours no gallery sample is in any neighbour
  # list, so each gallery row of V (before query expansion) is zero, and with
  # k2 = 1 the Jaccard overlap of a probe with every gallery item is 0: the final
  # distance is (1 - λ) + λ D̃.
  query, gallery, _, _ = _clustered_features(4, 20, 10)
  lambda_value = 0.25
  result = np.asarray(rerank.mser_rerank([query], [gallery], k1=5, k2=1,
                                         lambda_value=lambda_value, probe_neighbours_only=True))
  def normalise(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)
  features = np.concatenate([normalise(query), normalise(gallery)]).astype(np.float64)
  squared = _squared_distances(features)
  normalised = (squared / squared.max(axis=1, keepdims=True))[:20, 20:]
  np.testing.assert_allclose(result, (1 - lambda_value) + lambda_value * normalised, atol=1e-5)


def test_rejects_too_few_neighbours():
  query, gallery, _, _ = _clustered_features(5, 6, 30)
  with pytest.raises(ValueError, match="k1=8"):
    rerank.mser_rerank([query], [gallery], k1=8, k2=2, lambda_value=0.3,
                       probe_neighbours_only=True)
  with pytest.raises(ValueError, match="k1=40"):
    rerank.k_reciprocal_rerank(query, gallery, k1=40)
