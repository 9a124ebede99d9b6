"""Identity (classification) loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy, no label smoothing (spec §5.1).

  Args:
    logits: ``[N, C]`` (computed in float32 whatever their dtype).
    labels: integer identity labels ``[N]`` in ``[0, C)``.

  Returns:
    Scalar loss.
  """
  losses = optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), labels
  )
  return jnp.mean(losses)
