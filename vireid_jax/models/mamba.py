"""The Mamba block of `mamba_ssm` v1 (Gu and Dao, 2023) in Flax NNX, on `ops.selective_scan`
(spec djanet.md §4.4; DJANet's MambaLayer uses it).

On s [B, L, d_model], with d_inner = expand · d_model and dt_rank = ⌈d_model / 16⌉:

1. in_proj (no bias) → x, z [B, L, d_inner];
2. x → depthwise causal convolution over the sequence, kernel d_conv, with bias:
   out[t] = b + Σ_k w[k] · x[t − (d_conv − 1) + k] (zeros before the start; PyTorch's
   orientation, w[d_conv − 1] multiplies x[t]) → SiLU;
3. x_proj (no bias) → (δ, B, C) of widths (dt_rank, d_state, d_state), in that order;
4. Δ = softplus(W_dt · δ + b_dt) (the bias is added inside the scan, as the library does);
   A = −exp(A_log);
5. y = selective_scan(x, Δ, A, B, C, D, z) (times SiLU(z));
6. out_proj (no bias) → [B, L, d_model].

dt_rank may also be given as an int ("auto" = ⌈d_model / 16⌉, the library's default).
Initialisation as the library's: in_proj, x_proj, out_proj and the convolution PyTorch defaults
(U(±1/√fan_in)); W_dt ~ U(±dt_rank^−½); b_dt = softplus⁻¹(dt), dt = exp(U(log 1e-3, log 0.1))
clamped at ≥ 1e-4; A_log[d, j] = log(j + 1); D = 1. The scan runs in float32.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import DTypeLike

from vireid_jax.models.layers import torch_default_uniform
from vireid_jax.ops import selective_scan


def _inverse_softplus_dt(key, shape, dtype=jnp.float32, *, dt_min=1e-3, dt_max=0.1,
                         dt_floor=1e-4):
  """The library's dt_proj bias: softplus⁻¹ of a log-uniform dt in [dt_min, dt_max]."""
  dt = jnp.exp(jax.random.uniform(key, shape, jnp.float32) * (math.log(dt_max) - math.log(dt_min))
               + math.log(dt_min))
  dt = jnp.maximum(dt, dt_floor)
  return (dt + jnp.log(-jnp.expm1(-dt))).astype(dtype)


class Mamba(nnx.Module):
  """`mamba_ssm.Mamba` (v1), [B, L, d_model] → [B, L, d_model].

  Attributes (the library's names): in_proj, conv1d (depthwise: kernel [d_conv, 1, d_inner],
  bias [d_inner]; computed in float32), x_proj, dt_proj, A_log [d_inner, d_state], D [d_inner],
  out_proj.
  """

  def __init__(self, d_model: int, *, d_state: int = 16, d_conv: int = 4, expand: int = 2,
               dt_rank: int | str = "auto", scan_chunk_size: int = 16,
               dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs):
    d_inner = expand * d_model
    self.d_inner, self.d_state, self.d_conv = d_inner, d_state, d_conv
    if dt_rank == "auto":
      dt_rank = math.ceil(d_model / 16)
    if not isinstance(dt_rank, int) or dt_rank < 1:
      raise ValueError(f"Mamba's dt_rank must be \"auto\" or a positive int, got {dt_rank!r}.")
    self.dt_rank = dt_rank
    self.scan_chunk_size = scan_chunk_size
    linear = lambda i, o, **kw: nnx.Linear(i, o, kernel_init=torch_default_uniform(i),
                                           dtype=dtype, rngs=rngs, **kw)
    self.in_proj = linear(d_model, 2 * d_inner, use_bias=False)
    conv_init = torch_default_uniform(d_conv)   # depthwise: fan_in = kernel size
    # Causal: d_conv − 1 zeros before the start, none after (PyTorch pads both sides and keeps
    # the first L outputs, which is the same).
    self.conv1d = nnx.Conv(d_inner, d_inner, (d_conv,), padding=((d_conv - 1, 0),),
                           feature_group_count=d_inner, kernel_init=conv_init,
                           bias_init=conv_init, dtype=jnp.float32, rngs=rngs)
    self.x_proj = linear(d_inner, self.dt_rank + 2 * d_state, use_bias=False)
    bound = self.dt_rank ** -0.5
    self.dt_proj = nnx.Linear(
        self.dt_rank, d_inner, bias_init=_inverse_softplus_dt, dtype=jnp.float32, rngs=rngs,
        kernel_init=lambda key, shape, dtype=jnp.float32: jax.random.uniform(
            key, shape, dtype, -bound, bound))
    self.A_log = nnx.Param(jnp.log(jnp.tile(jnp.arange(1, d_state + 1, dtype=jnp.float32),
                                            (d_inner, 1))))
    self.D = nnx.Param(jnp.ones((d_inner,), jnp.float32))
    self.out_proj = linear(d_inner, d_model, use_bias=False)

  def __call__(self, s: jax.Array) -> jax.Array:
    """[B, L, d_model] → [B, L, d_model] (the input's dtype)."""
    x, z = jnp.split(self.in_proj(s), 2, axis=-1)
    x = jax.nn.silu(self.conv1d(x.astype(jnp.float32)))
    delta, B, C = jnp.split(self.x_proj(x.astype(s.dtype)).astype(jnp.float32),
                            [self.dt_rank, self.dt_rank + self.d_state], axis=-1)
    delta = delta @ self.dt_proj.kernel[...]
    y = selective_scan(x, delta, -jnp.exp(self.A_log[...]), B, C, self.D[...], z=z,
                       delta_bias=self.dt_proj.bias[...], delta_softplus=True,
                       chunk_size=self.scan_chunk_size)
    return self.out_proj(y.astype(s.dtype))


class MambaLayer(nnx.Module):
  """DJANet's MambaLayer over a sequence s [B, L, d]: u = s + Mamba(LN(s)); out = FFN(LN(u)).

  **No residual around the FFN** (the reference's); FFN = Linear d → d, exact (erf) GELU,
  Linear d → d, weights N(0, 0.02) (the reference's truncated normal cuts at ±2 absolute, i.e.
  never), biases 0. LayerNorms: eps 1e-5, γ = 1, β = 0, float32.
  """

  def __init__(self, d_model: int, *, d_state: int = 64, d_conv: int = 4, expand: int = 2,
               dt_rank: int | str = "auto", scan_chunk_size: int = 16,
               dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs):
    self.mamba_norm = nnx.LayerNorm(d_model, epsilon=1e-5, dtype=jnp.float32, rngs=rngs)
    self.mamba = Mamba(d_model, d_state=d_state, d_conv=d_conv, expand=expand, dt_rank=dt_rank,
                       scan_chunk_size=scan_chunk_size, dtype=dtype, rngs=rngs)
    self.ffn_norm = nnx.LayerNorm(d_model, epsilon=1e-5, dtype=jnp.float32, rngs=rngs)
    linear = lambda: nnx.Linear(d_model, d_model, kernel_init=jax.nn.initializers.normal(0.02),
                                bias_init=jax.nn.initializers.zeros, dtype=dtype, rngs=rngs)
    self.ffn_in, self.ffn_out = linear(), linear()

  def __call__(self, s: jax.Array) -> jax.Array:
    """[B, L, d] → [B, L, d] (the input's dtype)."""
    u = s + self.mamba(self.mamba_norm(s.astype(jnp.float32)).astype(s.dtype))
    hidden = jax.nn.gelu(self.ffn_in(self.ffn_norm(u.astype(jnp.float32)).astype(s.dtype)),
                         approximate=False)
    return self.ffn_out(hidden).astype(s.dtype)
