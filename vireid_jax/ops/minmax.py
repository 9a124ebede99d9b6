"""Gradients for two-player adversarial games from a single backward pass.

Two situations arise in the mission's methods.

**Zero-sum games** (DANN / DAN domain-adversarial alignment, spec ``dan.md``
§4): one loss L(θ_min, θ_max) is minimised by one player (the domain
discriminator) and maximised by the other (the feature extractor). Reversing
the gradient on the maximiser's side (a gradient reversal layer, GRL) makes
one ``jax.grad`` return descent directions for both: ``∂L/∂θ_min`` and
``-∂L/∂θ_max``. :func:`minmax_value_and_grad` does this; inside a larger loss
(task loss + adversarial loss) use :func:`~vireid_jax.ops.gradient_reversal`
on the features fed to the discriminator instead, as DAN does.

**Non-zero-sum games** (AlignGAN, spec ``aligngan.md`` §3.5–§3.7, §4.3): the
players minimise *different* losses of the same discriminator scores. AlignGAN
uses least-squares (LSGAN) targets: the discriminator pulls fake scores to 0
(``½ MSE(D(fake), 0)``), the generator pulls them to 1 (``MSE(D(fake), 1)``;
like the non-saturating ``−log D(G(z))`` of standard GANs, this is not
``−L_D``). At each score the two players then need different, score-dependent
cotangents (proportional to ``D(fake)`` and to ``D(fake) − 1``), which no
single reversal factor relates, and a vector-Jacobian product through D uses
one cotangent for both D's parameters and D's input. So the backward pass
through D must run once per player. :func:`adversarial_scores` runs D's
forward pass on the fakes *once* and routes two cotangents through the saved
pullback: the discriminator-facing scores send gradient only into D's
parameters, the generator-facing scores only into the fakes.

AlignGAN's pixel step updates the generators with the discriminators frozen,
then each discriminator on the fakes computed before the generator update
(§4.3), so all gradients are taken at the same parameters: the update is
simultaneous, and one ``jax.grad`` of ``L_G + L_D`` with this routing gives
each network exactly the gradient of the reference's separate passes
(validated in ``tests/ops``)::

    def pixel_losses(pixel_params, real_rgb, real_ir):
      fake_rgb = generator_i2r(pixel_params["g_i2r"], real_ir)
      scores_d, scores_g = adversarial_scores(
          d_rgb_apply, pixel_params["d_rgb"], fake_rgb)
      generator_loss = 0.5 * lsgan_loss(scores_g, 1.0) + ...  # + D_ir, cycle...
      d_rgb_loss = 0.5 * (
          lsgan_loss(d_rgb_apply(pixel_params["d_rgb"], real_rgb), 1.0)
          + lsgan_loss(scores_d, 0.0))
      return generator_loss + d_rgb_loss + ...

    grads = jax.grad(pixel_losses)(pixel_params, real_rgb, real_ir)
    # grads["g_i2r"] = ∂L_G/∂θ_G with D frozen; grads["d_rgb"] = ∂L_D/∂θ_D with
    # the fakes frozen. Apply them with each network's own optimiser.

For the conditional D_ir, ``adversarial_scores(d_ir_apply, params["d_ir"], f_i,
M_i)`` serves both the generator term ``MSE(D_ir(f_i, sg(M_i)), 1)`` and the
discriminator's fake pair ``(f_i, M_i)``. Every *other* discriminator term
must not reach the generator: wrap its generator-dependent inputs in
``jax.lax.stop_gradient`` (e.g. ``M_f = E(f_i)`` in the pairs ``(i, M_f)`` and
``(f_i, M_f)``). Likewise the feature step's ``MSE(D_ir(i, M_f), 1)`` trains
the encoder only, so it takes ``stop_gradient`` of D_ir's parameters. Take the
gradient only w.r.t. the networks the step updates (the encoder is frozen in
the pixel step).
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from vireid_jax.ops.gradient_reversal import gradient_reversal

ArrayTree = Any


def minmax_value_and_grad(
    loss_fn: Callable[..., Any],
    has_aux: bool = False,
) -> Callable[..., tuple[Any, tuple[ArrayTree, ArrayTree]]]:
  """Value and descent directions for both players of a zero-sum game.

  ``loss_fn(minimizer_params, maximizer_params, *args)`` returns the scalar
  loss L (or ``(L, aux)`` if ``has_aux``) that the first player minimises and
  the second maximises, e.g. a domain-classification loss with the domain
  discriminator as minimiser and the feature extractor as maximiser.

  The returned function computes ``(∂L/∂θ_min, -scale · ∂L/∂θ_max)`` from one
  forward and one backward pass, by passing the maximiser's parameters
  through :func:`gradient_reversal`. Feeding both gradients to ordinary
  descent optimisers performs simultaneous gradient descent-ascent.

  Args:
    loss_fn: the game's loss, as above.
    has_aux: whether ``loss_fn`` returns ``(loss, aux)``.

  Returns:
    ``grad_fn(minimizer_params, maximizer_params, *args, maximizer_scale=1.0)``
    returning ``(value, (minimizer_grads, maximizer_grads))``, where ``value``
    is ``loss_fn``'s output (``(loss, aux)`` if ``has_aux``) and
    ``maximizer_scale`` is the reversal factor (DANN's λ; may be traced).
  """

  def reversed_loss(minimizer_params, maximizer_params, scale, *args):
    return loss_fn(minimizer_params,
                   gradient_reversal(maximizer_params, scale), *args)

  value_and_grads = jax.value_and_grad(
      reversed_loss, argnums=(0, 1), has_aux=has_aux)

  def grad_fn(minimizer_params, maximizer_params, *args, maximizer_scale=1.0):
    return value_and_grads(minimizer_params, maximizer_params,
                           maximizer_scale, *args)

  return grad_fn


def _zero_cotangent(x):
  dtype = jnp.result_type(x)
  if jnp.issubdtype(dtype, jnp.inexact):
    return jnp.zeros(jnp.shape(x), dtype)
  # Integer inputs and PRNG keys take float0 cotangents.
  return np.zeros(jnp.shape(x), dtype=jax.dtypes.float0)


def adversarial_scores(
    discriminator_fn: Callable[..., ArrayTree],
    discriminator_params: ArrayTree,
    fake_inputs: ArrayTree,
    *constant_args: Any,
) -> tuple[ArrayTree, ArrayTree]:
  """Discriminator scores on generated inputs, with gradients routed per player.

  Evaluates ``scores = discriminator_fn(discriminator_params, fake_inputs,
  *constant_args)`` once and returns it twice:

  * ``scores_for_discriminator``: gradients reach ``discriminator_params``
    only (the fakes act as ``stop_gradient(fake_inputs)``): use it in the
    discriminator's loss.
  * ``scores_for_generator``: gradients reach ``fake_inputs`` (hence the
    generator) only (the discriminator acts as frozen): use it in the
    generator's loss.

  This equals calling the discriminator twice, once as
  ``discriminator_fn(params, stop_gradient(fake))`` and once as
  ``discriminator_fn(stop_gradient(params), fake)``, but shares the forward
  pass (one D forward on the fakes instead of two). The backward pass runs
  twice through D, once per cotangent; see the module docstring for why a
  non-zero-sum loss such as LSGAN's needs that.

  Args:
    discriminator_fn: ``(params, inputs, *constant_args) -> scores``, pure and
      deterministic given its arguments. It must not close over values that
      are being differentiated (JAX raises an error); pass dropout keys and
      the like in ``constant_args``.
    discriminator_params: the discriminator's parameters (pytree).
    fake_inputs: the generated inputs (array or pytree), e.g. [B, H, W, C].
    *constant_args: further inputs treated as constants: no gradient flows
      into them (e.g. AlignGAN's conditioning feature map, which the
      generator loss takes under stop-gradient).

  Returns:
    ``(scores_for_discriminator, scores_for_generator)``, equal in value,
    each with the structure and shapes of ``discriminator_fn``'s output.
  """

  @jax.custom_vjp
  def routed(params, inputs, args):
    scores = discriminator_fn(params, inputs, *args)
    return scores, scores

  def routed_fwd(params, inputs, args):
    scores, pullback = jax.vjp(
        lambda p, x: discriminator_fn(p, x, *args), params, inputs)
    return (scores, scores), (pullback, args)

  def routed_bwd(residuals, cotangents):
    pullback, args = residuals
    discriminator_cotangent, generator_cotangent = cotangents
    # Each pullback call computes both parameter and input gradients; under
    # jit XLA drops the half that is discarded.
    params_grads, _ = pullback(discriminator_cotangent)
    _, inputs_grads = pullback(generator_cotangent)
    return params_grads, inputs_grads, jax.tree.map(_zero_cotangent, args)

  routed.defvjp(routed_fwd, routed_bwd)
  return routed(discriminator_params, fake_inputs, tuple(constant_args))


def lsgan_loss(scores: jax.Array, target: float) -> jax.Array:
  """Least-squares GAN loss: mean of ``(scores - target)²`` over all elements.

  PyTorch's ``MSELoss`` against a constant target tensor (AlignGAN,
  ``aligngan.md`` §3.1): ``target`` is 1 for "real" and 0 for "fake".

  Args:
    scores: discriminator outputs, any shape (e.g. [B, 4, 4, 1] patch scores).
    target: the constant target.

  Returns:
    The scalar loss.
  """
  return jnp.mean(jnp.square(scores - target))
