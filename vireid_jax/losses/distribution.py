"""MMN's Distribution Consistency Loss (spec mmn.md §4.3)."""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp

# PyTorch BatchNorm1d's epsilon.
_BATCH_NORM_EPSILON = 1e-5


def _row_normalize(x: jax.Array) -> jax.Array:
  """``x / max(‖x‖, 1e-12)`` per row: torch's ``F.normalize``."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _batch_norm(x: jax.Array, scale: jax.Array, bias: jax.Array) -> jax.Array:
  """BatchNorm1d in training mode: the batch's mean and biased variance."""
  mean = jnp.mean(x, axis=0)
  variance = jnp.mean(jnp.square(x - mean), axis=0)
  return (x - mean) * jax.lax.rsqrt(variance + _BATCH_NORM_EPSILON) * scale + bias


def _distance(a: jax.Array, b: jax.Array) -> jax.Array:
  """Row-wise ‖a − b‖ with a zero (not NaN) gradient where the rows coincide, as torch's."""
  squared = jnp.sum(jnp.square(a - b), axis=1)
  positive = squared > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def distribution_consistency_loss(features: jax.Array, projection: Mapping[str, Any],
                                  num_groups: int = 2) -> jax.Array:
  """MMN's DCL (the reference's ``DCLoss``): distances between index-paired projected rows.

  u = features / max(‖features‖, 1e-12) per row; v = BN2(Linear2(ReLU(BN1(u · W1)))) with both
  BatchNorms on the batch statistics (biased variance, ε 1e-5) and their own scale and bias;
  z = row-normalised v. The rows are `num_groups` equal blocks (MMN: [M_from_RGB; M_from_IR],
  whose row i share an identity by the sampler's pairing); the loss sums, over block pairs
  i < j, the mean over rows r of ‖z_i[r] − z_j[r]‖.

  Args:
    features: [N, D], N divisible by `num_groups` (MMN: one stripe's pre-BN features).
    projection: the projection head, {"linear1": {"kernel": [D, H]}, "bn1": {"scale": [H],
      "bias": [H]}, "linear2": {"kernel": [H, H], "bias": [H]}, "bn2": {"scale", "bias"}}
      (kernels [in, out]). MMN never trains it; gradients reach only `features`.
    num_groups: the blocks (the reference's `num`, 2).

  Returns:
    Scalar float32.

  Raises:
    ValueError: fewer than two rows (BatchNorm needs two) or rows not divisible by
      `num_groups`, naming the shape.
  """
  rows = features.shape[0]
  if features.ndim != 2 or rows < 2 or rows % num_groups:
    raise ValueError(f"distribution_consistency_loss needs [N, D] features with N >= 2 and N "
                     f"divisible by num_groups={num_groups}, got shape {features.shape}.")
  x = _row_normalize(features.astype(jnp.float32))
  x = x @ projection["linear1"]["kernel"]
  x = jax.nn.relu(_batch_norm(x, projection["bn1"]["scale"], projection["bn1"]["bias"]))
  x = x @ projection["linear2"]["kernel"] + projection["linear2"]["bias"]
  x = _row_normalize(_batch_norm(x, projection["bn2"]["scale"], projection["bn2"]["bias"]))
  blocks = jnp.split(x, num_groups)
  loss = jnp.zeros((), jnp.float32)
  for i in range(num_groups):
    for j in range(i + 1, num_groups):
      loss = loss + jnp.mean(_distance(blocks[i], blocks[j]))
  return loss


def init_projection(key: jax.Array, in_features: int = 2048, hidden: int = 256) -> dict:
  """The projection head of `distribution_consistency_loss` at PyTorch's default init (Linear
  weights and bias U(±1/√fan_in), BatchNorm γ = 1, β = 0), from `key`."""
  first, second, third = jax.random.split(key, 3)
  bound1, bound2 = in_features ** -0.5, hidden ** -0.5
  uniform = lambda k, shape, bound: jax.random.uniform(k, shape, jnp.float32, -bound, bound)
  # Separate arrays for each BatchNorm: one buffer twice in a state cannot be donated.
  ones = lambda: jnp.ones((hidden,), jnp.float32)
  zeros = lambda: jnp.zeros((hidden,), jnp.float32)
  return {"linear1": {"kernel": uniform(first, (in_features, hidden), bound1)},
          "bn1": {"scale": ones(), "bias": zeros()},
          "linear2": {"kernel": uniform(second, (hidden, hidden), bound2),
                      "bias": uniform(third, (hidden,), bound2)},
          "bn2": {"scale": ones(), "bias": zeros()}}
