"""MMN's distribution consistency loss against the PyTorch transcription of its `DCLoss`
(``tests/models/torch_mmn_reference.py``; spec mmn.md §4.3)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vireid_jax import losses
from vireid_jax.losses.distribution import init_projection

torch = pytest.importorskip("torch")
from tests.models import torch_mmn_reference as reference  # noqa: E402


@pytest.mark.parametrize("groups", [2, 3])
def test_dcl_equals_the_reference_with_random_batchnorm_affine(groups):
  torch.manual_seed(groups)
  module = reference.DCLoss(num=groups, in_features=64).train()
  with torch.no_grad():
    for norm in (module.fc2[0], module.fc2[3]):
      norm.weight.uniform_(0.5, 1.5)
      norm.bias.uniform_(-0.5, 0.5)
  features = np.random.default_rng(groups).normal(size=(6 * groups, 64)).astype(np.float32)
  theirs_features = torch.tensor(features, requires_grad=True)
  theirs = module(theirs_features)
  theirs.backward()
  projection = jax.tree.map(jnp.asarray, module.projection())
  value, grads = jax.value_and_grad(losses.distribution_consistency_loss)(
      jnp.asarray(features), projection, groups)
  np.testing.assert_allclose(value, theirs.item(), rtol=1e-5)
  expected = theirs_features.grad.numpy()
  assert np.abs(np.asarray(grads) - expected).max() <= 1e-4 * max(np.abs(expected).max(), 0.05)


def test_no_gradient_reaches_the_projection_head_when_stopped():
  projection = init_projection(jax.random.key(0), 16, 8)
  features = jnp.asarray(np.random.default_rng(0).normal(size=(4, 16)), jnp.float32)
  grads = jax.grad(lambda p: losses.distribution_consistency_loss(
      features, jax.lax.stop_gradient(p)))(projection)
  assert all(np.all(np.asarray(leaf) == 0) for leaf in jax.tree.leaves(grads))


def test_projection_starts_at_pytorch_defaults():
  projection = init_projection(jax.random.key(1), 2048, 256)
  kernel = np.asarray(projection["linear1"]["kernel"])
  assert kernel.shape == (2048, 256)
  assert np.abs(kernel).max() <= 2048 ** -0.5 and np.abs(kernel).max() > 0.95 * 2048 ** -0.5
  assert np.abs(np.asarray(projection["linear2"]["bias"])).max() <= 256 ** -0.5
  np.testing.assert_array_equal(projection["bn1"]["scale"], 1.0)
  np.testing.assert_array_equal(projection["bn2"]["bias"], 0.0)


@pytest.mark.parametrize("rows", [1, 5])
def test_bad_row_counts_name_the_shape(rows):
  projection = init_projection(jax.random.key(0), 16, 8)
  with pytest.raises(ValueError, match=rf"\({rows}, 16\)"):
    losses.distribution_consistency_loss(jnp.zeros((rows, 16)), projection, 2)
