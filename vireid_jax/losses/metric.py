"""Metric-learning (triplet) losses of AGW and CAJ (spec §5.2–5.5).

All functions take the raw (pre-BN, un-normalised) batch features
``[N, D]`` and integer labels ``[N]`` and return a scalar. They reproduce the
reference's quirks on purpose (see the individual docstrings); "fixing" any
of them changes training.

Shared notation: d = :func:`pairwise_euclidean` of the features,
P_ij = 1[y_i = y_j] (the self pair j = i counts as a positive),
N_ij = 1[y_i ≠ y_j]; D⁺_i / D⁻_i are the (weighted) positive / negative
distances of anchor i.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def pairwise_euclidean(features: jax.Array) -> jax.Array:
  """Euclidean distance matrix via the expansion (spec §5.2).

  ``d_ij = sqrt(max(|f_i|² + |f_j|² − 2 f_i·f_j, 1e-12))``: the clamp keeps
  the square root differentiable, so the diagonal is ≈ 1e-6, not 0, exactly
  as in the reference. The Gram matrix is computed at HIGHEST precision
  because the expansion cancels catastrophically, and the TPU / TF32 default
  for float32 matmuls would leave errors of the order of the distances.

  Args:
    features: ``[N, D]``.

  Returns:
    ``[N, N]`` float32 distances.
  """
  features = features.astype(jnp.float32)
  squared_norms = jnp.sum(features * features, axis=1)
  gram = jnp.matmul(features, features.T, precision=jax.lax.Precision.HIGHEST)
  squared = squared_norms[:, None] + squared_norms[None, :] - 2.0 * gram
  return jnp.sqrt(jnp.maximum(squared, 1e-12))


def _label_masks(labels: jax.Array, dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
  """(P, N) as float masks ``[N, N]``; P includes the diagonal."""
  same = labels[:, None] == labels[None, :]
  return same.astype(dtype), (~same).astype(dtype)


def _softmax_weights(values: jax.Array, mask: jax.Array) -> jax.Array:
  """The reference's masked softmax over rows, quirks included.

  ``w_ij = exp(v_ij − m_i)·mask_ij / (Σ_k exp(v_ik − m_i)·mask_ik + 1e-6)`` with
  ``m_i = max_j (v_ij·mask_ij)``. The stabiliser is the max of the *masked
  product*, so for the negative branch (v = −d·N, all real entries < 0 and
  the masked-out ones exactly 0) it is 0, not the row's largest real entry;
  with the +1e-6 the weights then sum to less than one when every negative is
  far away. Nothing is detached, the max included.
  """
  row_max = jnp.max(values * mask, axis=1, keepdims=True)
  exp_values = jnp.exp(values - row_max) * mask
  return exp_values / (jnp.sum(exp_values, axis=1, keepdims=True) + 1e-6)


def _weighted_positive_negative(
    distances: jax.Array, labels: jax.Array, alpha: float = 1.0
) -> tuple[jax.Array, jax.Array]:
  """(D⁺ [N], D⁻ [N]) of WRT / ADP, weights computed from α·d."""
  positive, negative = _label_masks(labels, distances.dtype)
  positive_distances = distances * positive
  negative_distances = distances * negative
  positive_weights = _softmax_weights(positive_distances * alpha, positive)
  negative_weights = _softmax_weights(-negative_distances * alpha, negative)
  furthest_positive = jnp.sum(positive_distances * positive_weights, axis=1)
  closest_negative = jnp.sum(negative_distances * negative_weights, axis=1)
  return furthest_positive, closest_negative


def _count_correct(furthest_positive, closest_negative) -> jax.Array:
  """Number of anchors with D⁻ ≥ D⁺ (the reference's ``correct``)."""
  return jnp.sum(closest_negative >= furthest_positive)


def weighted_regularized_triplet(
    features: jax.Array, labels: jax.Array, *, return_correct: bool = False
):
  """AGW's weighted regularised triplet loss, soft margin (spec §5.3).

  ``L = mean_i softplus(−(D⁻_i − D⁺_i))`` where D⁺_i is the softmax(d)-weighted
  mean of the positive distances (self pair included) and D⁻_i the
  softmax(−d)-weighted mean of the negative ones, with the reference's
  stabiliser-0 / +1e-6 quirk in the negative weights (see
  :func:`_softmax_weights`). Gradients flow through the weights.

  Args:
    features: ``[N, D]`` raw features (not normalised).
    labels: ``[N]`` integer identities.
    return_correct: also return the number of anchors whose D⁻ ≥ D⁺.

  Returns:
    Scalar loss, or ``(loss, correct)`` with ``return_correct``.
  """
  distances = pairwise_euclidean(features)
  furthest_positive, closest_negative = _weighted_positive_negative(distances, labels)
  loss = jnp.mean(jax.nn.softplus(furthest_positive - closest_negative))
  if return_correct:
    return loss, _count_correct(furthest_positive, closest_negative)
  return loss


def hard_mining_triplet(
    features: jax.Array,
    labels: jax.Array,
    margin: float = 0.3,
    *,
    return_correct: bool = False,
):
  """Batch-hard triplet loss, the 'base' method's ``OriTripletLoss`` (spec §5.4).

  ``L = mean_i max(0, max_{j∈P_i} d_ij − min_{j∈N_i} d_ij + margin)``; the
  self pair is a positive (d_ii ≈ 1e-6). A row without negatives (the
  reference would crash) gets D⁻ = +inf and contributes 0.

  Args:
    features: ``[N, D]`` raw features.
    labels: ``[N]`` integer identities.
    margin: ranking margin.
    return_correct: also return the number of anchors whose D⁻ ≥ D⁺.

  Returns:
    Scalar loss, or ``(loss, correct)`` with ``return_correct``.
  """
  distances = pairwise_euclidean(features)
  same = labels[:, None] == labels[None, :]
  hardest_positive = jnp.max(jnp.where(same, distances, -jnp.inf), axis=1)
  hardest_negative = jnp.min(jnp.where(same, jnp.inf, distances), axis=1)
  loss = jnp.mean(jax.nn.relu(hardest_positive - hardest_negative + margin))
  if return_correct:
    return loss, _count_correct(hardest_positive, hardest_negative)
  return loss


def adaptive_weighted_triplet(
    features: jax.Array,
    labels: jax.Array,
    alpha: float = 1.0,
    gamma: float = 1.0,
    square: bool = True,
    *,
    return_correct: bool = False,
):
  """CAJ's ``TripletLoss_ADP`` (spec §5.5).

  D⁺/D⁻ as in WRT but with the weights computed from α·d (the weighted sums
  use the unscaled d).

  * ``square=True`` (CAJ's setting): ``s_i = min(γ (D⁺_i − D⁻_i)², 88)``,
    ``t_i = −1 if D⁺_i > D⁻_i else +1`` (ties → +1, no gradient through t),
    ``L = mean_i softplus(−t_i s_i)``. The clamp at 88 (where exp overflows
    in float32 in the reference) also zeroes the gradient of badly violated
    anchors; kept as is.
  * ``square=False``: ``L = mean_i softplus(−γ (D⁻_i − D⁺_i))`` (WRT when
    α = γ = 1).

  Args:
    features: ``[N, D]`` raw features.
    labels: ``[N]`` integer identities.
    alpha: scale of the distances inside the weight softmaxes.
    gamma: scale of the margin term.
    square: use the squared variant.
    return_correct: also return the number of anchors whose D⁻ ≥ D⁺.

  Returns:
    Scalar loss, or ``(loss, correct)`` with ``return_correct``.
  """
  distances = pairwise_euclidean(features)
  furthest_positive, closest_negative = _weighted_positive_negative(
      distances, labels, alpha
  )
  if square:
    squared_gap = jnp.minimum(gamma * (furthest_positive - closest_negative) ** 2, 88.0)
    sign = jax.lax.stop_gradient(
        jnp.where(furthest_positive > closest_negative, -1.0, 1.0)
    )
    loss = jnp.mean(jax.nn.softplus(-sign * squared_gap))
  else:
    loss = jnp.mean(jax.nn.softplus(-gamma * (closest_negative - furthest_positive)))
  if return_correct:
    return loss, _count_correct(furthest_positive, closest_negative)
  return loss
