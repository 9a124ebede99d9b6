"""Ranking metrics for cross-modality re-identification: CMC, mAP and mINP.

`rank_metrics` reproduces the metric definitions of the reference evaluation
code (`eval_sysu`, `eval_regdb` of the AGW baseline and `eval_llcm` of the LLCM
fork; spec `baseline_data_eval.md` §7.2) for a single distance matrix;
`rank_metrics_from_features` computes the same metrics for many trials at once
straight from features, never holding more than one block of distances.

The per-query work (distances, sorting, gallery removal, precision sums, ranks)
runs in JAX, jit-compiled and vectorised over blocks of queries, with the blocks
of every trial in one `lax.map`; only the final averages over queries are taken
on the host, in float64.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vireid_jax.evaluation import distances

# Metric protocols: which gallery items are dropped for a query and which CMC is
# reported by default. See `rank_metrics` for the rules.
PROTOCOLS = ("sysu", "llcm", "regdb")
CMC_KINDS = ("deduplicated", "standard")
DEFAULT_CMC = {"sysu": "deduplicated", "llcm": "deduplicated", "regdb": "standard"}

# SYSU-MM01 cameras 2 (RGB) and 3 (IR) share a location, so the reference drops
# every camera-2 gallery item for a camera-3 query, whatever its identity.
_SYSU_SHARED_LOCATION_QUERY_CAMERA = 3
_SYSU_SHARED_LOCATION_GALLERY_CAMERA = 2

# `distance` value of the jitted engine when the query values are distances.
_PRECOMPUTED = "precomputed"


def rank_metrics(
    distmat: Any,
    query_pids: Any,
    gallery_pids: Any,
    query_cams: Any,
    gallery_cams: Any,
    *,
    protocol: str = "sysu",
    cmc: str | None = None,
    max_rank: int = 20,
    query_block_size: int = 256,
) -> dict[str, Any]:
  """Computes CMC, mAP and mINP exactly as the reference evaluation code.

  For every query (row of `distmat`) the gallery is sorted by ascending
  distance, gallery items are removed by the protocol's rule, and the remaining
  ranked list L (0-based positions r) gives the match indicator
  M_r = [pid(L_r) == pid(query)] and R = sum_r M_r.

  Removal rules (`protocol`):
    * "sysu": a query from camera 3 drops every gallery item from camera 2,
      of any identity (cameras 2 and 3 share a location); camera-6 queries
      drop nothing.
    * "llcm": drop gallery items with the query's pid and the query's camera.
    * "regdb": drop nothing (camera arrays are ignored).

  A query is valid iff R > 0 after removal; invalid queries are left out of
  every average (the reference adds an all-zero CMC row for them but divides
  by the number of valid queries, which is the same thing). Per valid query:
    * AP = (1/R) sum_{r: M_r = 1} (sum_{s <= r} M_s) / (r + 1);
    * INP = R / (r_last + 1), r_last the position of the last true match;
    * CMC for "sysu" and "llcm" is identity-deduplicated: L with repeated pids
      removed (first occurrence kept); a hit at rank k (0-based) iff the query
      pid is among its first k + 1 distinct pids. Equivalently, the query's
      deduplicated rank is the number of distinct gallery pids whose best kept
      position is smaller than the best kept position of the query's pid.
    * CMC for "regdb" is the standard one: a hit at k iff a true match sits at
      position <= k.
    `cmc` overrides the protocol's CMC kind ("deduplicated" or "standard"):
    MCJA, for one, reports the deduplicated CMC on RegDB (spec mcja.md §9).
  mAP, mINP and CMC[k] are the means of these over valid queries.

  Differences from the reference, all outside its normal operating range:
    * Ties: the reference sorts with NumPy's default (unstable) argsort; here
      the sort is stable, so equal distances are ordered by gallery index.
      With real-valued features ties practically never occur.
    * Distances are converted to JAX's default float dtype (float32 unless
      x64 is enabled); float64 distances closer than float32 resolution become
      ties, broken by gallery index.
    * If no query is valid the reference raises (assert); here all metrics are
      returned as zeros with `num_valid_queries` = 0, so callers must check it.
    * If a query's deduplicated list has fewer than `max_rank` distinct pids
      the reference builds a ragged array (an error in current NumPy); here the
      curve simply stays at its last value (a found identity stays found).

  Precision: per-query AP and INP are computed in the default float dtype from
  integer counts and positions; summing zeros is exact, so a query's AP carries
  only about R roundings. The averages over queries are taken in float64 on the
  host, so the results match a float64 NumPy implementation to ~1e-7.

  Args:
    distmat: [num_query, num_gallery] distances, smaller = closer.
    query_pids: [num_query] person ids (any type comparable with `==`).
    gallery_pids: [num_gallery] person ids.
    query_cams: [num_query] integer camera ids.
    gallery_cams: [num_gallery] integer camera ids.
    protocol: "sysu", "llcm" or "regdb" (see above).
    cmc: None (the protocol's CMC), "deduplicated" or "standard".
    max_rank: length of the CMC curve; clipped to num_gallery like the
      reference.
    query_block_size: queries processed together (vectorised); bounds the
      intermediates to [query_block_size, num_gallery].

  Returns:
    dict with "cmc": float64 [min(max_rank, num_gallery)] fractions in [0, 1];
    "mAP", "mINP": Python floats in [0, 1]; "num_valid_queries": int.
  """
  _check_options(protocol, cmc, max_rank, query_block_size)
  if np.ndim(distmat) != 2:
    raise ValueError(f"distmat must be [num_query, num_gallery], got shape {np.shape(distmat)}.")
  num_query, num_gallery = np.shape(distmat)
  query_pids, query_cams = _check_side("query", num_query, query_pids, query_cams, trial_axis=False)
  gallery_pids, gallery_cams = _check_side(
      "gallery", num_gallery, gallery_pids, gallery_cams, trial_axis=False
  )
  return _trial_rank_metrics(
      jnp.asarray(distmat)[None],
      None,
      query_pids[None],
      gallery_pids[None],
      query_cams[None],
      gallery_cams[None],
      protocol=protocol,
      distance=_PRECOMPUTED,
      cmc=cmc,
      max_rank=max_rank,
      query_block_size=query_block_size,
  )[0]


def rank_metrics_from_features(
    query_features: Any,
    gallery_features: Any,
    query_pids: Any,
    gallery_pids: Any,
    query_cams: Any,
    gallery_cams: Any,
    *,
    protocol: str = "sysu",
    distance: str = "cosine",
    cmc: str | None = None,
    max_rank: int = 20,
    query_block_size: int = 256,
) -> list[dict[str, Any]]:
  """`rank_metrics` of every trial of a protocol at once, from features.

  Equals `rank_metrics(distances.pairwise_distance(Q_t, G_t, distance), ...)`
  for each trial t, but the distances of one block of queries to its trial's
  gallery are computed inside the jitted block function and consumed at once:
  memory stays at [query_block_size, num_gallery] whatever the number of
  queries and trials, and the blocks of all trials run in one compiled loop.

  Every array either carries a leading trial axis of length T or is shared by
  all trials (SYSU-MM01: fixed queries, one gallery per trial; LLCM as the
  reference evaluates "VIS→IR": one query set per trial, fixed gallery).

  Args:
    query_features: [Q, D] or [T, Q, D].
    gallery_features: [G, D] or [T, G, D].
    query_pids: [Q] or [T, Q] person ids (any type comparable with `==`).
    gallery_pids: [G] or [T, G].
    query_cams: [Q] or [T, Q] integer cameras.
    gallery_cams: [G] or [T, G].
    protocol: "sysu", "llcm" or "regdb" (see `rank_metrics`).
    distance: a kind of `distances.pairwise_distance` ("cosine", "euclidean").
    cmc: None (the protocol's CMC), "deduplicated" or "standard".
    max_rank: CMC length, clipped to G.
    query_block_size: queries per block.

  Returns:
    One `rank_metrics` result per trial, in trial order.
  """
  _check_options(protocol, cmc, max_rank, query_block_size)
  if distance not in distances.DISTANCES:
    raise ValueError(f"Unknown distance {distance!r}; expected one of {distances.DISTANCES}.")
  query_features = jnp.asarray(query_features)
  gallery_features = jnp.asarray(gallery_features)
  if query_features.ndim == 2:
    query_features = query_features[None]
  if gallery_features.ndim == 2:
    gallery_features = gallery_features[None]
  if query_features.ndim != 3 or gallery_features.ndim != 3:
    raise ValueError(
        "Features must be [num, D] or [num_trials, num, D]; got query"
        f" {query_features.shape} and gallery {gallery_features.shape}."
    )
  if query_features.shape[2] != gallery_features.shape[2]:
    raise ValueError(
        f"Query features have {query_features.shape[2]} dimensions, gallery features"
        f" {gallery_features.shape[2]}."
    )
  query_pids, query_cams = _check_side(
      "query", query_features.shape[1], query_pids, query_cams, trial_axis=True
  )
  gallery_pids, gallery_cams = _check_side(
      "gallery", gallery_features.shape[1], gallery_pids, gallery_cams, trial_axis=True
  )
  return _trial_rank_metrics(
      query_features,
      gallery_features,
      query_pids,
      gallery_pids,
      query_cams,
      gallery_cams,
      protocol=protocol,
      distance=distance,
      cmc=cmc,
      max_rank=max_rank,
      query_block_size=query_block_size,
  )


def _check_options(protocol, cmc, max_rank, query_block_size):
  if protocol not in PROTOCOLS:
    raise ValueError(f"Unknown protocol {protocol!r}; expected one of {PROTOCOLS}.")
  if cmc is not None and cmc not in CMC_KINDS:
    raise ValueError(f"Unknown cmc {cmc!r}; expected None or one of {CMC_KINDS}.")
  if max_rank < 1:
    raise ValueError(f"max_rank must be >= 1, got {max_rank}.")
  if query_block_size < 1:
    raise ValueError(f"query_block_size must be >= 1, got {query_block_size}.")


def _check_side(side, num_items, pids, cams, *, trial_axis):
  """Validates the pids and cameras of one side; returns them as NumPy arrays.

  With `trial_axis`, 1-D arrays get a leading axis of length 1 (shared by all
  trials); otherwise they are flattened.
  """
  pids = np.asarray(pids)
  cams = np.asarray(cams)
  if trial_axis:
    pids = pids[None] if pids.ndim == 1 else pids
    cams = cams[None] if cams.ndim == 1 else cams
    shapes_ok = pids.ndim == 2 and cams.ndim == 2
    lengths = (pids.shape[-1], cams.shape[-1])
  else:
    pids = pids.reshape(-1)
    cams = cams.reshape(-1)
    shapes_ok = True
    lengths = (len(pids), len(cams))
  if not shapes_ok or lengths != (num_items, num_items):
    what = "rows" if side == "query" else "columns"
    raise ValueError(
        f"{num_items} {side} {what} but {side} pids of shape {pids.shape} and {side} cameras"
        f" of shape {cams.shape}."
    )
  return pids, cams


def _num_trials(*arrays):
  """The common trial count of arrays whose leading axis is 1 (shared) or T."""
  lengths = {array.shape[0] for array in arrays if array is not None} - {1}
  if len(lengths) > 1:
    raise ValueError(f"Inconsistent numbers of trials {sorted(lengths)} across the inputs.")
  return lengths.pop() if lengths else 1


def _encode_ids(query_pids, gallery_pids, num_trials):
  """Compact int32 id codes per trial: [T', Q] query codes, [T', G] gallery codes.

  Person ids are only compared for equality: each trial's gallery ids are
  mapped to codes in [0, G) on the host, so any id type (int64, strings) is
  handled exactly and the codes can index the per-identity segments of the
  deduplicated CMC. A query id absent from its trial's gallery gets -1, which
  never equals a gallery code (such queries have no match: invalid). T' is 1
  when both sides are shared by all trials.
  """
  shared = query_pids.shape[0] == 1 and gallery_pids.shape[0] == 1
  query_codes, gallery_codes = [], []
  for trial in range(1 if shared else num_trials):
    gallery_row = gallery_pids[trial % gallery_pids.shape[0]]
    query_row = query_pids[trial % query_pids.shape[0]]
    values, codes = np.unique(gallery_row, return_inverse=True)
    candidates = np.minimum(np.searchsorted(values, query_row), len(values) - 1)
    query_codes.append(np.where(values[candidates] == query_row, candidates, -1))
    gallery_codes.append(codes.reshape(-1))
  return (
      jnp.asarray(np.stack(query_codes), dtype=jnp.int32),
      jnp.asarray(np.stack(gallery_codes), dtype=jnp.int32),
  )


def _trial_rank_metrics(
    query_values,
    gallery_features,
    query_pids,
    gallery_pids,
    query_cams,
    gallery_cams,
    *,
    protocol,
    distance,
    cmc,
    max_rank,
    query_block_size,
):
  """Shared body of the public functions (inputs validated, trial axes present)."""
  num_trials = _num_trials(
      query_values, gallery_features, query_pids, gallery_pids, query_cams, gallery_cams
  )
  num_query = query_values.shape[1]
  num_gallery = gallery_pids.shape[1]
  max_rank = min(max_rank, num_gallery)
  if num_query == 0 or num_gallery == 0:
    return [_no_valid_queries(max_rank) for _ in range(num_trials)]

  query_codes, gallery_codes = _encode_ids(query_pids, gallery_pids, num_trials)
  outputs = _per_query_metrics(
      query_values,
      gallery_features,
      query_codes,
      jnp.asarray(query_cams, dtype=jnp.int32),
      gallery_codes,
      jnp.asarray(gallery_cams, dtype=jnp.int32),
      protocol=protocol,
      distance=distance,
      query_block_size=query_block_size,
      num_trials=num_trials,
  )
  is_valid, average_precision, inverse_negative_penalty, first_match_rank, dedup_rank = (
      np.asarray(output) for output in jax.device_get(outputs)
  )
  cmc = DEFAULT_CMC[protocol] if cmc is None else cmc
  hit_rank = dedup_rank if cmc == "deduplicated" else first_match_rank
  return [
      _average_over_queries(
          is_valid[trial],
          average_precision[trial],
          inverse_negative_penalty[trial],
          hit_rank[trial],
          max_rank,
      )
      for trial in range(num_trials)
  ]


def _average_over_queries(is_valid, average_precision, inverse_negative_penalty, hit_rank,
                          max_rank):
  """CMC, mAP and mINP of one trial from its per-query values (host, float64)."""
  num_valid = int(is_valid.sum())
  if num_valid == 0:
    return _no_valid_queries(max_rank)
  # Integer hit counts per rank, divided once: exact up to the final division.
  hits_per_rank = np.bincount(np.minimum(hit_rank[is_valid], max_rank), minlength=max_rank + 1)
  return {
      "cmc": np.cumsum(hits_per_rank[:max_rank]).astype(np.float64) / num_valid,
      "mAP": float(np.mean(average_precision.astype(np.float64)[is_valid])),
      "mINP": float(np.mean(inverse_negative_penalty.astype(np.float64)[is_valid])),
      "num_valid_queries": num_valid,
  }


def _no_valid_queries(max_rank: int) -> dict[str, Any]:
  return {
      "cmc": np.zeros([max_rank], np.float64),
      "mAP": 0.0,
      "mINP": 0.0,
      "num_valid_queries": 0,
  }


def keep_mask(protocol, query_id_code, query_cam, gallery_id_codes, gallery_cams):
  """Bool: gallery items that stay in the query's ranking under `protocol`'s removal rule.

  Element-wise and broadcasting: one query ([] scalars) against [G] gallery
  arrays gives [G]; [Q, 1] against [1, G] gives [Q, G] ("regdb" keeps all and
  returns the gallery arrays' shape). Ids are compared for equality only, so
  any integer coding works.
  """
  if protocol == "sysu":
    return ~(
        (query_cam == _SYSU_SHARED_LOCATION_QUERY_CAMERA)
        & (gallery_cams == _SYSU_SHARED_LOCATION_GALLERY_CAMERA)
    )
  if protocol == "llcm":
    return ~((gallery_id_codes == query_id_code) & (gallery_cams == query_cam))
  return jnp.ones(gallery_id_codes.shape, dtype=bool)


def _one_query_metrics(distances_row, query_id_code, query_cam, gallery_id_codes, gallery_cams,
                       *, protocol):
  """Validity, AP, INP, standard and deduplicated first-hit ranks of one query.

  Args:
    distances_row: [G] distances to the gallery.
    query_id_code: int32 gallery-id code (-1 = id absent from the gallery).
    query_cam: int32.
    gallery_id_codes: [G] int32 codes in [0, G).
    gallery_cams: [G] int32.
    protocol: static protocol name.
  """
  num_gallery = distances_row.shape[0]
  float_dtype = jnp.result_type(float)  # float64 only when x64 is enabled.
  order = jnp.argsort(distances_row, stable=True)
  keep = keep_mask(protocol, query_id_code, query_cam, gallery_id_codes, gallery_cams)[order]
  sorted_id_codes = gallery_id_codes[order]
  is_match = (sorted_id_codes == query_id_code) & keep
  # 0-based position in the ranked list *after* removal (meaningful where kept).
  position = jnp.cumsum(keep, dtype=jnp.int32) - 1
  num_matches = jnp.sum(is_match, dtype=jnp.int32)
  matches_so_far = jnp.cumsum(is_match, dtype=jnp.int32)

  precision_at_match = jnp.where(
      is_match, matches_so_far.astype(float_dtype) / (position + 1).astype(float_dtype), 0.0
  )
  safe_num_matches = jnp.maximum(num_matches, 1).astype(float_dtype)
  average_precision = jnp.sum(precision_at_match) / safe_num_matches

  last_match_position = jnp.max(jnp.where(is_match, position, -1))
  inverse_negative_penalty = num_matches.astype(float_dtype) / jnp.maximum(
      last_match_position + 1, 1
  ).astype(float_dtype)

  first_match_rank = jnp.min(jnp.where(is_match, position, num_gallery))
  # Dedup rank without materialising the deduplicated list: each identity's
  # best kept position, then count identities ranked strictly before the
  # query's own identity (whose best position is first_match_rank). There
  # are at most G codes; sizing the segments by G rather than by the number
  # of distinct ids keeps that number out of the compiled shapes.
  best_position_per_id = jax.ops.segment_min(
      jnp.where(keep, position, num_gallery),
      sorted_id_codes,
      num_segments=num_gallery,
  )
  dedup_rank = jnp.sum(best_position_per_id < first_match_rank, dtype=jnp.int32)
  return (
      num_matches > 0,
      average_precision,
      inverse_negative_penalty,
      first_match_rank,
      dedup_rank,
  )


@functools.partial(
    jax.jit, static_argnames=("protocol", "distance", "query_block_size", "num_trials")
)
def _per_query_metrics(
    query_values,
    gallery_features,
    query_id_codes,
    query_cams,
    gallery_id_codes,
    gallery_cams,
    *,
    protocol,
    distance,
    query_block_size,
    num_trials,
):
  """Per-query validity, AP, INP, standard and deduplicated first-hit ranks.

  Every input's leading axis is the trial axis, of length `num_trials` or 1
  (shared by all trials).

  Args:
    query_values: [T, Q, G] distances (`distance` == "precomputed") or
      [T, Q, D] query features.
    gallery_features: [T, G, D] features, or None with precomputed distances.
    query_id_codes: [T, Q] int32 codes of the trial's gallery ids (-1 = absent).
    query_cams: [T, Q] int32.
    gallery_id_codes: [T, G] int32 codes in [0, G).
    gallery_cams: [T, G] int32.
    protocol: static protocol name.
    distance: static distance kind or "precomputed".
    query_block_size: static number of queries vectorised together.
    num_trials: static T.

  Returns:
    Tuple of [num_trials, Q] arrays: is_valid (bool), AP, INP (float),
    first_match_rank (int32, position of the first true match after removal;
    G if none) and dedup_rank (int32, the query id's position in the
    deduplicated list).
  """
  num_query = query_values.shape[1]
  block_size = min(query_block_size, num_query)
  blocks_per_trial = -(-num_query // block_size)
  num_padding = blocks_per_trial * block_size - num_query

  # Pad the queries to whole blocks (padding rows have id code -1: invalid)
  # and map one block function over (trial, block) pairs, so that only one
  # block body is compiled; `lax.map(batch_size=...)` would compile a second
  # one for the remainder.
  def pad_queries(values, padding_value):
    widths = [(0, 0), (0, num_padding)] + [(0, 0)] * (values.ndim - 2)
    return jnp.pad(values, widths, constant_values=padding_value)

  query_values = pad_queries(query_values, 0)
  query_id_codes = pad_queries(query_id_codes, -1)
  query_cams = pad_queries(query_cams, 0)

  def of_trial(values, trial):
    # values[trial], or values[0] when the trial axis is shared.
    return jax.lax.dynamic_index_in_dim(values, trial % values.shape[0], keepdims=False)

  def one_block(block_index):
    trial = block_index // blocks_per_trial
    start = (block_index % blocks_per_trial) * block_size

    def block_rows(values):
      return jax.lax.dynamic_slice_in_dim(of_trial(values, trial), start, block_size)

    if distance == _PRECOMPUTED:
      block_distances = block_rows(query_values)
    else:
      block_distances = distances.pairwise_distance(
          block_rows(query_values), of_trial(gallery_features, trial), distance
      )
    return jax.vmap(
        functools.partial(_one_query_metrics, protocol=protocol), in_axes=(0, 0, 0, None, None)
    )(
        block_distances,
        block_rows(query_id_codes),
        block_rows(query_cams),
        of_trial(gallery_id_codes, trial),
        of_trial(gallery_cams, trial),
    )

  blocked_outputs = jax.lax.map(one_block, jnp.arange(num_trials * blocks_per_trial))
  return tuple(
      output.reshape(num_trials, blocks_per_trial * block_size)[:, :num_query]
      for output in blocked_outputs
  )
