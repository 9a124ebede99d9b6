"""Differentiable soft sorting and ranking (Blondel et al., ICML 2020).

"Fast Differentiable Sorting and Ranking", https://arxiv.org/abs/2002.08871.
The soft rank (sort) is the projection of the scaled values onto the
permutahedron under a quadratic ("l2") or entropic ("kl") regulariser. The
projection reduces to an isotonic regression on the values sorted in
descending order, solved exactly by pool-adjacent-violators (PAV), and its
Jacobian is block-diagonal over PAV's blocks: the analytic VJP averages the
incoming gradient over each block ("l2") or distributes each block's gradient
sum by a softmax ("kl").

Conventions follow torchsort 0.1.9 (the package the MCJA reference uses; spec
``mcja.md`` §4.2): ascending, 1-based ranks; ``soft_sort`` returns values in
ascending order; the scale is ``1 / regularization_strength``. As the strength
tends to 0 the outputs become the hard rank and sort.

Departures from torchsort, all immaterial for MCJA:

* Argument order: ``(values, regularization_strength, regularization)``;
  torchsort's is ``(values, regularization, regularization_strength)``. A
  string passed as the strength raises a TypeError rather than misbehaving.
* Leading axes are batch axes (torchsort accepts only [rows, n]); the
  operation always runs over the last axis.
* The backward pass uses PAV's own blocks. torchsort rebuilds the blocks from
  the solution, joining adjacent blocks whose values differ by at most 1e-9;
  the two differ only when two distinct block values lie within 1e-9.
* The "kl" VJP uses a max-shifted softmax (torchsort exponentiates the
  values unshifted, which overflows for values above ~88 in float32).
* The strength may be a traced array and is differentiable (torchsort
  returns no gradient for it).
* Half-precision inputs are computed in float32 and cast back; integer inputs
  give float32 outputs.
* Only reverse-mode differentiation is defined (custom VJP), as in torchsort.

PAV here pools all adjacent violating blocks of every row at once and repeats
until no violation remains (at most n - 1 rounds; a handful for typical
inputs, e.g. 2 to 10 for MCJA-sized rows). A round is a few segment
reductions over all rows together, so the whole solve is one ``while`` loop
in which rows that finish early idle. Pooling adjacent violators in any order
yields the unique solution; ties are pooled (``<=``), as in torchsort.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

_REGULARIZATIONS = ("l2", "kl")


def _flat_segment_ids(block_ids: jax.Array) -> jax.Array:
  """Row-local block ids [R, n] -> ids unique across rows, [R * n]."""
  rows, n = block_ids.shape
  return (block_ids + n * jnp.arange(rows, dtype=block_ids.dtype)[:, None]
          ).reshape(-1)


def _block_reduce(x: jax.Array, block_ids: jax.Array,
                  segment_reduction) -> jax.Array:
  """Reduces x [R, n, ...] over each PAV block; returns it per element."""
  flat_ids = _flat_segment_ids(block_ids)
  flat_x = x.reshape((flat_ids.shape[0],) + x.shape[2:])
  reduced = segment_reduction(flat_x, flat_ids,
                              num_segments=flat_ids.shape[0],
                              indices_are_sorted=True)
  return reduced[flat_ids].reshape(x.shape)


def _block_logsumexp(x: jax.Array, block_ids: jax.Array) -> jax.Array:
  """log Σ exp(x) over each block, per element: [R, n, ...] -> same."""
  maxima = _block_reduce(x, block_ids, jax.ops.segment_max)
  sums = _block_reduce(jnp.exp(x - maxima), block_ids, jax.ops.segment_sum)
  return maxima + jnp.log(sums)


def _block_values(y: jax.Array, w: jax.Array | None, block_ids: jax.Array,
                  regularization: str) -> jax.Array:
  """Each element's block optimum, [R, n] -> [R, n]."""
  if regularization == "l2":
    # argmin_v Σ_B ½ (v - y_k)² = mean_B(y). Sums and counts share one
    # segment reduction.
    sums_and_counts = _block_reduce(
        jnp.stack([y, jnp.ones_like(y)], axis=-1), block_ids,
        jax.ops.segment_sum)
    return sums_and_counts[..., 0] / sums_and_counts[..., 1]
  # argmin_v Σ_B exp(y_k - v) + v exp(w_k) = lse_B(y) - lse_B(w).
  log_sums = _block_logsumexp(jnp.stack([y, w], axis=-1), block_ids)
  return log_sums[..., 0] - log_sums[..., 1]


def _pav(y: jax.Array, w: jax.Array | None,
         regularization: str) -> tuple[jax.Array, jax.Array]:
  """Non-increasing isotonic regression of each row by parallel PAV.

  Args:
    y: [R, n] targets.
    w: [R, n] second argument of the "kl" problem (None for "l2").
    regularization: "l2" or "kl".

  Returns:
    (solution [R, n], block_ids [R, n] int32: per row contiguous, 0-based,
    non-decreasing).
  """
  rows, n = y.shape
  first = jnp.arange(n) == 0

  def pool_violators(state):
    block_starts = state[0]
    block_ids = jnp.cumsum(block_starts.astype(jnp.int32), axis=-1) - 1
    values = _block_values(y, w, block_ids, regularization)
    # At a block start, the previous element holds the left block's value. A
    # block that does not strictly decrease from its left neighbour violates
    # the constraint; pooling every such boundary at once is safe because
    # pooling adjacent violators in any order reaches the same solution.
    left_values = jnp.concatenate([values[:, :1], values[:, :-1]], axis=-1)
    violations = block_starts & ~first & (left_values <= values)
    return (block_starts & ~violations, block_ids, values,
            jnp.any(violations))

  # The loop exits after a round without violations, so the block ids and
  # values it carries out belong to the final partition. Rows that are done
  # early go through further rounds unchanged.
  initial_state = (jnp.ones((rows, n), dtype=bool),
                   jnp.zeros((rows, n), jnp.int32), jnp.zeros_like(y),
                   jnp.array(True))
  _, block_ids, values, _ = jax.lax.while_loop(
      lambda state: state[-1], pool_violators, initial_state)
  return values, block_ids


def _as_rows(x: jax.Array) -> jax.Array:
  """[..., n] -> [R, n] with R the product of the leading axes."""
  return x.reshape((math.prod(x.shape[:-1]), x.shape[-1]))


@jax.custom_vjp
def _isotonic_l2(y):
  return _isotonic_l2_fwd(y)[0]


def _isotonic_l2_fwd(y):
  solution, block_ids = _pav(_as_rows(y), None, "l2")
  return solution.reshape(y.shape), block_ids


def _isotonic_l2_bwd(block_ids, g):
  # d v_B / d y_k = 1 / |B| for k in B: average the cotangent over blocks.
  return (_block_values(_as_rows(g), None, block_ids, "l2").reshape(g.shape),)


_isotonic_l2.defvjp(_isotonic_l2_fwd, _isotonic_l2_bwd)


@jax.custom_vjp
def _isotonic_kl(y, w):
  return _isotonic_kl_fwd(y, w)[0]


def _isotonic_kl_fwd(y, w):
  solution, block_ids = _pav(_as_rows(y), _as_rows(w), "kl")
  return solution.reshape(y.shape), (y, w, block_ids)


def _isotonic_kl_bwd(residuals, g):
  # v_B = lse_B(y) − lse_B(w): d v_B / d y_k = softmax_B(y)_k and
  # d v_B / d w_k = −softmax_B(w)_k for k in B.
  y, w, block_ids = residuals
  y_and_w = jnp.stack([_as_rows(y), _as_rows(w)], axis=-1)
  softmaxes = jnp.exp(y_and_w - _block_logsumexp(y_and_w, block_ids))
  block_sums = _block_reduce(_as_rows(g), block_ids, jax.ops.segment_sum)
  y_cotangent = (softmaxes[..., 0] * block_sums).reshape(y.shape)
  w_cotangent = (-softmaxes[..., 1] * block_sums).reshape(w.shape)
  return y_cotangent, w_cotangent


_isotonic_kl.defvjp(_isotonic_kl_fwd, _isotonic_kl_bwd)


@jax.jit
def isotonic_l2(y: jax.Array) -> jax.Array:
  """argmin_{v_1 ≥ … ≥ v_n} ½‖v − y‖² over the last axis.

  Args:
    y: [..., n] floating point; leading axes are batch axes.

  Returns:
    [..., n], the non-increasing isotonic regression of each row. The VJP
    averages the cotangent over PAV's blocks (the exact Jacobian).
  """
  return _isotonic_l2(y)


@jax.jit
def isotonic_kl(y: jax.Array, w: jax.Array) -> jax.Array:
  """argmin_{v_1 ≥ … ≥ v_n} Σ_k exp(y_k − v_k) + Σ_k exp(w_k) v_k, last axis.

  Block values are lse_B(y) − lse_B(w) (Blondel et al. 2020, and torchsort's
  ``isotonic_kl(y, w)``).

  Args:
    y: [..., n] floating point; leading axes are batch axes.
    w: [..., n] floating point, same shape.

  Returns:
    [..., n]. The VJP w.r.t. y (w) is ``+(−) softmax_B(y (w)) · Σ_B g`` per
    PAV block B (the exact Jacobian).
  """
  return _isotonic_kl(y, w)


def _unsort(sorted_values: jax.Array, permutation: jax.Array) -> jax.Array:
  """Inverts ``take_along_axis(x, permutation, -1)``, [..., n] -> [..., n]."""
  # A scatter is cheaper than a second argsort for the inverse permutation
  # (XLA's CPU sort is slow); its transpose, used by autodiff, is a gather.
  rows = _as_rows(sorted_values)
  row_index = jnp.arange(rows.shape[0])[:, None]
  unsorted = jnp.zeros_like(rows).at[row_index, _as_rows(permutation)].set(
      rows, unique_indices=True)
  return unsorted.reshape(sorted_values.shape)


def _validated(values, regularization_strength, regularization):
  """Checks the arguments before tracing.

  Returns:
    (values [..., n] array, regularization_strength as a 0-d array of the
    compute dtype). A fixed strength type means that Python floats, NumPy
    scalars and arrays all reuse one compiled program per input shape.
  """
  if isinstance(regularization_strength, str):
    raise TypeError(
        "regularization_strength must be a number; note the argument order "
        "(values, regularization_strength, regularization), which differs "
        "from torchsort's (values, regularization, regularization_strength).")
  if regularization not in _REGULARIZATIONS:
    raise ValueError(
        f"regularization must be one of {_REGULARIZATIONS}, "
        f"got {regularization!r}.")
  if isinstance(regularization_strength, (int, float, np.number)) and not (
      regularization_strength > 0):
    raise ValueError(
        f"regularization_strength must be > 0, got {regularization_strength}.")
  values = jnp.asarray(values)
  if values.ndim == 0:
    raise ValueError("values must have at least one axis.")
  compute_dtype, _ = _compute_and_output_dtypes(values.dtype)
  regularization_strength = jnp.asarray(regularization_strength,
                                        compute_dtype)
  if regularization_strength.ndim != 0:
    raise ValueError("regularization_strength must be a scalar.")
  return values, regularization_strength


def _compute_and_output_dtypes(dtype):
  output_dtype = (dtype if jnp.issubdtype(dtype, jnp.floating)
                  else jnp.dtype(jnp.float32))
  # PAV compares block values; half precision would merge blocks at random.
  return jnp.promote_types(output_dtype, jnp.float32), output_dtype


def soft_rank(values: jax.typing.ArrayLike,
              regularization_strength: jax.typing.ArrayLike = 1.0,
              regularization: str = "l2") -> jax.Array:
  """Soft ranks along the last axis: ascending, 1-based, like torchsort.

  With z = values / ε (ε = ``regularization_strength``), the "l2" soft rank is
  the Euclidean projection of z onto the permutahedron of (1, …, n); the "kl"
  soft rank minimises KL(μ ‖ exp(z)) over the same set. As ε → 0 the result is
  the hard rank (smallest value → 1, largest → n); for large ε the "l2" ranks
  are ``z − mean(z) + (n + 1) / 2``. Each row's ranks sum to n (n + 1) / 2.

  Tied values share a PAV block and so receive equal ranks.

  Args:
    values: [..., n] real values; leading axes are batch axes. torchsort's
      ``soft_rank(x)`` with x of shape [rows, n] is ``soft_rank(x)`` here.
    regularization_strength: ε > 0, a scalar (may be traced; it is then
      differentiable too). MCJA uses 0.5.
    regularization: "l2" (quadratic; MCJA) or "kl" (entropic).

  Returns:
    [..., n] soft ranks, floating point (the input dtype, or float32 for
    integer inputs). Differentiable in reverse mode with an analytic VJP.
  """
  return _soft_rank(*_validated(values, regularization_strength,
                                regularization), regularization)


@functools.partial(jax.jit, static_argnames="regularization")
def _soft_rank(values, regularization_strength, regularization):
  compute_dtype, output_dtype = _compute_and_output_dtypes(values.dtype)
  values = values.astype(compute_dtype)
  n = values.shape[-1]
  if n == 0:
    return values.astype(output_dtype)
  scaled = values / regularization_strength
  descending = jnp.argsort(scaled, axis=-1, descending=True, stable=True)
  sorted_scaled = jnp.take_along_axis(scaled, descending, axis=-1)
  rank_weights = jnp.arange(n, 0, -1, dtype=compute_dtype)  # n, ..., 1.
  if regularization == "l2":
    dual = _isotonic_l2(sorted_scaled - rank_weights)
    sorted_ranks = sorted_scaled - dual
  else:
    dual = _isotonic_kl(sorted_scaled,
                       jnp.broadcast_to(jnp.log(rank_weights),
                                        sorted_scaled.shape))
    sorted_ranks = jnp.exp(sorted_scaled - dual)
  return _unsort(sorted_ranks, descending).astype(output_dtype)


def soft_sort(values: jax.typing.ArrayLike,
              regularization_strength: jax.typing.ArrayLike = 1.0,
              regularization: str = "l2") -> jax.Array:
  """Soft sort along the last axis, in ascending order, like torchsort.

  The "l2" soft sort is the Euclidean projection of (1, …, n) / ε onto the
  permutahedron of the values, mapped back to ascending values (Blondel et
  al. 2020 with torchsort's sign convention); the "kl" variant uses the
  entropic projection. As ε → 0 the result is ``jnp.sort(values)``; for large
  ε every output tends to the row mean ("l2"). For "l2", each row sums to the
  sum of its values.

  Args:
    values: [..., n] real values; leading axes are batch axes.
    regularization_strength: ε > 0, a scalar (may be traced).
    regularization: "l2" or "kl".

  Returns:
    [..., n] softly sorted values (ascending along the last axis, not in the
    input's positions), floating point as for :func:`soft_rank`.
    Differentiable in reverse mode with an analytic VJP.
  """
  return _soft_sort(*_validated(values, regularization_strength,
                                regularization), regularization)


@functools.partial(jax.jit, static_argnames="regularization")
def _soft_sort(values, regularization_strength, regularization):
  compute_dtype, output_dtype = _compute_and_output_dtypes(values.dtype)
  values = values.astype(compute_dtype)
  n = values.shape[-1]
  if n == 0:
    return values.astype(output_dtype)
  # Sorting −values in descending order gives the values in ascending order.
  ascending = jnp.argsort(values, axis=-1, stable=True)
  negated_sorted = -jnp.take_along_axis(values, ascending, axis=-1)
  scaled_weights = jnp.broadcast_to(
      jnp.arange(n, 0, -1, dtype=compute_dtype)
      / regularization_strength,
      values.shape)
  if regularization == "l2":
    solution = _isotonic_l2(scaled_weights - negated_sorted)
  else:
    solution = _isotonic_kl(scaled_weights, negated_sorted)
  return (solution - scaled_weights).astype(output_dtype)
