"""Ranking metrics for cross-modality re-identification: CMC, mAP and mINP.

One function, `rank_metrics`, reproduces the metric definitions of the reference
evaluation code (`eval_sysu`, `eval_regdb` of the AGW baseline and `eval_llcm` of
the LLCM fork; spec `baseline_data_eval.md` §7.2) for a single distance matrix.
The per-query work (sorting, gallery removal, precision sums, ranks) runs in JAX,
jit-compiled and vectorised over blocks of queries; only the final averages over
queries are taken on the host, in float64.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# Metric protocols: which gallery items are dropped for a query and which CMC is
# reported. See `rank_metrics` for the rules.
PROTOCOLS = ("sysu", "llcm", "regdb")

# SYSU-MM01 cameras 2 (RGB) and 3 (IR) share a location, so the reference drops
# every camera-2 gallery item for a camera-3 query, whatever its identity.
_SYSU_SHARED_LOCATION_QUERY_CAMERA = 3
_SYSU_SHARED_LOCATION_GALLERY_CAMERA = 2


def rank_metrics(
    distmat: Any,
    query_pids: Any,
    gallery_pids: Any,
    query_cams: Any,
    gallery_cams: Any,
    *,
    protocol: str = "sysu",
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
    max_rank: length of the CMC curve; clipped to num_gallery like the
      reference.
    query_block_size: queries processed together (vectorised); bounds the
      intermediates to [query_block_size, num_gallery].

  Returns:
    dict with "cmc": float64 [min(max_rank, num_gallery)] fractions in [0, 1];
    "mAP", "mINP": Python floats in [0, 1]; "num_valid_queries": int.
  """
  if protocol not in PROTOCOLS:
    raise ValueError(f"Unknown protocol {protocol!r}; expected one of {PROTOCOLS}.")
  if max_rank < 1:
    raise ValueError(f"max_rank must be >= 1, got {max_rank}.")
  if query_block_size < 1:
    raise ValueError(f"query_block_size must be >= 1, got {query_block_size}.")
  if np.ndim(distmat) != 2:
    raise ValueError(f"distmat must be [num_query, num_gallery], got shape {np.shape(distmat)}.")
  num_query, num_gallery = np.shape(distmat)
  query_pids = np.asarray(query_pids).reshape(-1)
  gallery_pids = np.asarray(gallery_pids).reshape(-1)
  query_cams = np.asarray(query_cams).reshape(-1)
  gallery_cams = np.asarray(gallery_cams).reshape(-1)
  if len(query_pids) != num_query or len(query_cams) != num_query:
    raise ValueError(
        f"{num_query} query rows but {len(query_pids)} query pids and"
        f" {len(query_cams)} query cameras."
    )
  if len(gallery_pids) != num_gallery or len(gallery_cams) != num_gallery:
    raise ValueError(
        f"{num_gallery} gallery columns but {len(gallery_pids)} gallery pids and"
        f" {len(gallery_cams)} gallery cameras."
    )

  max_rank = min(max_rank, num_gallery)
  if num_query == 0 or num_gallery == 0:
    return _no_valid_queries(max_rank)

  # Person ids are only compared for equality: map them to compact int32 codes
  # on the host so that any id type (int64, strings) is handled exactly, and so
  # that the gallery codes index the per-identity segments of the dedup CMC.
  gallery_id_values, gallery_id_codes = np.unique(gallery_pids, return_inverse=True)
  query_code_candidates = np.searchsorted(gallery_id_values, query_pids)
  query_code_candidates = np.minimum(query_code_candidates, len(gallery_id_values) - 1)
  query_in_gallery = gallery_id_values[query_code_candidates] == query_pids
  # -1 never equals a gallery code: such queries have no match (invalid).
  query_id_codes = np.where(query_in_gallery, query_code_candidates, -1)

  is_valid, average_precision, inverse_negative_penalty, first_match_rank, dedup_rank = (
      _per_query_metrics(
          jnp.asarray(distmat),
          jnp.asarray(query_id_codes, dtype=jnp.int32),
          jnp.asarray(gallery_id_codes.reshape(-1), dtype=jnp.int32),
          jnp.asarray(query_cams, dtype=jnp.int32),
          jnp.asarray(gallery_cams, dtype=jnp.int32),
          protocol=protocol,
          query_block_size=query_block_size,
      )
  )
  is_valid = np.asarray(is_valid)
  num_valid = int(is_valid.sum())
  if num_valid == 0:
    return _no_valid_queries(max_rank)

  hit_rank = dedup_rank if protocol in ("sysu", "llcm") else first_match_rank
  hit_rank = np.asarray(hit_rank)[is_valid]
  # Integer hit counts per rank, divided once: exact up to the final division.
  hits_per_rank = np.bincount(np.minimum(hit_rank, max_rank), minlength=max_rank + 1)
  cmc = np.cumsum(hits_per_rank[:max_rank]).astype(np.float64) / num_valid
  return {
      "cmc": cmc,
      "mAP": float(np.mean(np.asarray(average_precision, dtype=np.float64)[is_valid])),
      "mINP": float(np.mean(np.asarray(inverse_negative_penalty, dtype=np.float64)[is_valid])),
      "num_valid_queries": num_valid,
  }


def _no_valid_queries(max_rank: int) -> dict[str, Any]:
  return {
      "cmc": np.zeros([max_rank], np.float64),
      "mAP": 0.0,
      "mINP": 0.0,
      "num_valid_queries": 0,
  }


def _keep_mask(protocol, query_id_code, query_cam, gallery_id_codes, gallery_cams):
  """[num_gallery] bool: gallery items that stay in the query's ranking."""
  if protocol == "sysu":
    return ~(
        (query_cam == _SYSU_SHARED_LOCATION_QUERY_CAMERA)
        & (gallery_cams == _SYSU_SHARED_LOCATION_GALLERY_CAMERA)
    )
  if protocol == "llcm":
    return ~((gallery_id_codes == query_id_code) & (gallery_cams == query_cam))
  return jnp.ones(gallery_id_codes.shape, dtype=bool)


@functools.partial(
    jax.jit, static_argnames=("protocol", "query_block_size")
)
def _per_query_metrics(
    distmat,
    query_id_codes,
    gallery_id_codes,
    query_cams,
    gallery_cams,
    *,
    protocol,
    query_block_size,
):
  """Per-query validity, AP, INP, standard and deduplicated first-hit ranks.

  Args:
    distmat: [Q, G] distances.
    query_id_codes: [Q] int32 gallery-id codes (-1 = id absent from gallery).
    gallery_id_codes: [G] int32 codes in [0, G).
    query_cams: [Q] int32.
    gallery_cams: [G] int32.
    protocol: static protocol name.
    query_block_size: static number of queries vectorised together.

  Returns:
    Tuple of [Q] arrays: is_valid (bool), AP, INP (float), first_match_rank
    (int32, position of the first true match after removal; G if none) and
    dedup_rank (int32, the query id's position in the deduplicated list).
  """
  num_gallery = distmat.shape[1]
  float_dtype = jnp.result_type(float)  # float64 only when x64 is enabled.

  def one_query(query):
    distances, query_id_code, query_cam = query
    order = jnp.argsort(distances, stable=True)
    keep = _keep_mask(protocol, query_id_code, query_cam, gallery_id_codes, gallery_cams)[order]
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

  # Pad the queries to whole blocks (padding rows have id code -1: invalid)
  # and map a vmapped block function over them, so that only one block body
  # is compiled; `lax.map(batch_size=...)` would compile a second one for the
  # remainder.
  num_query = distmat.shape[0]
  block_size = min(query_block_size, num_query)
  num_blocks = -(-num_query // block_size)
  num_padding = num_blocks * block_size - num_query

  def to_blocks(values, padding_value):
    values = jnp.pad(
        values,
        [(0, num_padding)] + [(0, 0)] * (values.ndim - 1),
        constant_values=padding_value,
    )
    return values.reshape((num_blocks, block_size) + values.shape[1:])

  blocked_outputs = jax.lax.map(
      jax.vmap(one_query),
      (to_blocks(distmat, 0), to_blocks(query_id_codes, -1), to_blocks(query_cams, 0)),
  )
  return tuple(
      output.reshape((num_blocks * block_size,) + output.shape[2:])[:num_query]
      for output in blocked_outputs
  )
