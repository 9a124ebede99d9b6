"""Tests of vireid_jax.losses against hand-computed values and a NumPy
transcription of the spec formulas (baseline_data_eval.md §5)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vireid_jax import losses

# Jitted: one compilation per input shape instead of one per eager op, which
# on CPU is most of the run time. The functions are the same.
cross_entropy = jax.jit(losses.cross_entropy)
pairwise_euclidean = jax.jit(losses.pairwise_euclidean)
weighted_regularized_triplet = jax.jit(
    losses.weighted_regularized_triplet, static_argnames='return_correct'
)
hard_mining_triplet = jax.jit(
    losses.hard_mining_triplet, static_argnames=('margin', 'return_correct')
)
adaptive_weighted_triplet = jax.jit(
    losses.adaptive_weighted_triplet,
    static_argnames=('alpha', 'gamma', 'square', 'return_correct'),
)

# ------------------------------------------------- NumPy reference (float64)


def np_distances(f):
  sq = (f * f).sum(1)
  return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * f @ f.T, 1e-12))


def np_weighted_distances(f, y, alpha=1.0):
  """(D⁺, D⁻) of spec §5.3 / §5.5, written out loop by loop."""
  d = np_distances(f)
  n = len(y)
  positive_sum, negative_sum = np.zeros(n), np.zeros(n)
  for i in range(n):
    pos = [j for j in range(n) if y[j] == y[i]]  # self included
    neg = [j for j in range(n) if y[j] != y[i]]
    m = max(alpha * d[i, j] for j in pos)  # row max over positives
    z_pos = sum(math.exp(alpha * d[i, k] - m) for k in pos) + 1e-6
    positive_sum[i] = sum(d[i, j] * math.exp(alpha * d[i, j] - m) / z_pos for j in pos)
    # Negative weights: stabiliser 0, +1e-6 in the denominator.
    z_neg = sum(math.exp(-alpha * d[i, k]) for k in neg) + 1e-6
    negative_sum[i] = sum(d[i, j] * math.exp(-alpha * d[i, j]) / z_neg for j in neg)
  return positive_sum, negative_sum


def np_wrt(f, y):
  ap, an = np_weighted_distances(f, y)
  return np.mean(np.log1p(np.exp(-(an - ap))))


def np_adp(f, y, alpha=1.0, gamma=1.0, square=True):
  ap, an = np_weighted_distances(f, y, alpha)
  if not square:
    return np.mean(np.log1p(np.exp(-gamma * (an - ap))))
  s = np.minimum(gamma * (ap - an) ** 2, 88.0)
  t = np.where(ap > an, -1.0, 1.0)
  return np.mean(np.log1p(np.exp(-t * s)))


def random_batch(seed, n=8, dim=5, ids=3, scale=1.0):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(n, dim)) * scale, rng.integers(0, ids, size=n)


# ------------------------------------------------------------- identity loss


def test_cross_entropy_hand_computed():
  logits = jnp.array([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
  # softmax = (1/4, 3/4): losses -log(3/4) and -log(1/4).
  expected = (-math.log(0.75) - math.log(0.25)) / 2
  assert float(cross_entropy(logits, jnp.array([1, 0]))) == pytest.approx(expected, rel=1e-6)
  # Label smoothing would make a confident correct prediction cost > 0.01.
  assert float(cross_entropy(jnp.array([[20.0, 0.0]]), jnp.array([0]))) < 1e-8


# ------------------------------------------------------------ pairwise distance


def test_pairwise_euclidean_hand_computed_with_clamped_diagonal():
  d = pairwise_euclidean(jnp.array([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0]]))
  np.testing.assert_allclose(
      d,
      [[1e-6, 5.0, 5.0], [5.0, 1e-6, 1e-6], [5.0, 1e-6, 1e-6]],
      rtol=1e-5,
  )
  grad = jax.jit(jax.grad(lambda f: pairwise_euclidean(f).sum()))(
      jnp.array([[1.0, 2.0], [1.0, 2.0]])
  )
  assert np.all(np.isfinite(grad))  # the clamp keeps sqrt'(0) away


def test_pairwise_euclidean_matches_numpy_for_large_features():
  f, _ = random_batch(0, n=6, dim=64, scale=10.0)
  d = np.asarray(pairwise_euclidean(jnp.asarray(f, jnp.float32)))
  off_diagonal = ~np.eye(6, dtype=bool)
  np.testing.assert_allclose(d[off_diagonal], np_distances(f)[off_diagonal], rtol=1e-4)
  # On the diagonal the float32 expansion leaves cancellation noise of order
  # |f|·1e-3 above the 1e-6 clamp (norms here ≈ 80), as in the reference.
  assert np.all(np.diag(d) >= 1e-6) and np.all(np.diag(d) < 0.5)


# ------------------------------------------------------------------- WRT


def test_wrt_two_samples_hand_computed():
  # d = 5 between the two; each anchor's only positive is itself (d = 1e-6).
  # D⁺ = 1e-6 · 1 / (1 + 1e-6) ≈ 1e-6
  # D⁻ = 5 · e⁻⁵ / (e⁻⁵ + 1e-6) = 4.999258...
  features = jnp.array([[0.0, 0.0], [3.0, 4.0]])
  positive = 1e-6 / (1 + 1e-6)
  negative = 5 * math.exp(-5) / (math.exp(-5) + 1e-6)
  expected = math.log1p(math.exp(positive - negative))
  loss = weighted_regularized_triplet(features, jnp.array([0, 1]))
  assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_wrt_far_negatives_shrink_toward_zero_like_the_reference():
  # d = 20: e⁻²⁰ = 2.06e-9 ≪ 1e-6, so the negative weight is only
  # 2.06e-9 / (2.06e-9 + 1e-6) = 0.00206 and D⁻ = 0.0412 instead of 20: the
  # loss is ≈ log 2 instead of ≈ 0 for a proper masked softmax.
  features = jnp.array([[0.0], [20.0]])
  weight = math.exp(-20) / (math.exp(-20) + 1e-6)
  expected = math.log1p(math.exp(1e-6 / (1 + 1e-6) - 20 * weight))
  loss = float(weighted_regularized_triplet(features, jnp.array([0, 1])))
  assert loss == pytest.approx(expected, rel=1e-4)
  assert loss > 0.6


def test_wrt_self_pair_is_a_positive():
  # Three distinct identities: D⁺ is the self distance 1e-6, not 0 or NaN;
  # the loss is finite and equals the NumPy transcription.
  f = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
  y = np.array([0, 1, 2])
  loss = weighted_regularized_triplet(jnp.asarray(f), jnp.asarray(y))
  assert float(loss) == pytest.approx(np_wrt(f, y), rel=1e-5)


@pytest.mark.parametrize('scale', [0.3, 3.0])
def test_wrt_matches_numpy_transcription(scale):
  f, y = random_batch(1, scale=scale)
  loss = weighted_regularized_triplet(jnp.asarray(f, jnp.float32), jnp.asarray(y))
  assert float(loss) == pytest.approx(np_wrt(f, y), rel=1e-4)


def test_wrt_gradient_flows_through_the_weights():
  """Matches a float64 finite difference of the NumPy loss (nothing detached)."""
  f, y = random_batch(2, n=6, dim=3, ids=2)
  grad = np.asarray(
      jax.jit(jax.grad(weighted_regularized_triplet))(jnp.asarray(f, jnp.float32), jnp.asarray(y))
  )
  numeric = np.zeros_like(f)
  h = 1e-6
  for index in np.ndindex(f.shape):
    step = np.zeros_like(f)
    step[index] = h
    numeric[index] = (np_wrt(f + step, y) - np_wrt(f - step, y)) / (2 * h)
  np.testing.assert_allclose(grad, numeric, rtol=2e-3, atol=1e-5)


def test_wrt_return_correct_counts_satisfied_anchors():
  # Anchors 0 and 1 (same id, d = 1) are far from 2 (d = 10): all satisfied.
  features = jnp.array([[0.0], [1.0], [11.0]])
  loss, correct = weighted_regularized_triplet(features, jnp.array([0, 0, 1]), return_correct=True)
  assert int(correct) == 3 and float(loss) < 1e-3
  _, correct = weighted_regularized_triplet(features, jnp.array([0, 1, 0]), return_correct=True)
  # Anchor 0's positive (d = 11) is further than its negative (d = 1), same
  # for anchor 2; anchor 1's positive is itself.
  assert int(correct) == 1


# ------------------------------------------------------------ hard mining


def test_hard_mining_hand_computed():
  # 1-D points 0, 1, 3, 4 with ids a, b, a, b: every anchor's hardest positive
  # is 3 away and its hardest negative 1 away → 3 − 1 + 0.3 = 2.3 each.
  features = jnp.array([[0.0], [1.0], [3.0], [4.0]])
  loss = hard_mining_triplet(features, jnp.array([0, 1, 0, 1]))
  assert float(loss) == pytest.approx(2.3, rel=1e-5)
  # Ids a, a, b, b: positives 1 away, negatives ≥ 2 away → 1 − 2 + 0.3 < 0.
  assert float(hard_mining_triplet(features, jnp.array([0, 0, 1, 1]))) == 0.0
  # Margin 1.5: anchors 1 and 2 have 1 − 2 + 1.5 = 0.5, anchors 0 and 3
  # 1 − 3 + 1.5 < 0 → mean 0.25.
  loss = hard_mining_triplet(features, jnp.array([0, 0, 1, 1]), margin=1.5)
  assert float(loss) == pytest.approx(0.25, rel=1e-5)


def test_hard_mining_without_negatives_contributes_zero():
  loss = hard_mining_triplet(jnp.array([[0.0], [1.0]]), jnp.array([0, 0]))
  assert float(loss) == 0.0


# ------------------------------------------------------------------- ADP


def test_adp_clamps_the_squared_gap_at_88():
  # Anchor 0: positive 20 away, negative 1 away → violated, (20 − 1)² ≫ 88.
  features = jnp.array([[0.0], [1.0], [20.0]])
  labels = jnp.array([0, 1, 0])
  f, y = np.asarray(features, np.float64), np.asarray(labels)
  ap, an = np_weighted_distances(f, y)
  assert (ap[0] - an[0]) ** 2 > 88 and ap[0] > an[0]
  loss = adaptive_weighted_triplet(features, labels)
  assert float(loss) == pytest.approx(np_adp(f, y), rel=1e-5)
  # Row 0 contributes softplus(88) = 88 (to float precision), so mean ≥ 88/3.
  assert float(loss) > 88 / 3


def test_adp_satisfied_pair_hand_computed():
  # Same geometry as the WRT two-sample case: D⁺ ≈ 1e-6 < D⁻ ≈ 4.99926,
  # t = +1, s = (D⁺ − D⁻)², loss = log(1 + e^{−s}).
  positive = 1e-6 / (1 + 1e-6)
  negative = 5 * math.exp(-5) / (math.exp(-5) + 1e-6)
  expected = math.log1p(math.exp(-((positive - negative) ** 2)))
  loss = adaptive_weighted_triplet(jnp.array([[0.0, 0.0], [3.0, 4.0]]), jnp.array([0, 1]))
  assert float(loss) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize(
    'alpha, gamma, square', [(1.0, 1.0, True), (2.0, 0.5, True), (0.5, 2.0, False)]
)
def test_adp_matches_numpy_transcription(alpha, gamma, square):
  f, y = random_batch(3)
  loss = adaptive_weighted_triplet(
      jnp.asarray(f, jnp.float32), jnp.asarray(y), alpha=alpha, gamma=gamma, square=square
  )
  assert float(loss) == pytest.approx(np_adp(f, y, alpha, gamma, square), rel=1e-4)


def test_adp_unsquared_equals_wrt_at_unit_parameters():
  f, y = random_batch(4)
  f, y = jnp.asarray(f, jnp.float32), jnp.asarray(y)
  assert float(adaptive_weighted_triplet(f, y, square=False)) == pytest.approx(
      float(weighted_regularized_triplet(f, y)), rel=1e-6
  )


# ----------------------------------------------------------------- gradients


@pytest.mark.parametrize(
    'loss_fn, expected_correct',
    [(weighted_regularized_triplet, 1), (hard_mining_triplet, 4), (adaptive_weighted_triplet, 1)],
)
def test_gradients_finite_with_duplicate_features_and_far_negatives(loss_fn, expected_correct):
  # Identical features (d clamped), a far negative (weights underflow), a
  # clamped ADP row.
  features = jnp.array([[0.0, 0.0], [0.0, 0.0], [30.0, 0.0], [1.0, 1.0]])
  labels = jnp.array([0, 0, 1, 0])
  value_and_grad = jax.jit(
      jax.value_and_grad(lambda f, y: loss_fn(f, y, return_correct=True), has_aux=True)
  )
  (loss_value, correct), grad = value_and_grad(features, labels)
  assert np.isfinite(loss_value) and np.all(np.isfinite(grad))
  # Every positive is closer than every negative, so hard mining counts all 4
  # anchors as satisfied. With the weighted losses' quirk the negative 30 away
  # gets a weight ≈ e⁻³⁰/1e-6, so D⁻ ≈ 3e-6 < D⁺ for anchors 0, 1 and 3; only
  # anchor 2 (D⁺ = 1e-6 from its self pair) counts.
  assert int(correct) == expected_correct
