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


def softened_kl_divergence(logits: jax.Array, target_logits: jax.Array,
                           temperature: float = 3.0) -> jax.Array:
  """CAJ's ``KLDivLoss``: distillation of temperature-softened class distributions (spec §5.6).

  ``T² · mean_rows Σ_c q_c (log q_c − log_softmax(logits / T)_c)`` with
  ``q = stop_gradient(softmax(target_logits / T) + 1e-7)``: the reference adds 1e-7 to the
  target probabilities (so q sums to 1 + C·1e-7) and detaches them; ``nn.KLDivLoss(
  reduction='sum')`` divided by the rows is the sum over classes averaged over rows.

  Args:
    logits: ``[N, C]``, the student (CAJ: view A's logits).
    target_logits: ``[N, C]``, the target (CAJ: the infrared logits of the same slots).
    temperature: T.

  Returns:
    Scalar float32.

  Raises:
    ValueError: the two logit arrays are not [N, C] of one shape.
  """
  if logits.ndim != 2 or logits.shape != target_logits.shape:
    raise ValueError(f"softened_kl_divergence needs logits and target_logits of one [N, C] "
                     f"shape, got {logits.shape} and {target_logits.shape}.")
  log_probabilities = jax.nn.log_softmax(logits.astype(jnp.float32) / temperature, axis=-1)
  target = jax.lax.stop_gradient(
      jax.nn.softmax(target_logits.astype(jnp.float32) / temperature, axis=-1) + 1e-7)
  per_row = jnp.sum(target * (jnp.log(target) - log_probabilities), axis=-1)
  return temperature ** 2 * jnp.mean(per_row)
