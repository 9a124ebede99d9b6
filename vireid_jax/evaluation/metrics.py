"""Ranking metrics for cross-modality re-identification: CMC, mAP and mINP.

`rank_metrics` reproduces the metric definitions of the reference evaluation
code (`eval_sysu`, `eval_regdb` of the AGW baseline and `eval_llcm` of the LLCM
fork; spec `baseline_data_eval.md` §7.2) for a single distance matrix;
`rank_metrics_from_features` computes the same metrics for many trials at once
straight from features, never holding more than one block of distances.

No row is sorted: a query's ranked list is only read at its true matches, and
the position of a match after removal is the number of kept gallery items that
precede it (smaller distance, or equal distance and smaller gallery index: the
order of a stable sort). Counting these for the query's own identity's gallery
items gives the positions behind AP, INP and the standard CMC; counting the
identities with a kept item before the first match gives the deduplicated CMC.
That runs in JAX, jit-compiled and vectorised over blocks of queries, with the
blocks of every trial in one `lax.map`; the integer positions come back to the
host, which forms the per-query AP and INP and the averages in float64.
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
    query_block_size: int = 4096,
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
      equal distances are ordered by gallery index, as a stable sort orders
      them (-0 equals +0; NaN ranks after every number, NaNs by index). With
      real-valued features ties practically never occur.
    * Distances are converted to JAX's default float dtype (float32 unless
      x64 is enabled); float64 distances closer than float32 resolution become
      ties, broken by gallery index.
    * If no query is valid the reference raises (assert); here all metrics are
      returned as zeros with `num_valid_queries` = 0, so callers must check it.
    * If a query's deduplicated list has fewer than `max_rank` distinct pids
      the reference builds a ragged array (an error in current NumPy); here the
      curve simply stays at its last value (a found identity stays found).

  Precision: the device returns integer positions; each query's AP and INP
  and the averages over queries are formed from them on the host in float64,
  like the reference's float64 loop (agreement ~1e-15).

  Cost: O(num_query x M x num_gallery) comparisons, M the largest number of
  gallery items of one identity (4 on SYSU-MM01's single-shot gallery, 10 on
  RegDB), against a sort's O(num_query x num_gallery x log num_gallery).

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
      intermediates to [query_block_size, max(num_gallery, U x M)], U the
      number of gallery identities.

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
      jnp.asarray(distmat, dtype=jnp.result_type(float))[None],
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
    query_block_size: int = 4096,
) -> list[dict[str, Any]]:
  """`rank_metrics` of every trial of a protocol at once, from features.

  Equals `rank_metrics(distances.pairwise_distance(Q_t, G_t, distance), ...)`
  for each trial t, but the distances of one block of queries to its trial's
  gallery are computed inside the jitted block function and consumed at once:
  memory stays at [query_block_size, max(num_gallery, U x M)] (see
  `rank_metrics`) whatever the number of queries and trials, and the blocks
  of all trials run in one compiled loop.

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
  mapped to codes in [0, U) on the host (U = its number of distinct ids), so
  any id type (int64, strings) is handled exactly and the codes can index the
  table of each identity's gallery items. A query id absent from its trial's
  gallery gets -1, which never equals a gallery code (such queries have no
  match: invalid). T' is 1 when both sides are shared by all trials.
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
  return np.stack(query_codes).astype(np.int32), np.stack(gallery_codes).astype(np.int32)


def _identity_members(gallery_codes):
  """[T', U, M] int32: the gallery positions of each identity code, padded with G.

  Row u of trial t lists, in gallery order, the positions whose code is u; M is
  the largest number of gallery items of one identity, U the largest number of
  identities of a trial, and unused slots hold G (one past the last position).
  """
  num_trials, num_gallery = gallery_codes.shape
  num_ids = int(gallery_codes.max()) + 1
  max_items = int(max(np.bincount(codes).max() for codes in gallery_codes))
  members = np.full([num_trials, num_ids, max_items], num_gallery, np.int32)
  for trial, codes in enumerate(gallery_codes):
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    slot = np.arange(num_gallery) - np.searchsorted(sorted_codes, sorted_codes)
    members[trial, sorted_codes, slot] = order
  return members


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
  match_ranks, dedup_rank = jax.device_get(_per_query_ranks(
      query_values,
      gallery_features,
      jnp.asarray(query_codes),
      jnp.asarray(query_cams, dtype=jnp.int32),
      jnp.asarray(gallery_codes),
      jnp.asarray(gallery_cams, dtype=jnp.int32),
      jnp.asarray(_identity_members(gallery_codes)),
      protocol=protocol,
      distance=distance,
      query_block_size=query_block_size,
      num_trials=num_trials,
  ))
  deduplicated = (DEFAULT_CMC[protocol] if cmc is None else cmc) == "deduplicated"
  return [
      _average_over_queries(
          np.asarray(match_ranks[trial]),
          np.asarray(dedup_rank[trial]) if deduplicated else None,
          num_gallery,
          max_rank,
      )
      for trial in range(num_trials)
  ]


def _average_over_queries(match_ranks, dedup_rank, num_gallery, max_rank):
  """CMC, mAP and mINP of one trial from its per-query match ranks (host, float64).

  Args:
    match_ranks: [Q, M] int: the 0-based positions of the query's true matches
      in its ranked list after removal, in any order, num_gallery in unused slots.
    dedup_rank: [Q] int: the query id's position in the deduplicated list, or
      None for the standard CMC (a hit from the first true match on).
    num_gallery: G, the padding value of `match_ranks`.
    max_rank: CMC length.
  """
  num_matches = np.sum(match_ranks < num_gallery, axis=1)
  is_valid = num_matches > 0
  num_valid = int(is_valid.sum())
  if num_valid == 0:
    return _no_valid_queries(max_rank)
  # Each valid query's matches in ranked order: the k-th (1-based) at position
  # r_k adds precision k / (r_k + 1) to the AP sum. Float64 from exact integers,
  # as the reference's float64 loop.
  ranks = np.sort(match_ranks[is_valid], axis=1)
  num_matches = num_matches[is_valid]
  is_match = ranks < num_gallery
  precision = np.arange(1, ranks.shape[1] + 1) / (ranks + 1.0)
  average_precision = np.sum(np.where(is_match, precision, 0.0), axis=1) / num_matches
  last_match_rank = ranks[np.arange(num_valid), num_matches - 1]
  inverse_negative_penalty = num_matches / (last_match_rank + 1.0)
  hit_rank = ranks[:, 0] if dedup_rank is None else dedup_rank[is_valid]
  # Integer hit counts per rank, divided once: exact up to the final division.
  hits_per_rank = np.bincount(np.minimum(hit_rank, max_rank), minlength=max_rank + 1)
  return {
      "cmc": np.cumsum(hits_per_rank[:max_rank]).astype(np.float64) / num_valid,
      "mAP": float(np.mean(average_precision)),
      "mINP": float(np.mean(inverse_negative_penalty)),
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


def _sort_keys(values):
  """Integer keys whose `<` orders floats as `jnp.argsort` does; all below iinfo.max.

  `lax.sort` canonicalises floats (-0 equals +0, every NaN is one NaN above
  +inf) and compares in total order. The bit pattern of a non-negative float
  already orders as an integer; a negative one orders in reverse, so all its
  bits but the sign are flipped. The largest key, NaN's, stays below the
  integer maximum, which is left free to mark removed items.

  Args:
    values: [...] float32 (float64 with x64).

  Returns:
    [...] int32 (int64) keys.
  """
  values = jnp.where(values == 0, jnp.zeros_like(values), values)
  values = jnp.where(jnp.isnan(values), jnp.full_like(values, jnp.nan), values)
  num_bits = 8 * values.dtype.itemsize
  bits = jax.lax.bitcast_convert_type(values, jnp.dtype(f"int{num_bits}"))
  return bits ^ ((bits >> (num_bits - 1)) & jnp.iinfo(bits.dtype).max)


def _precedes(keys, positions, pivot_keys, pivot_positions):
  """Bool: an item ranks before the pivot in a stable sort (ties by gallery position).

  For integer keys (`_sort_keys`, removed items at the integer maximum) and a
  pivot key below that maximum, `key < pivot_key + [position < pivot_position]`
  is the lexicographic `(key, position) < (pivot_key, pivot_position)` without
  overflow, and never holds for a removed item.
  """
  return keys < pivot_keys + (positions < pivot_positions).astype(keys.dtype)


def _block_ranks(block_values, query_id_codes, query_cams, gallery_id_codes, gallery_cams,
                 identity_members, *, protocol):
  """Ranks of each query's true matches and its deduplicated rank, by counting.

  Equal to sorting each row stably and reading positions off the ranked list
  after removal, without sorting: a kept item's position in that list is the
  number of kept items that precede it (smaller distance, or equal distance
  and smaller gallery position). Only the query's own identity's items (at
  most M) are ranked, so a block costs O(B M G) comparisons instead of a
  sort's O(B G log G), and they are plain vector compares and sums.

  Args:
    block_values: [B, G] float distances (smaller = closer).
    query_id_codes: [B] int32 gallery-id codes (-1 = id absent from the gallery).
    query_cams: [B] int32.
    gallery_id_codes: [G] int32 codes in [0, U).
    gallery_cams: [G] int32.
    identity_members: [U, M] int32 gallery positions of each id code, G = unused.
    protocol: static protocol name.

  Returns:
    match_ranks: [B, M] int32 positions after removal of the query's true
      matches (G in slots that hold no kept match);
    dedup_rank: [B] int32, the number of distinct ids with a kept item before
      the query's first true match (its rank in the deduplicated list;
      meaningless for a query without a match).
  """
  num_gallery = block_values.shape[1]
  keys = _sort_keys(block_values)
  removed_key = jnp.iinfo(keys.dtype).max
  keep = keep_mask(protocol, query_id_codes[:, None], query_cams[:, None], gallery_id_codes[None],
                   gallery_cams[None])
  keys = jnp.where(keep, keys, removed_key)  # [B, G]; removed items precede nothing
  positions = jnp.arange(num_gallery, dtype=jnp.int32)

  # The query's candidate matches: the gallery items of its identity.
  member_positions = identity_members[jnp.maximum(query_id_codes, 0)]  # [B, M]
  is_member = (member_positions < num_gallery) & (query_id_codes[:, None] >= 0)
  member_positions = jnp.minimum(member_positions, num_gallery - 1)
  member_keys = jnp.take_along_axis(keys, member_positions, axis=1)
  is_match = is_member & (member_keys != removed_key)
  match_ranks = jnp.sum(
      _precedes(keys[:, None, :], positions, member_keys[:, :, None],
                member_positions[:, :, None]),
      axis=2,
      dtype=jnp.int32,
  )
  match_ranks = jnp.where(is_match, match_ranks, num_gallery)

  # Deduplicated rank: ids with a kept item before the first true match (the
  # query's own id is not among them: that match is its first kept item).
  first = jnp.argmin(match_ranks, axis=1)[:, None]
  first_key = jnp.take_along_axis(member_keys, first, axis=1)[:, :, None]
  first_position = jnp.take_along_axis(member_positions, first, axis=1)[:, :, None]
  # Column G, a removed item, is what the unused member slots point at.
  keys = jnp.pad(keys, [(0, 0), (0, 1)], constant_values=removed_key)
  ids_before = jnp.any(
      _precedes(keys[:, identity_members], identity_members, first_key, first_position), axis=2
  )  # [B, U]
  dedup_rank = jnp.sum(ids_before, axis=1, dtype=jnp.int32)
  return match_ranks, dedup_rank


@functools.partial(
    jax.jit, static_argnames=("protocol", "distance", "query_block_size", "num_trials")
)
def _per_query_ranks(
    query_values,
    gallery_features,
    query_id_codes,
    query_cams,
    gallery_id_codes,
    gallery_cams,
    identity_members,
    *,
    protocol,
    distance,
    query_block_size,
    num_trials,
):
  """Per-query match ranks and deduplicated ranks of every trial (`_block_ranks`).

  Every input's leading axis is the trial axis, of length `num_trials` or 1
  (shared by all trials).

  Args:
    query_values: [T, Q, G] distances (`distance` == "precomputed") or
      [T, Q, D] query features.
    gallery_features: [T, G, D] features, or None with precomputed distances.
    query_id_codes: [T, Q] int32 codes of the trial's gallery ids (-1 = absent).
    query_cams: [T, Q] int32.
    gallery_id_codes: [T, G] int32 codes in [0, U).
    gallery_cams: [T, G] int32.
    identity_members: [T, U, M] int32 (`_identity_members`).
    protocol: static protocol name.
    distance: static distance kind or "precomputed".
    query_block_size: static number of queries vectorised together.
    num_trials: static T.

  Returns:
    match_ranks: [num_trials, Q, M] int32; dedup_rank: [num_trials, Q] int32.
  """
  num_query = query_values.shape[1]
  block_size = min(query_block_size, num_query)
  blocks_per_trial = -(-num_query // block_size)
  num_padding = blocks_per_trial * block_size - num_query

  # Pad the queries to whole blocks (padding rows have id code -1: no match)
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
    return _block_ranks(
        block_distances,
        block_rows(query_id_codes),
        block_rows(query_cams),
        of_trial(gallery_id_codes, trial),
        of_trial(gallery_cams, trial),
        of_trial(identity_members, trial),
        protocol=protocol,
    )

  match_ranks, dedup_rank = jax.lax.map(one_block, jnp.arange(num_trials * blocks_per_trial))
  padded_num_query = blocks_per_trial * block_size
  return (
      match_ranks.reshape(num_trials, padded_num_query, -1)[:, :num_query],
      dedup_rank.reshape(num_trials, padded_num_query)[:, :num_query],
  )
