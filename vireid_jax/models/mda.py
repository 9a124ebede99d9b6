"""MCJA's Modality Distribution Adapter (MDA), a reusable block (spec mcja.md §2).

On a feature map x [B, H, W, C] (N = H·W positions, M = `num_maps`):

1. spatial masks: a 1×1 convolution C → M with bias, then a softmax over the N positions of each
   of the M maps: a [B, N, M];
2. distribution characteristics: context[b, c, m] = Σ_n x[b, n, c] · a[b, n, m] ([B, C, M]);
3. characteristics aggregation: a depthwise kernel over M, no bias: z[b, c] = Σ_m W[m, c] ·
   context[b, c, m] ([B, C]; a depthwise 1-D convolution of length M, as the reference's);
4. g = sigmoid(BatchNorm1d(z));
5. out = BatchNorm2d(x ⊙ g) + x, with that BatchNorm's γ and β both zero at init, so every MDA
   is exactly the identity when created, in training and in evaluation mode.

The reference's `inter_ratio` is stored and unused (`ratio` here, recorded, without effect).
Initialisation is PyTorch's default (the reference's ResNet init loop does not reach the MDA):
the mask convolution's weight and bias U(±1/√C), the aggregation weight U(±1/√M), the first
BatchNorm γ = 1, β = 0. The softmax, the spatial sums and both BatchNorms run in float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import DTypeLike

from vireid_jax.models.layers import BatchNorm
from vireid_jax.models.layers import torch_default_uniform


class MDA(nnx.Module):
  """Modality Distribution Adapter over [B, H, W, C] maps.

  Attributes:
    mask: 1×1 nnx.Conv C → M with bias (the reference's `sc_conv`), kernel [1, 1, C, M].
    aggregation: depthwise 1-D nnx.Conv of length M over the M characteristics of each
      channel, no bias (the reference's `ca_conv`), kernel [M, 1, C].
    characteristics_norm: BatchNorm over C of z (the reference's `ca_bn`).
    output_norm: BatchNorm over C of x ⊙ g, γ = β = 0 at init (the reference's `norm_bn`).
    ratio: the reference's `inter_ratio`, kept for the record; it changes nothing.
  """

  def __init__(self, channels: int, *, num_maps: int = 2, ratio: int = 2,
               dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs):
    """Creates the block.

    Args:
      channels: C.
      num_maps: M, the number of spatial masks (`config.model.mda_m`: 2 on SYSU-MM01, 12 on
        RegDB).
      ratio: the reference's `mda_ratio` / `inter_ratio` (no effect).
      dtype: compute dtype of the mask convolution; the rest is float32.
      rngs: supplies the `params` keys.
    """
    self.channels, self.num_maps, self.ratio = channels, num_maps, ratio
    self.mask = nnx.Conv(channels, num_maps, (1, 1), kernel_init=torch_default_uniform(channels),
                         bias_init=torch_default_uniform(channels), dtype=dtype,
                         param_dtype=jnp.float32, rngs=rngs)
    self.aggregation = nnx.Conv(channels, channels, (num_maps,), padding="VALID",
                                feature_group_count=channels, use_bias=False,
                                kernel_init=torch_default_uniform(num_maps), dtype=jnp.float32,
                                param_dtype=jnp.float32, rngs=rngs)
    self.characteristics_norm = BatchNorm(channels, rngs=rngs)
    self.output_norm = BatchNorm(channels, scale_init=jax.nn.initializers.zeros, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, C] → [B, H, W, C] (the input's dtype)."""
    batch, height, width, channels = x.shape
    positions = x.reshape(batch, height * width, channels)
    # Softmax over the N positions of each of the M maps.
    attention = jax.nn.softmax(
        self.mask(x).reshape(batch, height * width, self.num_maps).astype(jnp.float32),
        axis=1)                                                                    # [B, N, M]
    context = jnp.einsum("bnc,bnm->bmc", positions.astype(jnp.float32), attention)  # [B, M, C]
    characteristics = self.aggregation(context)[:, 0, :]                           # [B, C]
    gate = jax.nn.sigmoid(self.characteristics_norm(characteristics))            # [B, C]
    adapted = self.output_norm(x.astype(jnp.float32) * gate[:, None, None, :])
    return (adapted + x.astype(jnp.float32)).astype(x.dtype)
