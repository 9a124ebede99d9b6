"""Tests for soft sorting and ranking (torchsort conventions)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from vireid_jax.ops import isotonic_kl, isotonic_l2, soft_rank, soft_sort

# --- Independent NumPy reference (sequential stack PAV, mcja.md §4.2) ---------


def _pav_reference(y, w=None, regularization="l2"):
  """Non-increasing isotonic regression by the classic stack form of PAV."""
  blocks = []  # [first index, last index, stat_y, stat_w]
  for k in range(len(y)):
    if regularization == "l2":
      blocks.append([k, k, y[k], 1.0])
    else:
      blocks.append([k, k, y[k], w[k]])
    while len(blocks) > 1 and _block_value(blocks[-2], regularization) <= (
        _block_value(blocks[-1], regularization)):
      top = blocks.pop()
      below = blocks[-1]
      below[1] = top[1]
      if regularization == "l2":
        below[2] += top[2]
        below[3] += top[3]
      else:
        below[2] = np.logaddexp(below[2], top[2])
        below[3] = np.logaddexp(below[3], top[3])
  solution = np.empty(len(y))
  for block in blocks:
    solution[block[0]:block[1] + 1] = _block_value(block, regularization)
  return solution


def _block_value(block, regularization):
  if regularization == "l2":
    return block[2] / block[3]  # sum / count
  return block[2] - block[3]  # lse(y) - lse(w)


def _isotonic_reference(y, w=None, regularization="l2"):
  if regularization == "l2":
    # SciPy's solver is independent of both implementations.
    return scipy.optimize.isotonic_regression(y, increasing=False).x
  return _pav_reference(y, w, "kl")


def _soft_rank_reference(values, strength, regularization):
  """Row-by-row soft rank with the reference solver."""
  values = np.asarray(values, np.float64)
  ranks = np.empty_like(values)
  for index in np.ndindex(values.shape[:-1]):
    scaled = values[index] / strength
    descending = np.argsort(-scaled, kind="stable")
    sorted_scaled = scaled[descending]
    weights = np.arange(len(scaled), 0, -1, dtype=np.float64)
    if regularization == "l2":
      sorted_ranks = sorted_scaled - _isotonic_reference(
          sorted_scaled - weights)
    else:
      sorted_ranks = np.exp(sorted_scaled - _isotonic_reference(
          sorted_scaled, np.log(weights), "kl"))
    ranks[index + (descending,)] = sorted_ranks
  return ranks


def _soft_sort_reference(values, strength, regularization):
  values = np.asarray(values, np.float64)
  sorted_values = np.empty_like(values)
  for index in np.ndindex(values.shape[:-1]):
    negated_sorted = -np.sort(values[index])
    weights = np.arange(values.shape[-1], 0, -1, dtype=np.float64) / strength
    if regularization == "l2":
      solution = _isotonic_reference(weights - negated_sorted)
    else:
      solution = _isotonic_reference(weights, negated_sorted, "kl")
    sorted_values[index] = solution - weights
  return sorted_values


def _central_difference_vjp(fn, x, cotangent, step=1e-6):
  """Gradient of ⟨cotangent, fn(x)⟩ by central differences, float64."""
  x = np.asarray(x, np.float64)
  gradient = np.zeros_like(x)
  for index in np.ndindex(x.shape):
    offset = np.zeros_like(x)
    offset[index] = step
    gradient[index] = np.sum(
        cotangent * (np.asarray(fn(x + offset)) - np.asarray(fn(x - offset)))
    ) / (2 * step)
  return gradient


# Most float64 tests run on this shape (two leading batch axes) through the
# programs below, with the strength traced, so that each (operation,
# regularization) pair compiles once for the whole module: compilation, not
# computation, dominates these tests' run time.
_SHAPE = (3, 5, 7)
_MCJA_SIZED_DISTANCES = np.random.default_rng(1).uniform(size=(90, 90))


def _random_values(seed):
  return np.random.default_rng(seed).normal(size=_SHAPE)


@functools.cache
def _value_and_vjp_program(operation, regularization):
  """(values, strength, cotangent) -> (outputs, ∂/∂values, ∂/∂strength)."""

  def value_and_vjp(values, strength, cotangent):
    outputs, pullback = jax.vjp(
        lambda v, s: operation(v, s, regularization), values, strength)
    return (outputs,) + pullback(cotangent)

  return jax.jit(value_and_vjp)


def _apply(operation, values, strength, regularization):
  """The forward pass through the shared program, as NumPy."""
  values = np.asarray(values, np.float64)
  return np.asarray(_value_and_vjp_program(operation, regularization)(
      values, float(strength), np.zeros_like(values))[0])


@functools.cache
def _isotonic_program(regularization):
  """(y, w, cotangent) -> (solution, VJPs) of the public isotonic solvers."""
  if regularization == "l2":
    solve = lambda y, w: isotonic_l2(y)
  else:
    solve = isotonic_kl

  def value_and_vjp(y, w, cotangent):
    solution, pullback = jax.vjp(solve, y, w)
    return (solution,) + pullback(cotangent)

  return jax.jit(value_and_vjp)


def _isotonic(y, w, regularization):
  return np.asarray(_isotonic_program(regularization)(y, w,
                                                       np.zeros_like(y))[0])


# --- Reference sanity: the NumPy PAV agrees with SciPy's ------------------------


def test_numpy_reference_pav_agrees_with_scipy():
  rng = np.random.default_rng(0)
  for _ in range(20):
    y = rng.normal(size=9) * 3
    np.testing.assert_allclose(
        _pav_reference(y), scipy.optimize.isotonic_regression(
            y, increasing=False).x, rtol=1e-12, atol=1e-12)


# --- Spec test vectors (mcja.md §4.4) -------------------------------------------

_SPEC_VECTORS = [
    # (θ, ε, expected ranks, cotangent, expected VJP)
    ([0.3, 0.1, 0.7, 0.5], 0.5, [2.3, 1.9, 3.1, 2.7], [1, -1, 0.5, 2],
     [0.75, -3.25, -0.25, 2.75]),
    ([0.3, 0.1, 0.7, 0.5], 0.1, [2, 1, 4, 3], [1, -1, 0.5, 2], [0, 0, 0, 0]),
    ([0.9, 0.07, 0.4, 0.41, 0.0, 0.75], 0.5,
     [4.456667, 2.796667, 3.456667, 3.476667, 2.656667, 4.156667],
     [0, 1, 2, 3, 4, 5], [-5, -3, -1, 1, 3, 5]),
    ([0.9, 0.07, 0.4, 0.41, 0.0, 0.75], 0.2,
     [5.875, 1.75, 3.4, 3.45, 1.4, 5.125], [0, 1, 2, 3, 4, 5],
     [-12.5, -7.5, -2.5, 2.5, 7.5, 12.5]),
    ([0.9, 0.07, 0.4, 0.41, 0.0, 0.75], 0.05, [6, 2, 3.4, 3.6, 1, 5],
     [0, 1, 2, 3, 4, 5], [0, 0, -10, 10, 0, 0]),
    ([0.0, 1.0], 0.5, [1, 2], [1, 0], [0, 0]),
]


@jax.jit
def _rank_and_vjp(theta, strength, cotangent):
  ranks, pullback = jax.vjp(lambda t: soft_rank(t, strength), theta)
  return ranks, pullback(cotangent)[0]


@pytest.mark.parametrize("theta, strength, ranks, cotangent, vjp",
                         _SPEC_VECTORS)
def test_mcja_spec_vectors(x64, theta, strength, ranks, cotangent, vjp):
  # torchsort's [rows, n] layout.
  got_ranks, got_vjp = _rank_and_vjp(np.array([theta], np.float64), strength,
                                     np.array([cotangent], np.float64))
  np.testing.assert_allclose(got_ranks[0], ranks, atol=5e-7)
  np.testing.assert_allclose(got_vjp[0], vjp, atol=1e-12)


def _cmr_loss(embeddings, ids, modalities):
  """MCJA's cross-modality retrieval loss (mcja.md §4.1) per direction."""
  directions = []
  for query_modality in np.unique(modalities):
    gallery = np.flatnonzero(modalities != query_modality)
    queries = np.array([
        i for i in np.flatnonzero(modalities == query_modality)
        if 0 < np.sum(ids[gallery] == ids[i]) < len(gallery)
    ])
    if not queries.size:
      continue
    cosine = (embeddings[queries] @ embeddings[gallery].T) / np.maximum(
        np.linalg.norm(embeddings[queries], axis=1)[:, None]
        * np.linalg.norm(embeddings[gallery], axis=1)[None, :], 1e-8)
    ranks = np.asarray(soft_rank((1.0 - cosine) / 2.0, 0.5, "l2"))
    targets = np.where(ids[queries][:, None] == ids[gallery][None, :], 1.0,
                       float(len(gallery)))
    directions.append(np.mean(np.abs(ranks - targets)))
  return directions


def test_mcja_cmr_toy_batch(x64):
  embeddings = np.array(
      [[1, 0, 0, 0], [.9, .1, 0, 0], [0, 1, 0, 0], [.1, .8, .2, 0],
       [.7, 0, .3, 0], [0, .9, 0, .4], [0, 0, 1, 0], [0, .2, .9, .1],
       [.5, .5, 0, 0], [.3, 0, 0, 1]], np.float64)
  ids = np.array([0, 0, 1, 1, 0, 1, 2, 2, 3, 0])
  modalities = np.array([0, 1, 0, 1, 1, 0, 0, 1, 0, 0])
  visible_to_infrared, infrared_to_visible = _cmr_loss(embeddings, ids,
                                                       modalities)
  np.testing.assert_allclose(visible_to_infrared, 1.211316, atol=5e-7)
  np.testing.assert_allclose(infrared_to_visible, 2.292113, atol=5e-7)
  np.testing.assert_allclose((visible_to_infrared + infrared_to_visible) / 2,
                             1.751715, atol=5e-7)


def test_single_block_closed_form_of_mcja_setting():
  # mcja.md §4.5: with ε = 0.5 and θ in [0, 1], n ≥ 4 gives one PAV block,
  # so r = 2θ − 2·mean(θ) + (n + 1)/2.
  theta = _MCJA_SIZED_DISTANCES
  expected = 2 * theta - 2 * theta.mean(-1, keepdims=True) + 45.5
  np.testing.assert_allclose(soft_rank(jnp.asarray(theta, jnp.float32), 0.5),
                             expected, rtol=1e-5)


def test_float32_agrees_with_float64_reference():
  np.testing.assert_allclose(
      soft_rank(jnp.asarray(_MCJA_SIZED_DISTANCES, jnp.float32), 0.05),
      _soft_rank_reference(_MCJA_SIZED_DISTANCES, 0.05, "l2"), atol=2e-4)


# --- Agreement with the reference on random inputs ------------------------------

@pytest.mark.parametrize("regularization", ["l2", "kl"])
def test_soft_rank_and_sort_match_numpy_reference(x64, regularization):
  values = _random_values(2)
  for strength in (0.05, 0.3, 1.0, 5.0):
    np.testing.assert_allclose(
        _apply(soft_rank, values, strength, regularization),
        _soft_rank_reference(values, strength, regularization),
        rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        _apply(soft_sort, values, strength, regularization),
        _soft_sort_reference(values, strength, regularization),
        rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("regularization", ["l2", "kl"])
def test_isotonic_solvers_match_reference(x64, regularization):
  rng = np.random.default_rng(3)
  y = rng.normal(size=_SHAPE) * rng.uniform(0.1, 5.0, size=_SHAPE[:-1] + (1,))
  w = rng.normal(size=_SHAPE)
  got = _isotonic(y, w, regularization)
  expected = np.empty(_SHAPE)
  for index in np.ndindex(_SHAPE[:-1]):
    expected[index] = _isotonic_reference(y[index], w[index], regularization)
  np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
  # Non-increasing, and the rows do pool (otherwise the test is trivial).
  assert np.all(np.diff(got, axis=-1) <= 1e-12)
  assert np.any(np.diff(got, axis=-1) == 0)


# --- Limits and invariants -------------------------------------------------------


@pytest.mark.parametrize("regularization", ["l2", "kl"])
def test_small_strength_gives_hard_rank_and_sort(x64, regularization):
  values = _random_values(5)
  hard_ranks = np.argsort(np.argsort(values, axis=-1), axis=-1) + 1.0
  minimum_gap = np.min(np.diff(np.sort(values, axis=-1), axis=-1))
  errors = []
  for strength in (30.0, 10.0, 3.0, 1.0, 0.3):
    errors.append(np.max(np.abs(
        _apply(soft_rank, values, strength * minimum_gap, regularization)
        - hard_ranks)))
  # The error shrinks to 0 as the strength does.
  assert errors[0] > 0.1
  assert np.all(np.diff(errors) <= 1e-9) and errors[-1] < 1e-6
  # Below the smallest gap the "l2" rank is exact.
  if regularization == "l2":
    np.testing.assert_allclose(
        _apply(soft_rank, values, 0.5 * minimum_gap, "l2"), hard_ranks, rtol=0,
        atol=1e-12)
  np.testing.assert_allclose(_apply(soft_sort, values, 1e-3, regularization),
                             np.sort(values, axis=-1), atol=1e-9)


def test_large_strength_limits(x64):
  values = _random_values(6)
  scaled = values / 100.0
  np.testing.assert_allclose(
      _apply(soft_rank, values, 100.0, "l2"),
      scaled - scaled.mean(-1, keepdims=True) + 4.0,
      rtol=1e-12)
  np.testing.assert_allclose(
      _apply(soft_sort, values, 1e9, "l2"),
      np.broadcast_to(values.mean(-1, keepdims=True), _SHAPE), atol=1e-7)


@pytest.mark.parametrize("regularization", ["l2", "kl"])
def test_outputs_lie_on_the_permutahedron(x64, regularization):
  values = _random_values(7) * 2
  ranks = _apply(soft_rank, values, 0.7, regularization)
  np.testing.assert_allclose(ranks.sum(-1), 28.0, rtol=1e-12)
  # Soft ranks keep the order of the values.
  np.testing.assert_array_equal(np.argsort(ranks, -1), np.argsort(values, -1))
  sorted_values = _apply(soft_sort, values, 0.7, regularization)
  assert np.all(np.diff(sorted_values, axis=-1) >= 0)
  if regularization == "l2":
    np.testing.assert_allclose(sorted_values.sum(-1), values.sum(-1),
                               rtol=1e-12)


def test_ties_share_a_rank(x64):
  values = _random_values(8)
  values[1, 2] = [0.3, 1.0, 0.3, -2.0, 1.0, 5.0, 7.0]
  for regularization in ("l2", "kl"):
    ranks = _apply(soft_rank, values, 0.01, regularization)[1, 2]
    np.testing.assert_allclose(ranks, [2.5, 4.5, 2.5, 1.0, 4.5, 6.0, 7.0],
                               rtol=1e-12)


# --- Gradients -------------------------------------------------------------------


@pytest.mark.parametrize("operation", [soft_rank, soft_sort])
@pytest.mark.parametrize("regularization", ["l2", "kl"])
def test_vjp_matches_finite_differences(x64, operation, regularization):
  """VJPs w.r.t. the values and a traced strength, at several strengths."""
  rng = np.random.default_rng(9)
  values = _random_values(9)
  program = _value_and_vjp_program(operation, regularization)
  for strength in (0.1, 0.5, 3.0):
    cotangent = rng.normal(size=_SHAPE)
    _, values_vjp, strength_vjp = program(values, strength, cotangent)
    np.testing.assert_allclose(
        values_vjp,
        _central_difference_vjp(
            lambda v: _apply(operation, v, strength, regularization), values,
            cotangent),
        rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        strength_vjp,
        _central_difference_vjp(
            lambda s: _apply(operation, values, s, regularization),
            np.float64(strength), cotangent),
        rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("regularization", ["l2", "kl"])
def test_isotonic_vjps_match_finite_differences(x64, regularization):
  rng = np.random.default_rng(10)
  y, w, cotangent = (rng.normal(size=_SHAPE) for _ in range(3))
  _, y_vjp, w_vjp = _isotonic_program(regularization)(y, w, cotangent)
  np.testing.assert_allclose(
      y_vjp,
      _central_difference_vjp(lambda y: _isotonic(y, w, regularization), y,
                              cotangent),
      rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(
      w_vjp,
      _central_difference_vjp(lambda w: _isotonic(y, w, regularization), w,
                              cotangent),
      rtol=1e-6, atol=1e-7)
  # Blocks do form, so the VJP is not the identity map.
  assert np.max(np.abs(y_vjp - cotangent)) > 0.1


def test_vmap_over_rows_matches_batched_call(x64):
  values = _random_values(11)
  rows = values.reshape(-1, _SHAPE[-1])
  row_loss = lambda row: jnp.sum(soft_sort(row, 0.4, "kl") ** 2)
  losses, gradients = jax.jit(jax.vmap(jax.value_and_grad(row_loss)))(rows)
  np.testing.assert_allclose(
      losses, np.sum(_soft_sort_reference(rows, 0.4, "kl") ** 2, axis=-1),
      rtol=1e-12)
  # The batched (3, 5, 7) call, differentiated numerically.
  batched_sort = lambda v: _apply(soft_sort, v, 0.4, "kl")
  np.testing.assert_allclose(
      gradients.reshape(_SHAPE),
      _central_difference_vjp(batched_sort, values, 2 * batched_sort(values)),
      rtol=1e-6, atol=1e-7)


# --- Shapes, dtypes, arguments ----------------------------------------------------


def test_dtypes_and_edge_shapes():
  permuted = np.random.default_rng(13).permutation(7)
  # A single row (no batch axis), in bfloat16.
  bfloat16_ranks = soft_rank(jnp.asarray(permuted, jnp.bfloat16), 0.1)
  assert bfloat16_ranks.dtype == jnp.bfloat16
  np.testing.assert_array_equal(bfloat16_ranks.astype(jnp.float32),
                                permuted + 1)
  integer_sort = soft_sort(jnp.asarray(permuted), 0.1)
  assert integer_sort.dtype == jnp.float32
  np.testing.assert_array_equal(integer_sort, np.arange(7.0))
  assert soft_rank(jnp.zeros((3, 0))).shape == (3, 0)


def test_kl_vjp_does_not_overflow_for_large_values(x64):
  # torchsort's KL backward exponentiates raw values (overflowing past ~709 in
  # float64, ~88 in float32); ours is max-shifted.
  values = 1000.0 + 300.0 * _random_values(14)
  cotangent = np.random.default_rng(14).normal(size=_SHAPE)
  _, values_vjp, _ = _value_and_vjp_program(soft_sort, "kl")(values, 1.0,
                                                             cotangent)
  assert np.all(np.isfinite(values_vjp)) and np.any(values_vjp != 0)
  np.testing.assert_allclose(
      values_vjp, _central_difference_vjp(
          lambda v: _apply(soft_sort, v, 1.0, "kl"), values, cotangent),
      rtol=1e-6, atol=1e-7)


def test_argument_validation():
  values = jnp.ones((2, 3))
  with pytest.raises(TypeError, match="argument order"):
    soft_rank(values, "l2", 0.5)  # torchsort's positional order.
  with pytest.raises(ValueError, match="regularization"):
    soft_sort(values, 0.5, "entropic")
  with pytest.raises(ValueError, match="> 0"):
    soft_rank(values, 0.0)
  with pytest.raises(ValueError, match="axis"):
    soft_rank(jnp.float32(1.0))
