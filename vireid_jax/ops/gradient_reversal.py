"""Gradient reversal layer (GRL) and the DANN adaptation-factor schedule.

The GRL of Ganin & Lempitsky (ICML 2015, https://arxiv.org/abs/1409.7495) is
the identity in the forward pass and multiplies the incoming gradient by
``-scale`` in the backward pass. Placed between a feature extractor and a domain
discriminator, one backward pass of ``task_loss + domain_loss`` then trains the
discriminator to separate the domains and the feature extractor to confuse it.

DAN (spec ``dan.md`` §4) uses it with ``scale = dann_lambda(n / 10_000)``, where
``n`` counts the discriminator's training-mode forward calls (incremented before
the call). That counter is host-side state: compute the factor outside the
jitted step and pass it in as an array, so that a changing factor does not
trigger recompilation.
"""

from typing import Any

import jax
import jax.numpy as jnp

ArrayTree = Any


@jax.custom_vjp
def _reverse_gradient(tree: ArrayTree, scale: jax.Array) -> ArrayTree:
  del scale
  return tree


def _reverse_gradient_fwd(tree, scale):
  return tree, scale


def _reverse_gradient_bwd(scale, cotangents):
  def reverse(g):
    if g.dtype == jax.dtypes.float0:  # Integer leaves have no gradient.
      return g
    # Cast the factor to the cotangent's dtype so that a float32 factor does
    # not promote bfloat16 gradients.
    return (-scale).astype(g.dtype) * g

  # The forward pass does not depend on `scale`, so its true cotangent is
  # zero; returning it keeps `scale` an ordinary (traceable) argument.
  return jax.tree.map(reverse, cotangents), jnp.zeros_like(scale)


_reverse_gradient.defvjp(_reverse_gradient_fwd, _reverse_gradient_bwd)


def gradient_reversal(x: ArrayTree, scale: jax.typing.ArrayLike = 1.0) -> ArrayTree:
  """Identity in the forward pass; multiplies gradients by ``-scale`` backwards.

  Works under ``jit``, ``vmap`` and with sharded inputs (it is elementwise, so
  the cotangent keeps the sharding of the primal).

  Args:
    x: an array, or any pytree of arrays, of any shape (integer leaves pass
      through and get no gradient, as usual).
    scale: the adaptation factor λ, a scalar (Python number or 0-d array; may be
      traced). It is not differentiated: its cotangent is zero.

  Returns:
    ``x`` unchanged. For a downstream loss L, ``jax.grad`` of
    ``L(gradient_reversal(x, scale))`` w.r.t. ``x`` is ``-scale * ∇L(x)``.
  """
  scale = jnp.asarray(scale)
  if scale.ndim != 0:
    raise ValueError(f"`scale` must be a scalar, got shape {scale.shape}.")
  if not jnp.issubdtype(scale.dtype, jnp.floating):
    scale = scale.astype(jnp.float32)
  return _reverse_gradient(x, scale)


def dann_lambda(progress: jax.typing.ArrayLike,
                gamma: float = 10.0) -> jax.Array:
  """DANN schedule λ(p) = 2 / (1 + exp(−γ p)) − 1 for the GRL factor.

  λ rises from 0 at p = 0 towards 1, which keeps the noisy domain signal away
  from the feature extractor early in training.

  Args:
    progress: training progress p (scalar or array), nominally in [0, 1]. DAN
      passes p = n / 10_000 with n the discriminator's call count, which runs
      past 1 (λ then saturates at 1).
    gamma: steepness γ (10 in DANN and DAN).

  Returns:
    λ(p), same shape as ``progress``, floating point.
  """
  progress = jnp.asarray(progress)
  if not jnp.issubdtype(progress.dtype, jnp.floating):
    progress = progress.astype(jnp.float32)
  # 2 / (1 + exp(−x)) − 1 = tanh(x / 2); tanh does not overflow for p ≪ 0.
  return jnp.tanh(0.5 * gamma * progress)
