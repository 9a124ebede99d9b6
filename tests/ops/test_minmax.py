"""Tests for the one-pass adversarial-game gradients."""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vireid_jax.ops import adversarial_scores, lsgan_loss, minmax_value_and_grad




# --- Zero-sum games -----------------------------------------------------------


@jax.jit
def _domain_game_loss(discriminator, extractor, inputs, domains):
  """Logistic domain loss: the discriminator minimises, the extractor maximises."""
  features = jnp.tanh(inputs @ extractor)  # [B, 2]
  logits = features @ discriminator[:2] + discriminator[2]
  return optax.sigmoid_binary_cross_entropy(logits, domains).mean()


def test_minmax_gradients_match_finite_differences_of_each_player(
    x64, central_difference_gradient):
  rng = np.random.default_rng(0)
  discriminator, extractor = rng.normal(size=3), rng.normal(size=(3, 2))
  inputs = rng.normal(size=(8, 3))
  domains = (np.arange(8) % 2).astype(np.float64)
  grad_fn = jax.jit(minmax_value_and_grad(
      lambda d, e: (_domain_game_loss(d, e, inputs, domains), {"aux": e[0]}),
      has_aux=True))
  (loss, aux), (discriminator_grad, extractor_grad) = grad_fn(
      discriminator, extractor, maximizer_scale=0.7)
  np.testing.assert_allclose(
      loss, _domain_game_loss(discriminator, extractor, inputs, domains))
  np.testing.assert_allclose(aux["aux"], extractor[0])
  np.testing.assert_allclose(
      discriminator_grad,
      central_difference_gradient(
          lambda d: _domain_game_loss(d, extractor, inputs, domains),
          discriminator), rtol=1e-7, atol=1e-9)
  np.testing.assert_allclose(
      extractor_grad,
      -0.7 * central_difference_gradient(
          lambda e: _domain_game_loss(discriminator, e, inputs, domains),
          extractor), rtol=1e-7, atol=1e-9)


def _explicit_alternating_updates(params_min, params_max, loss, step_size,
                                  num_steps):
  """Textbook alternating gradient descent-ascent with two separate passes."""
  trajectory = []
  grad_min, grad_max = jax.jit(jax.grad(loss, 0)), jax.jit(jax.grad(loss, 1))
  for _ in range(num_steps):
    params_min = params_min - step_size * grad_min(params_min, params_max)
    params_max = params_max + step_size * grad_max(params_min, params_max)
    trajectory.append((params_min, params_max))
  return trajectory


def _saddle_loss(x, y):
  """Strongly convex in x, strongly concave in y; unique saddle at 0."""
  coupling = jnp.array([[1.0, 2.0], [-1.0, 0.5]])
  return 0.5 * jnp.sum(x ** 2) + x @ coupling @ y - 0.3 * jnp.sum(y ** 2)


def test_minmax_reproduces_explicit_alternating_updates(x64):
  grad_fn = jax.jit(minmax_value_and_grad(_saddle_loss))
  x, y = np.array([1.0, -2.0]), np.array([0.5, 1.5])
  expected = _explicit_alternating_updates(x, y, _saddle_loss, 0.1, 20)
  for expected_x, expected_y in expected:
    # Alternating: the minimiser moves first; the maximiser then responds to
    # the updated minimiser. Each half-step takes its player's gradient from a
    # single pass.
    x = x - 0.1 * grad_fn(x, y)[1][0]
    y = y - 0.1 * grad_fn(x, y)[1][1]
    np.testing.assert_allclose(x, expected_x, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(y, expected_y, rtol=1e-12, atol=1e-14)


def test_simultaneous_descent_ascent_finds_the_saddle_point():
  grad_fn = minmax_value_and_grad(_saddle_loss)
  descend_both = jax.grad(_saddle_loss, argnums=(0, 1))

  @jax.jit
  def run(start):
    def step(_, state):
      (x, y), (x_plain, y_plain) = state
      _, (x_grad, y_grad) = grad_fn(x, y)
      # Control: descending on both players (no reversal) is not the game.
      x_plain_grad, y_plain_grad = descend_both(x_plain, y_plain)
      return ((x - 0.05 * x_grad, y - 0.05 * y_grad),
              (x_plain - 0.05 * x_plain_grad, y_plain - 0.05 * y_plain_grad))
    return jax.lax.fori_loop(0, 400, step, ((start, start), (start, start)))

  (x, y), (x_plain, y_plain) = run(jnp.array([1.0, -1.0]))
  assert np.max(np.abs(np.concatenate([x, y]))) < 1e-3
  assert np.max(np.abs(np.concatenate([x_plain, y_plain]))) > 1.0


# --- Non-zero-sum games (AlignGAN's LSGAN) -------------------------------------


def _generator(params, noise):
  return jnp.tanh(noise @ params["w"]) * params["gain"] + params["b"]  # [B, 2]


def _discriminator(params, samples, condition):
  hidden = jax.nn.leaky_relu(samples @ params["w1"] + condition @ params["c"],
                             0.2)
  return hidden @ params["w2"]  # [B]


def _gan_setup(dtype=np.float32):
  rng = np.random.default_rng(4)
  cast = lambda a: jnp.asarray(a, dtype)
  generator = {"w": cast(rng.normal(size=(3, 2))), "gain": cast(1.0),
               "b": cast(np.zeros(2))}
  discriminator = {"w1": cast(rng.normal(size=(2, 8)) / 2),
                   "c": cast(rng.normal(size=(1, 8)) / 2),
                   "w2": cast(rng.normal(size=(8,)) / 3)}
  noise = cast(rng.normal(size=(16, 3)))
  real = cast(rng.normal(size=(16, 2)) * 0.5 + np.array([2.0, -1.0]))
  condition = cast(rng.normal(size=(16, 1)))
  return generator, discriminator, noise, real, condition


def _generator_loss(generator, discriminator, noise, condition):
  """AlignGAN-style: the generator pulls fake scores to 1 (D frozen)."""
  fake = _generator(generator, noise)
  return lsgan_loss(_discriminator(discriminator, fake, condition), 1.0)


def _discriminator_loss(discriminator, fake, real, condition):
  """½[MSE(D(real), 1) + MSE(D(fake), 0)] with the fakes held constant."""
  return 0.5 * (lsgan_loss(_discriminator(discriminator, real, condition), 1.0)
                + lsgan_loss(_discriminator(discriminator, fake, condition),
                             0.0))


def _one_pass_losses(params, noise, real, condition):
  """Both players' losses in one graph, routed by adversarial_scores."""
  fake = _generator(params["generator"], noise)
  scores_for_discriminator, scores_for_generator = adversarial_scores(
      _discriminator, params["discriminator"], fake, condition)
  generator_loss = lsgan_loss(scores_for_generator, 1.0)
  discriminator_loss = 0.5 * (
      lsgan_loss(_discriminator(params["discriminator"], real, condition), 1.0)
      + lsgan_loss(scores_for_discriminator, 0.0))
  return generator_loss + discriminator_loss


@jax.jit
def _routing_probe(discriminator, fake, condition):
  """Scores and the gradients that each routed output sends back."""
  scores = adversarial_scores(_discriminator, discriminator, fake, condition)

  def grads_through(which):
    return jax.grad(
        lambda p, x, c: jnp.sum(adversarial_scores(
            _discriminator, p, x, c)[which] ** 2),
        argnums=(0, 1, 2))(discriminator, fake, condition)

  return (scores, _discriminator(discriminator, fake, condition),
          grads_through(0), grads_through(1))


def test_adversarial_scores_values_and_routing():
  generator, discriminator, noise, _, condition = _gan_setup()
  fake = jax.jit(_generator)(generator, noise)
  (for_discriminator, for_generator), direct, d_only, g_only = (
      jax.device_get(_routing_probe(discriminator, fake, condition)))
  np.testing.assert_array_equal(for_discriminator, for_generator)
  np.testing.assert_allclose(for_discriminator, direct, rtol=1e-6)
  # Discriminator-facing scores: gradient into D's parameters only.
  assert all(np.all(g != 0) for g in jax.tree.leaves(d_only[0]))
  assert not np.any(d_only[1]) and not np.any(d_only[2])
  # Generator-facing scores: gradient into the fakes only; the condition is a
  # constant although D depends on it.
  assert not any(np.any(g) for g in jax.tree.leaves(g_only[0]))
  assert np.all(g_only[1] != 0) and not np.any(g_only[2])


def test_adversarial_scores_gradients_match_finite_differences(
    x64, central_difference_gradient):
  generator, discriminator, noise, real, condition = _gan_setup(np.float64)
  params = {"generator": generator, "discriminator": discriminator}
  grads = jax.jit(jax.grad(_one_pass_losses))(params, noise, real, condition)
  fake = jax.jit(_generator)(generator, noise)
  # Each player's gradient is the derivative of its own loss alone.
  flat_d, unflatten_d = jax.flatten_util.ravel_pytree(discriminator)
  numerical_d = central_difference_gradient(
      jax.jit(lambda d: _discriminator_loss(unflatten_d(d), fake, real,
                                            condition)), flat_d)
  flat_g, unflatten_g = jax.flatten_util.ravel_pytree(generator)
  numerical_g = central_difference_gradient(
      jax.jit(lambda g: _generator_loss(unflatten_g(g), discriminator, noise,
                                        condition)), flat_g)
  np.testing.assert_allclose(
      jax.flatten_util.ravel_pytree(grads["discriminator"])[0], numerical_d,
      rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(
      jax.flatten_util.ravel_pytree(grads["generator"])[0], numerical_g,
      rtol=1e-6, atol=1e-9)


def _adam_update(optimizer, grads, state, params):
  updates, state = optimizer.update(grads, state, params)
  return optax.apply_updates(params, updates), state


def test_one_pass_training_matches_explicit_aligngan_order_updates(x64):
  """AlignGAN §4.3 order: G step with D frozen, then D step on pre-update fakes."""
  generator, discriminator, noise, real, condition = _gan_setup(np.float64)
  # One Adam per network, as in the reference (β = (0.5, 0.999)).
  optimizer = optax.adam(2e-2, b1=0.5, b2=0.999)

  def explicit_step(generator, discriminator, g_state, d_state):
    fake = jax.lax.stop_gradient(_generator(generator, noise))
    g_grads = jax.grad(_generator_loss)(generator, discriminator, noise,
                                        condition)
    new_generator, g_state = _adam_update(optimizer, g_grads, g_state,
                                          generator)
    d_grads = jax.grad(_discriminator_loss)(discriminator, fake, real,
                                            condition)
    new_discriminator, d_state = _adam_update(optimizer, d_grads, d_state,
                                              discriminator)
    return new_generator, new_discriminator, g_state, d_state

  def one_pass_step(generator, discriminator, g_state, d_state):
    grads = jax.grad(_one_pass_losses)(
        {"generator": generator, "discriminator": discriminator}, noise, real,
        condition)
    generator, g_state = _adam_update(optimizer, grads["generator"], g_state,
                                      generator)
    discriminator, d_state = _adam_update(optimizer, grads["discriminator"],
                                          d_state, discriminator)
    return generator, discriminator, g_state, d_state

  @jax.jit
  def train_both_ways(initial_state):
    run = lambda step: jax.lax.fori_loop(
        0, 100, lambda _, state: step(*state), initial_state)
    return run(explicit_step), run(one_pass_step)

  explicit, one_pass = train_both_ways(
      (generator, discriminator, optimizer.init(generator),
       optimizer.init(discriminator)))
  for got, expected in zip(jax.tree.leaves(one_pass[:2]),
                           jax.tree.leaves(explicit[:2])):
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-11)
  # The game did move the generator towards the real data.
  fake_mean = jax.jit(lambda g: jnp.mean(_generator(g, noise), axis=0))
  real_mean = np.mean(np.asarray(real), axis=0)
  assert (np.linalg.norm(fake_mean(one_pass[0]) - real_mean)
          < 0.5 * np.linalg.norm(fake_mean(generator) - real_mean))


def test_adversarial_scores_under_vmap_and_with_pytree_inputs():
  _, discriminator, noise, _, condition = _gan_setup()

  def pair_discriminator(params, pair, condition):
    first, second = pair
    return _discriminator(params, first + second, condition)

  pair = (noise[:, :2], noise[:, 1:])

  def per_example(first, second, condition):
    scores_d, scores_g = adversarial_scores(
        pair_discriminator, discriminator, (first[None], second[None]),
        condition[None])
    return scores_d[0] + 2.0 * scores_g[0]

  batched = jax.jit(jax.vmap(jax.grad(per_example, argnums=(0, 1))))(
      *pair, condition)
  expected = jax.jit(jax.grad(
      lambda p: 2.0 * jnp.sum(pair_discriminator(discriminator, p, condition))
  ))(pair)
  for got, want in zip(batched, expected):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("target", [0.0, 1.0])
def test_lsgan_loss_is_mean_squared_error_to_a_constant(target):
  scores = np.random.default_rng(5).normal(size=(4, 4, 4, 1))
  np.testing.assert_allclose(lsgan_loss(jnp.asarray(scores), target),
                             np.mean((scores - target) ** 2), rtol=1e-6)
