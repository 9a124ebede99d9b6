"""Building blocks shared by the re-identification models.

Everything is NHWC: images and feature maps are ``[B, H, W, C]``, pooled
features ``[B, C]``.

The layers follow the PyTorch reference's semantics exactly where they
matter for results (BatchNorm statistics, GeM's epsilon, the non-local
block's quirks, L2 normalisation without epsilon); see the baseline spec
(``baseline_data_eval.md``) §4 and §9.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import DTypeLike

Initializer = jax.nn.initializers.Initializer


@functools.partial(jax.jit, static_argnames=('shape', 'dtype', 'distribution'))
def _sample(key, loc, scale, *, shape, dtype, distribution):
  """``loc + scale · z`` with z ~ N(0, 1) or U(−1, 1), shaped ``shape``.

  Drawn as a flat vector then reshaped: the values are those of a direct
  draw of the shape (threefry indexes the flattened array), but XLA compiles
  the 1-D sampler several times faster on CPU than 4-D ones. Jitting the
  scaling with it makes one compilation per shape instead of four; together
  these compilations dominate the construction time of a small ResNet.
  """
  size = math.prod(shape)
  if distribution == 'normal':
    z = jax.random.normal(key, (size,), dtype)
  else:
    z = jax.random.uniform(key, (size,), dtype, minval=-1.0, maxval=1.0)
  return (loc + scale * z).reshape(shape)


def normal_init(stddev: float, mean: float = 0.0) -> Initializer:
  """N(mean, stddev²), untruncated (PyTorch ``nn.init.normal_``)."""

  def init(key, shape, dtype=jnp.float32):
    return _sample(
        key, mean, stddev, shape=tuple(shape), dtype=dtype, distribution='normal'
    )

  return init


def kaiming_normal_fan_out() -> Initializer:
  """PyTorch ``kaiming_normal_(mode='fan_out', nonlinearity='relu')`` for
  HWIO conv kernels: N(0, 2 / (kh·kw·out_channels)), untruncated."""

  def init(key, shape, dtype=jnp.float32):
    receptive_field = math.prod(shape[:-2])
    stddev = math.sqrt(2.0 / (receptive_field * shape[-1]))
    return normal_init(stddev)(key, shape, dtype)

  return init


def torch_default_uniform(fan_in: int) -> Initializer:
  """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default Conv/Linear init.

  PyTorch initialises weights with ``kaiming_uniform_(a=sqrt(5))``, which
  works out to exactly this bound, and biases with the same bound; so one
  initializer serves both, given the *weight's* fan-in (for a bias the shape
  alone does not tell the fan-in, hence the explicit argument).
  """
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return _sample(
        key, 0.0, bound, shape=tuple(shape), dtype=dtype, distribution='uniform'
    )

  return init


def l2_normalize(x: jax.Array, axis: int = -1) -> jax.Array:
  """``x / ||x||_2`` along ``axis`` with NO epsilon.

  The reference (``model.py:6-14``) divides by the bare norm, so an all-zero
  vector yields NaN (0/0) there as well as here. Kept on purpose: adding an
  epsilon would silently change features whose norm is tiny.

  Args:
    x: array of any shape, e.g. features ``[B, D]``.
    axis: the axis to normalise over.

  Returns:
    Array of the same shape as ``x``.
  """
  return x / jnp.sqrt(jnp.sum(x * x, axis=axis, keepdims=True))


def gem_pool(
    x: jax.Array, p: float | jax.Array = 3.0, eps: float = 1e-12
) -> jax.Array:
  """Generalised-mean pooling ``(mean_{h,w} x^p + eps)^(1/p)``.

  ``eps`` is added inside the root, after the mean, as in the reference
  (``model.py:231-235``). There is no clamp: the input is expected to be
  post-ReLU (non-negative); a negative mean gives NaN, as in PyTorch.
  Pooling is done in float32 whatever the input dtype, because the cube of
  activations in bfloat16 loses most of its precision.

  Args:
    x: feature map ``[B, H, W, C]``.
    p: the exponent, a Python float or a scalar array (learnable GeM).
    eps: added to the mean before the root.

  Returns:
    Pooled features ``[B, C]`` in float32.
  """
  x = x.astype(jnp.float32)
  return (jnp.mean(x**p, axis=(1, 2)) + eps) ** (1.0 / p)


class GeneralizedMeanPooling(nnx.Module):
  """Module wrapper of :func:`gem_pool`, with a fixed or a learnable exponent.

  By default ``p`` is a Python float, not a parameter: the reference's AGW
  model uses a constant 3 inside ``forward`` (spec §4.4). ``learnable=True``
  makes it a scalar ``nnx.Param`` initialised to ``p`` (Radenović et al.'s
  trainable GeM; not in any reference of this project). The formula stays
  the reference's, eps inside the root and no clamp: at a zero activation
  the gradient with respect to ``p`` is 0 (JAX differentiates ``x**p`` in
  ``p`` through ``log`` of the base with zeros replaced by ones), and with
  respect to ``x`` it is finite as long as ``p ≥ 1``.
  """

  def __init__(self, p: float = 3.0, eps: float = 1e-12, *, learnable: bool = False):
    """Creates the pooling.

    Args:
      p: the exponent, or its initial value when ``learnable``.
      eps: added to the mean before the root.
      learnable: make ``p`` a trainable scalar parameter.
    """
    self.p = nnx.Param(jnp.asarray(p, jnp.float32)) if learnable else float(p)
    self.eps = eps
    self.learnable = learnable

  def __call__(self, x: jax.Array) -> jax.Array:
    """``[B, H, W, C]`` -> ``[B, C]`` (float32)."""
    p = self.p[...] if self.learnable else self.p
    return gem_pool(x, p, self.eps)


def average_pool(x: jax.Array) -> jax.Array:
  """Global average pooling ``[B, H, W, C]`` -> ``[B, C]`` (float32)."""
  return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


def max_pool(x: jax.Array) -> jax.Array:
  """Global max pooling ``[B, H, W, C]`` -> ``[B, C]`` (float32; PyTorch's
  ``AdaptiveMaxPool2d((1, 1))``, DAN's pooling)."""
  return jnp.max(x.astype(jnp.float32), axis=(1, 2))


class BatchNorm(nnx.Module):
  """Batch normalisation with PyTorch's exact semantics.

  Differences from ``nnx.BatchNorm`` that matter for reproducing the
  reference:

  * ``momentum`` is in PyTorch's convention (weight of the *new* batch
    statistic, default 0.1), i.e. Flax momentum 0.9.
  * In training the input is normalised with the biased batch variance, but
    the running variance is updated with the *unbiased* one (× n/(n−1),
    n = number of reduced elements per channel), as PyTorch does.
  * Statistics and the normalisation are computed in float32 whatever the
    compute dtype; the output is cast back to ``dtype`` (or the input's dtype).

  Works on any rank; the channel axis is the last one (NHWC maps ``[B, H, W, C]``
  or vectors ``[B, C]``).

  Train/eval switching follows NNX's convention: the attribute
  ``use_running_average`` is flipped by ``model.train()`` / ``model.eval()``
  and by ``nnx.view(model, use_running_average=...)``; it can also be
  overridden per call.

  Parameters are named like ``nnx.BatchNorm``: ``scale`` (γ, PyTorch
  ``weight``), ``bias`` (β), and the ``nnx.BatchStat`` variables ``mean`` and
  ``var`` (``running_mean`` / ``running_var``).
  """

  def __init__(
      self,
      num_features: int,
      *,
      momentum: float = 0.1,
      epsilon: float = 1e-5,
      use_bias: bool = True,
      scale_init: Initializer = jax.nn.initializers.ones,
      use_running_average: bool = False,
      dtype: DTypeLike | None = None,
      rngs: nnx.Rngs,
  ):
    """Creates the layer.

    Args:
      num_features: number of channels C.
      momentum: PyTorch-style momentum: ``running = (1 − m)·running + m·batch``.
      epsilon: added to the variance.
      use_bias: whether there is a β. ``use_bias=False`` is exactly a β that
        is frozen at 0 forever (the BNNeck's ``requires_grad=False`` β, whose
        value is never changed from its zero init), without having to exclude
        it from the optimiser and from weight decay.
      scale_init: initializer of γ (e.g. zeros for the non-local block's
        output BN, N(1, 0.01) for the BNNeck).
      use_running_average: start in evaluation mode if True.
      dtype: output dtype; None keeps the input's dtype.
      rngs: supplies the ``params`` key for ``scale_init``.
    """
    shape = (num_features,)
    self.scale = nnx.Param(scale_init(rngs.params(), shape, jnp.float32))
    self.bias = nnx.Param(jnp.zeros(shape, jnp.float32)) if use_bias else None
    self.mean = nnx.BatchStat(jnp.zeros(shape, jnp.float32))
    self.var = nnx.BatchStat(jnp.ones(shape, jnp.float32))
    self.num_features = num_features
    self.momentum = momentum
    self.epsilon = epsilon
    self.use_bias = use_bias
    self.use_running_average = use_running_average
    self.dtype = dtype

  def __call__(
      self, x: jax.Array, use_running_average: bool | None = None
  ) -> jax.Array:
    """Normalises ``x`` ``[..., C]`` over all axes but the last one.

    Args:
      x: input ``[B, H, W, C]`` or ``[B, C]``.
      use_running_average: overrides the module attribute for this call.

    Returns:
      Array of the same shape as ``x``.
    """
    if use_running_average is None:
      use_running_average = self.use_running_average
    output_dtype = self.dtype if self.dtype is not None else x.dtype
    x32 = x.astype(jnp.float32)
    reduction_axes = tuple(range(x.ndim - 1))

    if use_running_average:
      mean, var = self.mean[...], self.var[...]
    else:
      count = math.prod(x.shape[:-1])
      if count < 2:
        # PyTorch refuses too (unbiased variance of one value is undefined).
        raise ValueError(
            f'BatchNorm in training mode needs more than one value per '
            f'channel, got input shape {x.shape}.'
        )
      mean = jnp.mean(x32, axis=reduction_axes)
      # Two-pass variance: E[x²]−E[x]² cancels badly for large activations.
      var = jnp.mean(jnp.square(x32 - mean), axis=reduction_axes)
      unbiased_var = var * (count / (count - 1))
      m = self.momentum
      self.mean[...] = jax.lax.stop_gradient((1 - m) * self.mean[...] + m * mean)
      self.var[...] = jax.lax.stop_gradient(
          (1 - m) * self.var[...] + m * unbiased_var
      )

    y = (x32 - mean) * (jax.lax.rsqrt(var + self.epsilon) * self.scale[...])
    if self.bias is not None:
      y = y + self.bias[...]
    return y.astype(output_dtype)

  def set_view(self, use_running_average: bool | None = None):
    """Hook of ``nnx.view``: sets ``use_running_average`` when given."""
    if use_running_average is not None:
      self.use_running_average = use_running_average


NonLocalInner = Literal['reference', 'half']


class NonLocalBlock(nnx.Module):
  """Dot-product non-local block of the AGW reference (spec §4.3).

  For x ``[B, H, W, C]``, N = H·W and inner width c'::

    θ, φ, g = Conv1×1(C→c')(x)           each flattened to [B, N, c']
    y = (θ φᵀ / N) g                      [B, N, c']  (no softmax)
    z = BN(Conv1×1(c'→C)(y)) + x          BN with γ = β = 0 at init

  so the block is the identity at initialisation.

  ``inner='reference'`` gives c' = 1: the reference computes the width as
  the reduction ratio integer-divided by itself, so the intended C/2 never
  runs. ``inner='half'`` gives the conventional c' = C // 2.

  Because there is no softmax, ``(θφᵀ)g = θ(φᵀg)``; the block evaluates the
  right-hand side, which costs O(N·c'²) instead of O(N²·c') and never builds
  the [B, N, N] affinity. It is the same function (equal up to float
  rounding) with the same gradients.

  All four 1×1 convolutions have biases and PyTorch's default init
  U(−1/√fan_in, 1/√fan_in) (fan_in = C for θ/φ/g, c' for the output conv).
  Submodule names: ``theta``, ``phi``, ``g``, ``output_conv``, ``output_bn``
  (reference ``theta``, ``phi``, ``g``, ``W[0]``, ``W[1]``).
  """

  def __init__(
      self,
      channels: int,
      *,
      inner: NonLocalInner | int = 'reference',
      dtype: DTypeLike = jnp.float32,
      rngs: nnx.Rngs,
  ):
    """Creates the block.

    Args:
      channels: C, the number of input (and output) channels.
      inner: 'reference' (c' = 1), 'half' (c' = C // 2) or an explicit int.
      dtype: compute dtype of the convolutions (params stay float32).
      rngs: supplies the ``params`` keys.
    """
    if inner == 'reference':
      inner_channels = 1
    elif inner == 'half':
      inner_channels = max(channels // 2, 1)
    elif isinstance(inner, int) and inner > 0:
      inner_channels = inner
    else:
      raise ValueError(f"inner must be 'reference', 'half' or a positive int, got {inner!r}")
    self.channels = channels
    self.inner_channels = inner_channels

    def conv(in_features, out_features):
      init = torch_default_uniform(in_features)  # 1×1 kernel: fan_in = in
      return nnx.Conv(
          in_features, out_features, (1, 1), padding='VALID', use_bias=True,
          kernel_init=init, bias_init=init, dtype=dtype, rngs=rngs,
      )

    self.g = conv(channels, inner_channels)
    self.theta = conv(channels, inner_channels)
    self.phi = conv(channels, inner_channels)
    self.output_conv = conv(inner_channels, channels)
    self.output_bn = BatchNorm(
        channels, scale_init=jax.nn.initializers.zeros, rngs=rngs
    )

  def __call__(self, x: jax.Array) -> jax.Array:
    """``[B, H, W, C]`` -> ``[B, H, W, C]``."""
    batch, height, width, _ = x.shape
    n = height * width
    theta = self.theta(x).reshape(batch, n, self.inner_channels)
    phi = self.phi(x).reshape(batch, n, self.inner_channels)
    g = self.g(x).reshape(batch, n, self.inner_channels)
    phi_g = jnp.einsum('bnc,bnd->bcd', phi, g) / n  # [B, c', c']
    y = jnp.einsum('bnc,bcd->bnd', theta, phi_g)
    y = y.reshape(batch, height, width, self.inner_channels)
    return self.output_bn(self.output_conv(y)).astype(x.dtype) + x


class InstanceNorm(nnx.Module):
  """Instance normalisation with PyTorch's ``InstanceNorm2d`` semantics, NHWC.

  Each (sample, channel) is normalised over its H·W positions with the biased variance.
  With ``track_running_stats`` the layer also keeps running statistics, as AlignGAN's
  generators do (spec aligngan §2.1):

  * training mode normalises per instance and updates
    ``running = (1 − m)·running + m·(batch average of the per-instance means / *unbiased*
    variances, × HW/(HW − 1))``, starting from mean 0 / variance 1;
  * evaluation mode normalises every instance with the running statistics (like BatchNorm
    at inference), so a generator's test-time output depends on every training call.

  Without running statistics both modes normalise per instance (the discriminators' plain
  ``InstanceNorm2d``). ``affine`` adds per-channel γ (``scale``, init 1: PyTorch ≥ 1.2's
  default; the reference's PyTorch 1.1 drew γ ~ U(0, 1)) and β (``bias``, init 0).

  Train/eval switching follows :class:`BatchNorm`: the attribute ``use_running_average`` is
  flipped by ``model.train()`` / ``model.eval()`` and ``nnx.view``. Statistics and the
  normalisation are computed in float32; the output has the input's dtype.
  """

  def __init__(
      self,
      num_features: int,
      *,
      affine: bool = False,
      track_running_stats: bool = False,
      momentum: float = 0.1,
      epsilon: float = 1e-5,
      use_running_average: bool = False,
  ):
    """Creates the layer.

    Args:
      num_features: number of channels C.
      affine: whether there are a per-channel γ and β.
      track_running_stats: whether to keep (and, in evaluation mode, use) running statistics.
      momentum: PyTorch-style momentum, the weight of the new statistic.
      epsilon: added to the variance.
      use_running_average: start in evaluation mode if True.
    """
    shape = (num_features,)
    self.scale = nnx.Param(jnp.ones(shape, jnp.float32)) if affine else None
    self.bias = nnx.Param(jnp.zeros(shape, jnp.float32)) if affine else None
    self.mean = nnx.BatchStat(jnp.zeros(shape, jnp.float32)) if track_running_stats else None
    self.var = nnx.BatchStat(jnp.ones(shape, jnp.float32)) if track_running_stats else None
    self.num_features = num_features
    self.affine = affine
    self.track_running_stats = track_running_stats
    self.momentum = momentum
    self.epsilon = epsilon
    self.use_running_average = use_running_average

  def __call__(self, x: jax.Array) -> jax.Array:
    """``[B, H, W, C]`` -> the same shape, normalised per instance or with running statistics."""
    x32 = x.astype(jnp.float32)
    if self.track_running_stats and self.use_running_average:
      mean, var = self.mean[...], self.var[...]
    else:
      count = x.shape[1] * x.shape[2]
      if count < 2:
        raise ValueError(f'InstanceNorm needs more than one position per channel, got input '
                         f'shape {x.shape}.')
      mean = jnp.mean(x32, axis=(1, 2), keepdims=True)                      # [B, 1, 1, C]
      var = jnp.mean(jnp.square(x32 - mean), axis=(1, 2), keepdims=True)
      if self.track_running_stats:
        m = self.momentum
        unbiased_var = var * (count / (count - 1))
        self.mean[...] = jax.lax.stop_gradient(
            (1 - m) * self.mean[...] + m * jnp.mean(mean, axis=(0, 1, 2)))
        self.var[...] = jax.lax.stop_gradient(
            (1 - m) * self.var[...] + m * jnp.mean(unbiased_var, axis=(0, 1, 2)))
    y = (x32 - mean) * jax.lax.rsqrt(var + self.epsilon)
    if self.affine:
      y = y * self.scale[...] + self.bias[...]
    return y.astype(x.dtype)

  def set_view(self, use_running_average: bool | None = None):
    """Hook of ``nnx.view``: sets ``use_running_average`` when given."""
    if use_running_average is not None:
      self.use_running_average = use_running_average


class ConvTranspose(nnx.Module):
  """PyTorch's ``ConvTranspose2d(k, stride=s, padding=p)``, NHWC: ``[B, H, W, I]`` ->
  ``[B, (H − 1)·s − 2p + k, (W − 1)·s − 2p + k, O]``.

  Computed as the gradient of a strided convolution: the input dilated by s, padded by
  k − 1 − p on every side, convolved with the spatially flipped kernel (at k = 4, s = 2,
  p = 1 the output is exactly twice the input). The kernel is stored as ``[kh, kw, O, I]``
  (HWIO of that forward convolution), which is PyTorch's ``[I, O, kh, kw]`` weight under the
  generic conv layout of :mod:`vireid_jax.models.pytorch_import`; no special case there.
  """

  def __init__(
      self,
      in_features: int,
      out_features: int,
      kernel_size: int,
      *,
      stride: int,
      padding: int,
      use_bias: bool = False,
      kernel_init: Initializer,
      dtype: DTypeLike = jnp.float32,
      rngs: nnx.Rngs,
  ):
    self.kernel = nnx.Param(kernel_init(rngs.params(),
                                        (kernel_size, kernel_size, out_features, in_features),
                                        jnp.float32))
    self.bias = nnx.Param(jnp.zeros((out_features,), jnp.float32)) if use_bias else None
    self.stride = stride
    self.edge = kernel_size - 1 - padding
    self.dtype = dtype

  def __call__(self, x: jax.Array) -> jax.Array:
    y = jax.lax.conv_transpose(
        x.astype(self.dtype), self.kernel[...].astype(self.dtype),
        strides=(self.stride, self.stride),
        padding=((self.edge, self.edge), (self.edge, self.edge)),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'), transpose_kernel=True)
    if self.bias is not None:
      y = y + self.bias[...].astype(self.dtype)
    return y


def resize_bilinear(x: jax.Array, height: int, width: int) -> jax.Array:
  """PyTorch's ``F.interpolate(x, [height, width], mode='bilinear')``, NHWC.

  Half-pixel centres (``align_corners=False``) and no antialiasing in either direction:
  ``jax.image.resize`` would otherwise low-pass filter a down-sampling (AlignGAN's 24 → 16
  feature rows), which PyTorch does not.
  """
  batch, _, _, channels = x.shape
  return jax.image.resize(x, (batch, height, width, channels), method='bilinear',
                          antialias=False)
