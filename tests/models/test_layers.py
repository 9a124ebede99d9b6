"""Tests of vireid_jax.models.layers: BatchNorm, GeM, L2 norm, non-local block."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vireid_jax.models import (
    BatchNorm,
    GeneralizedMeanPooling,
    NonLocalBlock,
    average_pool,
    gem_pool,
    l2_normalize,
    torch_default_uniform,
)


# Modules are applied through one jitted call: compiling a whole forward once
# is cheaper than compiling each of its eager ops. nnx.jit writes the updated
# running statistics back to the module.
apply = nnx.jit(lambda module, x: module(x))

# ----------------------------------------------------------------- BatchNorm


def test_batchnorm_training_matches_pytorch_semantics():
  """Biased variance to normalise, unbiased variance into running_var."""
  rng = np.random.default_rng(0)
  bn = BatchNorm(3, rngs=nnx.Rngs(0))
  bn.scale[...] = jnp.array([1.0, 2.0, 0.5])
  bn.bias[...] = jnp.array([0.0, -1.0, 3.0])
  running_mean, running_var = np.zeros(3), np.ones(3)
  for step in range(2):
    x = rng.normal(2.0 + step, 3.0, size=(4, 3, 2, 3)).astype(np.float32)
    y = np.asarray(apply(bn, jnp.asarray(x)))

    x64 = x.astype(np.float64).reshape(-1, 3)
    n = x64.shape[0]  # 24 values per channel
    mean, biased_var = x64.mean(0), x64.var(0)
    expected = (x64 - mean) / np.sqrt(biased_var + 1e-5) * [1.0, 2.0, 0.5] + [0.0, -1.0, 3.0]
    np.testing.assert_allclose(y.reshape(-1, 3), expected, rtol=1e-4, atol=1e-4)

    running_mean = 0.9 * running_mean + 0.1 * mean
    running_var = 0.9 * running_var + 0.1 * biased_var * n / (n - 1)
    np.testing.assert_allclose(bn.mean[...], running_mean, rtol=1e-5)
    np.testing.assert_allclose(bn.var[...], running_var, rtol=1e-5)
    # A Flax-style (biased) update would differ by the factor 24/23.
    assert not np.allclose(bn.var[...], 0.9 * np.ones(3) + 0.1 * biased_var, rtol=1e-3)


def test_batchnorm_eval_mode_uses_running_statistics_and_freezes_them():
  bn = BatchNorm(2, rngs=nnx.Rngs(0))
  bn.mean[...] = jnp.array([1.0, -2.0])
  bn.var[...] = jnp.array([4.0, 0.25])
  x = jnp.array([[3.0, -2.0], [1.0, -1.0]])  # [B, C]

  bn.eval()
  assert bn.use_running_average
  y = apply(bn, x)
  expected = (np.asarray(x) - [1.0, -2.0]) / np.sqrt(np.array([4.0, 0.25]) + 1e-5)
  np.testing.assert_allclose(y, expected, rtol=1e-5)
  np.testing.assert_array_equal(bn.mean[...], [1.0, -2.0])
  np.testing.assert_array_equal(bn.var[...], [4.0, 0.25])

  bn.train()
  assert not bn.use_running_average
  apply(bn, x)
  assert not np.allclose(bn.mean[...], [1.0, -2.0])


def test_batchnorm_nnx_view_and_call_override():
  bn = BatchNorm(2, rngs=nnx.Rngs(0))
  view = nnx.view(bn, use_running_average=True)
  assert view.use_running_average and not bn.use_running_average
  x = jnp.array([[3.0, -2.0], [1.0, -1.0]])
  # Fresh running stats (0, 1): eval output is the input (up to eps).
  np.testing.assert_allclose(bn(x, use_running_average=True), x, rtol=1e-5)
  np.testing.assert_array_equal(bn.mean[...], [0.0, 0.0])


def test_batchnorm_without_bias_and_custom_scale_init():
  bn = BatchNorm(4, use_bias=False, scale_init=jax.nn.initializers.zeros, rngs=nnx.Rngs(0))
  params = nnx.state(bn, nnx.Param)
  assert set(params.keys()) == {'scale'}
  assert set(nnx.state(bn, nnx.BatchStat).keys()) == {'mean', 'var'}
  np.testing.assert_array_equal(bn.scale[...], np.zeros(4))
  x = jnp.arange(8.0).reshape(2, 4)
  np.testing.assert_array_equal(apply(bn, x), np.zeros((2, 4)))


def test_batchnorm_rejects_single_value_per_channel_in_training():
  bn = BatchNorm(3, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match='more than one value'):
    bn(jnp.ones((1, 3)))


def test_batchnorm_keeps_float32_statistics_for_bfloat16_input():
  bn = BatchNorm(3, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
  x = np.repeat(np.arange(4.0)[:, None], 3, axis=1)
  y = apply(bn, jnp.asarray(x, jnp.bfloat16))
  assert y.dtype == jnp.bfloat16
  assert bn.mean[...].dtype == jnp.float32 and bn.var[...].dtype == jnp.float32
  np.testing.assert_allclose(bn.mean[...], np.full(3, 0.15), rtol=1e-6)  # 0.1 · 1.5


# --------------------------------------------------------------- GeM and L2


def test_gem_pool_hand_computed():
  # Channel 0 holds 0, 1, 2, 3 -> mean of cubes = 36/4 = 9 -> 9^(1/3).
  # Channel 1 is constant 2 -> mean of cubes = 8 -> 2.
  # Channel 2 is all zero -> eps^(1/3) = 1e-4, the eps sits inside the root.
  x = np.zeros((1, 2, 2, 3), np.float32)
  x[0, :, :, 0] = [[0.0, 1.0], [2.0, 3.0]]
  x[0, :, :, 1] = 2.0
  pooled = gem_pool(jnp.asarray(x))
  assert pooled.shape == (1, 3)
  np.testing.assert_allclose(pooled[0], [9.0 ** (1 / 3), 2.0, 1e-4], rtol=1e-5)
  np.testing.assert_allclose(
      GeneralizedMeanPooling(p=1.0)(jnp.asarray(x))[0], [1.5, 2.0, 1e-12], rtol=1e-5
  )


def test_learnable_gem_exponent_is_a_parameter_with_the_formula_gradient():
  pool = GeneralizedMeanPooling(p=3.0, learnable=True)
  assert isinstance(pool.p, nnx.Param) and float(pool.p[...]) == 3.0
  assert not GeneralizedMeanPooling().learnable and GeneralizedMeanPooling().p == 3.0
  x = np.zeros((1, 2, 2, 2), np.float32)
  x[0, :, :, 0] = [[0.5, 1.0], [2.0, 3.0]]  # channel 1 stays all zero
  np.testing.assert_allclose(pool(jnp.asarray(x)), gem_pool(jnp.asarray(x), 3.0), rtol=1e-6)

  grads = nnx.grad(lambda module: module(jnp.asarray(x)).sum())(pool)

  def pooled_sum(p):  # float64, the same formula
    values = x.astype(np.float64).reshape(-1, 2)
    return np.sum((np.mean(values**p, axis=0) + 1e-12) ** (1 / p))

  expected = (pooled_sum(3.0 + 1e-6) - pooled_sum(3.0 - 1e-6)) / 2e-6
  # The all-zero channel adds d/dp eps^(1/p) (tiny) and no NaN.
  np.testing.assert_allclose(grads['p'][...], expected, rtol=1e-3)


def test_average_pool_is_the_spatial_mean():
  x = np.arange(12.0, dtype=np.float32).reshape(1, 2, 3, 2)
  np.testing.assert_allclose(average_pool(jnp.asarray(x)), [[5.0, 6.0]])


def test_gem_pool_gradient_is_finite_on_all_zero_map():
  grad = jax.jit(jax.grad(lambda x: gem_pool(x).sum()))(jnp.zeros((1, 2, 2, 1)))
  assert np.all(np.isfinite(grad))


def test_l2_normalize_unit_norm_and_nan_on_zero_vector():
  x = jnp.array([[3.0, 4.0], [0.0, 0.0]])
  y = l2_normalize(x)
  np.testing.assert_allclose(y[0], [0.6, 0.8], rtol=1e-6)
  assert np.all(np.isnan(y[1]))  # no epsilon, like the reference


# ------------------------------------------------------------ non-local block


def test_torch_default_uniform_bounds():
  values = np.asarray(torch_default_uniform(16)(jax.random.key(0), (4000,)))
  assert values.min() >= -0.25 and values.max() <= 0.25
  assert values.min() < -0.24 and values.max() > 0.24


@pytest.mark.parametrize('inner, expected_width', [('reference', 1), ('half', 4)])
def test_non_local_block_is_identity_at_init(inner, expected_width):
  block = NonLocalBlock(8, inner=inner, rngs=nnx.Rngs(0))
  assert block.theta.kernel.shape == (1, 1, 8, expected_width)
  assert block.output_conv.kernel.shape == (1, 1, expected_width, 8)
  for conv in (block.theta, block.phi, block.g, block.output_conv):
    assert conv.bias is not None
  np.testing.assert_array_equal(block.output_bn.scale[...], 0.0)
  np.testing.assert_array_equal(block.output_bn.bias[...], 0.0)
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3, 2, 8)), jnp.float32)
  np.testing.assert_array_equal(apply(block, x), x)


def test_non_local_block_inner_width_options():
  explicit = nnx.eval_shape(lambda: NonLocalBlock(8, inner=3, rngs=nnx.Rngs(0)))
  assert explicit.g.kernel.shape == (1, 1, 8, 3)
  with pytest.raises(ValueError, match='inner'):
    NonLocalBlock(8, inner='quarter', rngs=nnx.Rngs(0))


def test_non_local_block_matches_explicit_affinity_formula():
  """z = BN(W((θφᵀ/N) g)) + x with an explicit [B, N, N] affinity in NumPy."""
  channels, batch, height, width = 6, 2, 3, 2
  block = NonLocalBlock(channels, inner='half', rngs=nnx.Rngs(0))
  block.output_bn.scale[...] = jnp.asarray(np.linspace(0.5, 1.5, channels), jnp.float32)
  block.output_bn.bias[...] = jnp.asarray(np.linspace(-0.2, 0.3, channels), jnp.float32)
  block.eval()
  block.output_bn.mean[...] = jnp.asarray(np.linspace(-0.1, 0.1, channels), jnp.float32)
  block.output_bn.var[...] = jnp.asarray(np.linspace(0.5, 2.0, channels), jnp.float32)
  x = np.random.default_rng(2).normal(size=(batch, height, width, channels)).astype(np.float32)

  def conv1x1(conv, v):
    return v @ np.asarray(conv.kernel[...])[0, 0] + np.asarray(conv.bias[...])

  n = height * width
  flat = x.reshape(batch, n, channels).astype(np.float64)
  theta, phi, g = (conv1x1(c, flat) for c in (block.theta, block.phi, block.g))
  affinity = theta @ phi.transpose(0, 2, 1) / n  # [B, N, N], no softmax
  y = conv1x1(block.output_conv, affinity @ g)
  bn = block.output_bn
  y = (y - np.asarray(bn.mean[...])) / np.sqrt(np.asarray(bn.var[...]) + 1e-5)
  y = y * np.asarray(bn.scale[...]) + np.asarray(bn.bias[...])
  expected = (y + flat).reshape(batch, height, width, channels)
  np.testing.assert_allclose(apply(block, jnp.asarray(x)), expected, rtol=1e-4, atol=1e-5)


def test_non_local_block_init_bounds_follow_fan_in():
  block = NonLocalBlock(64, inner='half', rngs=nnx.Rngs(0))
  theta = np.asarray(block.theta.kernel[...])
  out = np.asarray(block.output_conv.kernel[...])
  assert np.abs(theta).max() <= 1 / math.sqrt(64) and np.abs(theta).max() > 0.9 / math.sqrt(64)
  assert np.abs(out).max() <= 1 / math.sqrt(32) and np.abs(out).max() > 0.9 / math.sqrt(32)
  assert np.abs(np.asarray(block.theta.bias[...])).max() <= 1 / math.sqrt(64)
