"""Tests for the gradient reversal layer and the DANN schedule."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from vireid_jax.ops import dann_lambda, gradient_reversal


@jax.jit
def _downstream_loss(x):
  """A smooth, non-linear scalar function of x [..., 3]."""
  return jnp.sum(jnp.sin(x) * x[..., ::-1]) + jnp.sum(x ** 3) / 7.0




def test_forward_is_identity_on_pytrees_under_jit():
  tree = {"a": jnp.arange(6.0).reshape(2, 3), "b": (jnp.ones(4, jnp.bfloat16),)}
  out = jax.jit(gradient_reversal)(tree, 0.7)
  assert jax.tree.structure(out) == jax.tree.structure(tree)
  for got, expected in zip(jax.tree.leaves(out), jax.tree.leaves(tree)):
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_integer_leaves_pass_through_without_gradient():
  tree = {"features": jnp.ones(3), "labels": jnp.arange(3)}
  grads = jax.jit(jax.grad(
      lambda t: jnp.sum(gradient_reversal(t, 2.0)["features"] ** 2),
      allow_int=True))(tree)
  np.testing.assert_array_equal(grads["features"], [-4.0, -4.0, -4.0])
  assert grads["labels"].dtype == jax.dtypes.float0


_reversed_gradient = jax.jit(jax.grad(
    lambda x, scale: _downstream_loss(gradient_reversal(x, scale))))


@pytest.mark.parametrize("scale", [0.0, 0.3, 1.0, 2.5])
def test_gradient_is_minus_scale_times_finite_differences(
    x64, scale, central_difference_gradient):
  x = np.random.default_rng(0).normal(size=(4, 3))
  reversed_gradient = _reversed_gradient(x, scale)
  numerical = central_difference_gradient(_downstream_loss, x)
  np.testing.assert_allclose(reversed_gradient, -scale * numerical,
                             rtol=1e-7, atol=1e-7)


def test_traced_scale_does_not_recompile_and_gets_zero_cotangent():
  traces = []

  @jax.jit
  def grads(x, scale):
    traces.append(None)
    return jax.grad(
        lambda x, s: _downstream_loss(gradient_reversal(x, s)),
        argnums=(0, 1))(x, scale)

  x = jnp.linspace(-1.0, 1.0, 6).reshape(2, 3)
  plain = jax.grad(_downstream_loss)(x)
  for scale in (0.1, 0.5, 0.9):
    x_grad, scale_grad = grads(x, jnp.float32(scale))
    np.testing.assert_allclose(x_grad, -scale * plain, rtol=1e-6)
    assert scale_grad == 0.0
  assert len(traces) == 1


def test_vmap_with_per_example_scales():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(5, 3)), jnp.float32)
  scales = jnp.linspace(0.0, 2.0, 5)
  per_example = jax.vmap(jax.grad(
      lambda x, s: _downstream_loss(gradient_reversal(x, s))))(x, scales)
  plain = jax.vmap(jax.grad(_downstream_loss))(x)
  np.testing.assert_allclose(per_example, -scales[:, None] * plain, rtol=1e-6)


def test_bfloat16_gradients_stay_bfloat16():
  x = jnp.ones((2, 3), jnp.bfloat16)
  gradient = jax.grad(
      lambda x: jnp.sum(gradient_reversal(x, jnp.float32(0.5)).astype(
          jnp.float32) * 3.0))(x)
  assert gradient.dtype == jnp.bfloat16
  np.testing.assert_array_equal(gradient.astype(jnp.float32), -1.5)


def test_sharded_inputs_keep_their_sharding_and_gradients():
  devices = np.array(jax.devices())
  mesh = Mesh(devices, ("batch",))
  sharding = NamedSharding(mesh, PartitionSpec("batch"))
  x = np.random.default_rng(2).normal(size=(2 * devices.size, 3))
  x = jax.device_put(jnp.asarray(x, jnp.float32), sharding)

  @jax.jit
  def forward_and_grad(x):
    return jax.value_and_grad(
        lambda x: _downstream_loss(gradient_reversal(x, 0.5)))(x)

  @jax.jit
  def identity(x):
    return gradient_reversal(x, 0.5)

  loss, gradient = forward_and_grad(x)
  np.testing.assert_allclose(loss, _downstream_loss(np.asarray(x)),
                             rtol=1e-6)
  np.testing.assert_allclose(
      gradient, -0.5 * jax.grad(_downstream_loss)(np.asarray(x)), rtol=1e-6)
  assert gradient.sharding.is_equivalent_to(sharding, x.ndim)
  assert identity(x).sharding.is_equivalent_to(sharding, x.ndim)


def test_dann_lambda_matches_formula_and_dan_milestones():
  progress = np.array([-3.0, 0.0, 0.01, 0.1, 0.5, 1.0, 7.0])
  expected = 2.0 / (1.0 + np.exp(-10.0 * progress)) - 1.0
  np.testing.assert_allclose(dann_lambda(progress), expected, rtol=1e-6,
                             atol=1e-7)
  assert dann_lambda(0) == 0.0
  # DAN: p = n / 10_000 with two discriminator calls per iteration
  # (dan.md §4.1: ≈0.17 after 172 iterations, 0.76 after 1,000, 0.99 after
  # ≈2,750).
  np.testing.assert_allclose(
      dann_lambda(np.array([2 * 172, 2 * 1000, 2 * 2750]) / 10_000),
      [0.17, 0.76, 0.99], atol=0.005)
  # tanh form: no overflow far from the origin.
  assert np.isfinite(dann_lambda(-1e4)) and dann_lambda(-1e4) == -1.0
  np.testing.assert_allclose(dann_lambda(0.3, gamma=4.0),
                             2 / (1 + np.exp(-1.2)) - 1, rtol=1e-6)


# A DANN toy: 4-D inputs whose second coordinate is shifted by ±1.5 between
# domains (the Bayes domain accuracy is Φ(1.5) ≈ 0.93) while the task label
# depends on the other coordinates only. A linear feature extractor feeds a task head and,
# through the GRL, an MLP domain discriminator.
_NUM_PER_DOMAIN = 512
_NUM_STEPS = 600


def _toy_domains():
  rng = np.random.default_rng(3)
  source = rng.normal(size=(_NUM_PER_DOMAIN, 4))
  target = rng.normal(size=(_NUM_PER_DOMAIN, 4))
  source[:, 1] += 1.5
  target[:, 1] -= 1.5
  labels = lambda x: (x[:, 0] + 0.5 * x[:, 2] - 0.3 * x[:, 3] > 0).astype(
      np.float32)
  return (jnp.asarray(source, jnp.float32), jnp.asarray(labels(source)),
          jnp.asarray(target, jnp.float32), jnp.asarray(labels(target)))


def _init_toy_params(seed):
  # NumPy initialisation keeps jax.random (slow to compile on CPU) out of the
  # jitted training loop.
  rng = np.random.default_rng(seed)
  normal = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)
  return {
      "features": {"w": normal(4, 3) / 2.0, "b": jnp.zeros(3)},
      "task": {"w": normal(3) / 2.0, "b": jnp.zeros(())},
      "domain": {"w1": normal(3, 16) / 2.0, "b1": jnp.zeros(16),
                 "w2": normal(16) / 4.0, "b2": jnp.zeros(())},
  }


def _features(params, x):
  return x @ params["w"] + params["b"]


def _domain_logits(params, features):
  hidden = jnp.tanh(features @ params["w1"] + params["b1"])
  return hidden @ params["w2"] + params["b2"]


def _train_dann_toy(adversarial_weight):
  """Joint single-step training (as in DAN); returns parameters.

  ``adversarial_weight`` (0 or 1) multiplies the GRL factor: at 0 the
  discriminator still learns, but the features ignore it.
  """
  source, source_labels, target, _ = _toy_domains()
  both = jnp.concatenate([source, target])
  domain_labels = jnp.concatenate(
      [jnp.ones(_NUM_PER_DOMAIN), jnp.zeros(_NUM_PER_DOMAIN)])
  # A decaying step size lets the game settle instead of orbiting the
  # equilibrium.
  optimizer = optax.adam(optax.cosine_decay_schedule(1e-2, _NUM_STEPS, 1e-2))

  def loss_fn(params, reversal_scale):
    task_logits = _features(params["features"], source) @ params["task"]["w"]
    task_loss = optax.sigmoid_binary_cross_entropy(
        task_logits + params["task"]["b"], source_labels).mean()
    reversed_features = gradient_reversal(
        _features(params["features"], both), reversal_scale)
    domain_loss = optax.sigmoid_binary_cross_entropy(
        _domain_logits(params["domain"], reversed_features),
        domain_labels).mean()
    return task_loss + domain_loss

  def step(carry, step_index):
    params, opt_state = carry
    scale = adversarial_weight * dann_lambda(step_index / _NUM_STEPS)
    grads = jax.grad(loss_fn)(params, scale)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), None

  params = _init_toy_params(0)
  (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)),
                                jnp.arange(_NUM_STEPS))
  return params


def _fresh_domain_probe_accuracy(features, domain_labels):
  """Held-out accuracy of a new linear (Fisher LDA) domain classifier.

  The domain shift is a mean shift, so with a linear feature extractor a
  linear probe sees all the domain information left in the features. It is
  fitted on even-indexed samples and scored on odd-indexed ones, so that
  fitting noise does not count as domain information.
  """
  features = np.asarray(features, np.float64)
  domain_labels = np.asarray(domain_labels)
  train, test = slice(0, None, 2), slice(1, None, 2)
  means = [features[train][domain_labels[train] == d].mean(0) for d in (0, 1)]
  covariance = np.cov(features[train].T) + 1e-6 * np.eye(features.shape[1])
  direction = np.linalg.solve(covariance, means[1] - means[0])
  threshold = direction @ (means[0] + means[1]) / 2
  predictions = features[test] @ direction > threshold
  return np.mean(predictions == domain_labels[test])


@jax.jit
def _train_and_evaluate_dann_toy(adversarial_weight):
  """Trains the toy; returns features [2N, 3] and accuracies."""
  source, source_labels, target, target_labels = _toy_domains()
  domain_labels = jnp.concatenate(
      [jnp.ones(_NUM_PER_DOMAIN), jnp.zeros(_NUM_PER_DOMAIN)])
  params = _train_dann_toy(adversarial_weight)
  features = _features(params["features"], jnp.concatenate([source, target]))
  task_predictions = (features @ params["task"]["w"]
                      + params["task"]["b"]) > 0
  return features, {
      "source_task": jnp.mean(
          task_predictions[:_NUM_PER_DOMAIN] == source_labels),
      "target_task": jnp.mean(
          task_predictions[_NUM_PER_DOMAIN:] == target_labels),
      "discriminator": jnp.mean(
          (_domain_logits(params["domain"], features) > 0) == domain_labels),
  }


def _dann_toy_accuracies(adversarial_weight):
  features, accuracies = jax.device_get(
      _train_and_evaluate_dann_toy(adversarial_weight))
  domain_labels = np.repeat([1.0, 0.0], _NUM_PER_DOMAIN)
  accuracies["fresh_probe"] = _fresh_domain_probe_accuracy(features,
                                                           domain_labels)
  return accuracies


def test_dann_toy_domain_accuracy_falls_to_chance_while_task_holds():
  # The weight is traced, so both runs share one compiled training loop.
  plain = _dann_toy_accuracies(0.0)
  adversarial = _dann_toy_accuracies(1.0)
  # Without reversal the features keep the domain shift.
  assert plain["discriminator"] > 0.8
  assert plain["fresh_probe"] > 0.8
  # With reversal neither the adversary nor a fresh linear probe of the final
  # features (held-out accuracy) beats chance by much.
  assert adversarial["discriminator"] < 0.6
  assert adversarial["fresh_probe"] < 0.6
  # The task is still solved, in both domains.
  assert adversarial["source_task"] > 0.95
  assert adversarial["target_task"] > 0.95
  assert plain["source_task"] > 0.95
