"""Re-ranking in jnp: k-reciprocal encoding (Zhong et al., CVPR 2017) and MCJA's MSER.

Both re-rank a query x gallery problem by looking at the joint neighbourhood of all
N = num_probe + num_gallery samples:

1. D = squared Euclidean distances between all samples; D̃ = each row of D divided by
   its own maximum (over all N columns).
2. Each sample's neighbours are its columns sorted by ascending D. F(i) = the first
   k1 + 1 (i itself included); R(i) = {j ∈ F(i) : i ∈ F(j)}, the k-reciprocal set.
3. Expansion (Zhong et al. only): for each c ∈ R(i), the set R½(c) built the same way
   with round(k1 / 2) + 1 neighbours is merged into R(i) when more than 2/3 of it lies
   in R(i); R*(i) = the union.
4. V[i, j] = exp(-D̃[i, j]) / Σ_{j' ∈ R*(i)} exp(-D̃[i, j']) for j ∈ R*(i), else 0.
5. Local query expansion (k2 > 1): V[i] ← mean of V[j] over the first k2 neighbours j.
6. Jaccard distance J[i, j] = 1 - m / (2 - m), m = Σ_k min(V[i, k], V[j, k]).
7. Final distance = (1 - λ) J + λ D̃, probe rows x gallery columns.

MSER (MCJA, spec mcja.md §6) runs the same steps without the expansion (3) on the
probe features plus the R, G and B single-channel views of the visible side, with
L2-normalised features, optionally restricting every neighbour list to probe samples,
and averages the final distances over the spectral views.

Memory: nothing of size N x N exists except the dense V (and V after query expansion,
briefly both); distances are recomputed block by block of rows, and the Jaccard step
gathers only the non-zero support of each probe row, so its cost is
num_probe x num_gallery x (largest support), not x N.

Differences from the published code, all deliberate:
  * V and the Jaccard accumulator are float32 here; the references store them as
    float16 (a memory trick that rounds V to ~3 significant digits).
  * Neighbour ties are broken by the lower index (`lax.top_k`); the references use
    NumPy's unstable argsort. With real-valued features ties practically never occur.
  * The restriction of MSER's neighbour lists to probes sets the gallery columns to
    +inf where the reference sets them to the global maximum of D; the two agree
    whenever there are at least max(k1 + 1, k2) probes (always true on SYSU-MM01), and
    fewer probes are refused.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vireid_jax.evaluation import distances
from vireid_jax.models.layers import l2_normalize

# Elements (float32) of the largest intermediate of the Jaccard step, [gallery, block, support].
_JACCARD_BLOCK_ELEMENTS = 1 << 25


def k_reciprocal_rerank(
    query_features: jax.Array,
    gallery_features: jax.Array,
    *,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    block_size: int = 256,
) -> jax.Array:
  """Re-ranked distances of Zhong et al. (CVPR 2017), their defaults k1=20, k2=6, λ=0.3.

  The features are used as given (for the models' L2-normalised features the
  squared Euclidean distance is 2 - 2 cos).

  Args:
    query_features: [num_query, D].
    gallery_features: [num_gallery, D].
    k1: size of the k-reciprocal neighbourhoods.
    k2: neighbours averaged by the local query expansion (1 = none).
    lambda_value: weight of the original distance in the final one.
    block_size: rows processed together; bounds the intermediates to
      [block_size, N] (N = num_query + num_gallery).

  Returns:
    [num_query, num_gallery] float32 distances, smaller = closer.
  """
  return _rerank(
      jnp.asarray(query_features),
      jnp.asarray(gallery_features),
      k1=k1,
      k2=k2,
      lambda_value=lambda_value,
      expansion=True,
      probe_neighbours_only=False,
      block_size=block_size,
  )


def mser_rerank(
    query_views: Sequence[jax.Array],
    gallery_views: Sequence[jax.Array],
    *,
    k1: int,
    k2: int,
    lambda_value: float,
    probe_neighbours_only: bool,
    block_size: int = 256,
) -> jax.Array:
  """MCJA's Multi-Spectral Enhanced Ranking (spec mcja.md §6).

  One side has a single view (the infrared images: their spectral copies are
  identical), the other side several (the visible images: original, then R, G,
  B repeated into three channels). All views are L2-normalised and stacked,
  probes = the query views, and k-reciprocal re-ranking runs without the R*
  expansion; the [Vq·Q, Vg·G] result is averaged over the views of each side.
  The reference's settings: SYSU-MM01 k1=40, k2=20, λ=0.3 with
  `probe_neighbours_only`; RegDB k1=50, k2=10, λ=0.2 without.

  Args:
    query_views: Vq arrays [num_query, D] (same images, different views).
    gallery_views: Vg arrays [num_gallery, D].
    k1, k2, lambda_value: as in `k_reciprocal_rerank`.
    probe_neighbours_only: neighbour lists hold probe samples only (the
      reference's `eval_type=True`, used on SYSU-MM01); then every gallery
      sample's reciprocal set is empty and its V row is the mean of the V rows
      of its k2 nearest probes.
    block_size: rows processed together.

  Returns:
    [num_query, num_gallery] float32 distances, smaller = closer.
  """
  query_views = [jnp.asarray(view) for view in query_views]
  gallery_views = [jnp.asarray(view) for view in gallery_views]
  if not query_views or not gallery_views:
    raise ValueError("MSER needs at least one query view and one gallery view.")
  for views in (query_views, gallery_views):
    if len({view.shape for view in views}) != 1:
      raise ValueError(f"The views of one side must have equal shapes, got "
                       f"{[view.shape for view in views]}.")
  num_query, num_gallery = query_views[0].shape[0], gallery_views[0].shape[0]
  final = _rerank(
      l2_normalize(jnp.concatenate(query_views)),
      l2_normalize(jnp.concatenate(gallery_views)),
      k1=k1,
      k2=k2,
      lambda_value=lambda_value,
      expansion=False,
      probe_neighbours_only=probe_neighbours_only,
      block_size=block_size,
  )
  return final.reshape(len(query_views), num_query, len(gallery_views), num_gallery).mean(
      axis=(0, 2)
  )


def _rerank(probe_features, gallery_features, *, k1, k2, lambda_value, expansion,
            probe_neighbours_only, block_size):
  """Steps 1–7 of the module docstring; [P, M] final distances."""
  if k1 < 1 or k2 < 1:
    raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}.")
  if not 0.0 <= lambda_value <= 1.0:
    raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value}.")
  if block_size < 1:
    raise ValueError(f"block_size must be >= 1, got {block_size}.")
  num_probe, num_gallery = probe_features.shape[0], gallery_features.shape[0]
  num_neighbours = max(k1 + 1, k2)
  neighbour_pool = num_probe if probe_neighbours_only else num_probe + num_gallery
  if num_neighbours > neighbour_pool:
    raise ValueError(
        f"Re-ranking with k1={k1}, k2={k2} needs {num_neighbours} neighbours per sample, but"
        f" only {neighbour_pool} {'probes' if probe_neighbours_only else 'samples'} exist;"
        " lower k1/k2."
    )
  if probe_features.shape[1] != gallery_features.shape[1]:
    raise ValueError(f"Probe features have {probe_features.shape[1]} dimensions, gallery"
                     f" features {gallery_features.shape[1]}.")
  # np.around rounds half to even, like the reference's `np.around(k1 / 2)`.
  half_neighbours = int(np.around(k1 / 2)) + 1
  samples = jnp.concatenate([probe_features, gallery_features]).astype(jnp.float32)
  encoding, row_max, support = _expanded_encoding(
      samples,
      num_probe=num_probe,
      k1=k1,
      k2=k2,
      half_neighbours=half_neighbours if expansion else 0,
      probe_neighbours_only=probe_neighbours_only,
      block_size=block_size,
  )
  # The support (non-zeros of a probe's encoding) sizes the Jaccard gather; round
  # it up so that similar problems share one compiled program.
  support = int(jax.device_get(support))
  support = min(max(16, -(-support // 16) * 16), samples.shape[0])
  jaccard_block = max(1, min(block_size, _JACCARD_BLOCK_ELEMENTS // (num_gallery * support)))
  return _final_distances(
      samples,
      encoding,
      row_max,
      num_probe=num_probe,
      lambda_value=lambda_value,
      support=support,
      block_size=jaccard_block,
  )


def _map_row_blocks(fn, num_rows, block_size):
  """fn(rows [B] int32) -> pytree of [B, ...], over all rows in blocks; [num_rows, ...].

  The last block is padded with copies of the last row (discarded), so one block
  body is compiled whatever num_rows is.
  """
  block_size = min(block_size, num_rows)
  num_blocks = -(-num_rows // block_size)

  def one_block(start):
    return fn(jnp.minimum(start + jnp.arange(block_size), num_rows - 1))

  outputs = jax.lax.map(one_block, jnp.arange(num_blocks) * block_size)
  return jax.tree.map(
      lambda output: output.reshape((num_blocks * block_size,) + output.shape[2:])[:num_rows],
      outputs,
  )


def _reciprocal(neighbours, rows, width):
  """[B, width] bool: is rows[b] among the first `width` neighbours of neighbours[rows[b], s]?"""
  forward = neighbours[rows, :width]
  backward = neighbours[forward, :width]
  return jnp.any(backward == rows[:, None, None], axis=-1)


@functools.partial(
    jax.jit,
    static_argnames=(
        "num_probe", "k1", "k2", "half_neighbours", "probe_neighbours_only", "block_size"
    ),
)
def _expanded_encoding(samples, *, num_probe, k1, k2, half_neighbours, probe_neighbours_only,
                       block_size):
  """Steps 1–5: the encoding V ([N, N], after query expansion) and the largest probe support.

  Args:
    samples: [N, D] float32, probes first.
    num_probe: P.
    k1, k2: neighbourhood sizes.
    half_neighbours: round(k1 / 2) + 1 for the R* expansion; 0 = no expansion.
    probe_neighbours_only: restrict neighbour lists to the first P samples.
    block_size: rows per block.

  Returns:
    (V [N, N] float32, [N] the maximum of each row of D, int32 scalar: the most
    non-zeros in a probe row of V).
  """
  num_samples = samples.shape[0]
  num_neighbours = max(k1 + 1, k2)
  columns = jnp.arange(num_samples)

  def block_neighbours(rows):
    squared = distances.squared_euclidean_distance(samples[rows], samples)
    row_max = jnp.max(squared, axis=1)
    if probe_neighbours_only:
      squared = jnp.where(columns[None, :] >= num_probe, jnp.inf, squared)
    return jax.lax.top_k(-squared, num_neighbours)[1].astype(jnp.int32), row_max

  neighbours, row_max = _map_row_blocks(block_neighbours, num_samples, block_size)
  if half_neighbours:
    # R½(c) of every sample c: [N, h] mask over its first h neighbours.
    half_reciprocal = _map_row_blocks(
        lambda rows: _reciprocal(neighbours, rows, half_neighbours), num_samples, block_size
    )

  def block_encoding(rows):
    forward = neighbours[rows, : k1 + 1]
    reciprocal = _reciprocal(neighbours, rows, k1 + 1)  # [B, k1 + 1]
    members, is_member = forward, reciprocal
    if half_neighbours:
      candidate_sets = neighbours[forward, :half_neighbours]  # [B, k1 + 1, h]
      candidate_masks = half_reciprocal[forward]  # [B, k1 + 1, h]
      in_reciprocal_set = jnp.any(
          (candidate_sets[..., None] == forward[:, None, None, :])
          & reciprocal[:, None, None, :],
          axis=-1,
      )
      overlap = jnp.sum(in_reciprocal_set & candidate_masks, axis=-1)
      size = jnp.sum(candidate_masks, axis=-1)
      # "more than 2/3 of R½(c) lies in R(i)", in integers: 3·overlap > 2·size.
      accepted = reciprocal & (3 * overlap > 2 * size)
      members = jnp.concatenate([forward, candidate_sets.reshape(len(rows), -1)], axis=1)
      is_member = jnp.concatenate(
          [reciprocal, (accepted[..., None] & candidate_masks).reshape(len(rows), -1)], axis=1
      )
    block_rows = jnp.broadcast_to(jnp.arange(len(rows))[:, None], members.shape)
    member_mask = (
        jnp.zeros((len(rows), num_samples), jnp.float32)
        .at[block_rows, members]
        .max(is_member.astype(jnp.float32))
    )
    normalised = (
        distances.squared_euclidean_distance(samples[rows], samples) / row_max[rows, None]
    )
    weights = jnp.where(member_mask > 0, jnp.exp(-normalised), 0.0)
    total = jnp.sum(weights, axis=1, keepdims=True)
    # An empty set (gallery rows with probe-only neighbours) leaves a zero row.
    return weights / jnp.where(total > 0, total, 1.0)

  encoding = _map_row_blocks(block_encoding, num_samples, block_size)
  if k2 > 1:
    encoding = _map_row_blocks(
        lambda rows: jnp.mean(encoding[neighbours[rows, :k2]], axis=1), num_samples, block_size
    )
  support = jnp.max(jnp.sum(encoding[:num_probe] > 0, axis=1))
  return encoding, row_max, support


@functools.partial(
    jax.jit, static_argnames=("num_probe", "lambda_value", "support", "block_size")
)
def _final_distances(samples, encoding, row_max, *, num_probe, lambda_value, support, block_size):
  """Steps 6–7 for the probe rows: [P, M] = (1 - λ) Jaccard + λ D̃.

  m[i, j] = Σ_k min(V[i, k], V[j, k]) only needs the `support` largest entries
  of V[i] (all of its non-zeros; min(0, ·) = 0 elsewhere since V >= 0).
  """
  gallery_encoding = encoding[num_probe:]
  gallery_samples = samples[num_probe:]

  def block_final(rows):
    values, indices = jax.lax.top_k(encoding[rows], support)  # [B, S]
    gathered = jnp.take(gallery_encoding, indices.reshape(-1), axis=1).reshape(
        gallery_encoding.shape[0], len(rows), support
    )  # [M, B, S]
    overlap = jnp.sum(jnp.minimum(values[None], gathered), axis=-1).T  # [B, M]
    jaccard = 1.0 - overlap / (2.0 - overlap)
    normalised = (
        distances.squared_euclidean_distance(samples[rows], gallery_samples) / row_max[rows, None]
    )
    return (1.0 - lambda_value) * jaccard + lambda_value * normalised

  return _map_row_blocks(block_final, num_probe, block_size)
