"""DJANet's complementary learning loss is identically zero (spec djanet.md §5): the reference
returns the mean of a standardised loss map."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vireid_jax import losses


def test_the_reference_s_last_step_makes_any_loss_map_zero():
  # Whatever the loss map (here random, of the reference's (192, 192, 24, 12) shape class),
  # mean((L - mean L) / std L) vanishes: the faithful value is the constant.
  rng = np.random.default_rng(0)
  for scale in (1e-3, 1.0, 1e3):
    loss_map = rng.gamma(2.0, scale, size=(6, 6, 4, 3))
    standardised = (loss_map - loss_map.mean()) / loss_map.std(ddof=1)   # torch.std: unbiased
    assert abs(standardised.mean()) < 1e-12


def test_zero_with_zero_gradient_for_any_maps():
  maps = jnp.asarray(np.random.default_rng(1).normal(size=(8, 6, 3, 16)), jnp.float32)
  value, grads = jax.value_and_grad(losses.complementary_learning_loss)(maps)
  assert float(value) == 0.0 and value.dtype == jnp.float32
  assert np.all(np.asarray(grads) == 0)


@pytest.mark.parametrize("shape", [(7, 6, 3, 16), (8, 48)])
def test_maps_that_cannot_be_paired_name_their_shape(shape):
  with pytest.raises(ValueError, match=str(shape).replace("(", r"\(").replace(")", r"\)")):
    losses.complementary_learning_loss(jnp.zeros(shape))
