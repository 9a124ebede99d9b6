"""DJANet's feature-level alignment: the layerATT module (spec djanet.md §4.3).

Four layerATT modules sit between layer3 and layer4 in a chain, each fusing its input x (layer3
width C3) with an earlier tap s through attention over channels and a Mamba over positions. On
maps [B, H, W, C] (NHWC) with E = H · W positions and r = C3 / 4 reduced channels:

* ATT_l, l ≤ 2: q = LN_q(narrow(x)) and kv = LN_kv(down(s)) as [B, r, E] (tokens = the r
  channels, each the flattened map, row-major), down a k6 s4 p2 (l = 0, 1) or k4 s2 p1 (l = 2)
  convolution; q += 0.1 · kv; q += MHA(q, kv, kv); q = mamba(q) over the E positions (**no
  residual**); out = broad(q) [B, H, W, C3].
* ATT_3: the **same** `narrow` for x and s, then q += 0.1 · kv; q += MHA(q, kv, kv);
  q = q + mamba(q) (**with** a residual); out = broad(q).

MHA is PyTorch's `nn.MultiheadAttention` (embed E, E / 9 heads of 9 dimensions, packed
in-projection rows [q; k; v] with biases, scale 1 / 3, out-projection with bias, no dropout).
LayerNorms (eps 1e-5) run in float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import DTypeLike

from vireid_jax.models.layers import torch_default_uniform
from vireid_jax.models.mamba import MambaLayer

HEAD_DIM = 9


class MultiheadAttention(nnx.Module):
  """PyTorch's `nn.MultiheadAttention(embed, embed // 9, batch_first=True)` over [B, T, embed].

  Attributes (PyTorch layout, transposed): in_proj [embed, 3·embed] (columns [q | k | v]),
  in_bias [3·embed], out_proj Linear embed → embed with bias. Init as PyTorch's: Xavier-uniform
  in-projection, zero biases, out-projection U(±1/√embed).
  """

  def __init__(self, embed: int, *, rngs: nnx.Rngs):
    if embed % HEAD_DIM:
      raise ValueError(f"The attention's embedding ({embed} = H·W of the layer3 map) must be a "
                       f"multiple of {HEAD_DIM} (heads of {HEAD_DIM} dimensions).")
    self.embed, self.heads = embed, embed // HEAD_DIM
    # Xavier-uniform over the packed [3·embed, embed] matrix.
    bound = (6.0 / (embed + 3 * embed)) ** 0.5
    self.in_proj = nnx.Param(jax.random.uniform(rngs.params(), (embed, 3 * embed), jnp.float32,
                                                -bound, bound))
    self.in_bias = nnx.Param(jnp.zeros((3 * embed,), jnp.float32))
    self.out_proj = nnx.Linear(embed, embed, kernel_init=torch_default_uniform(embed),
                               bias_init=jax.nn.initializers.zeros, rngs=rngs)

  def __call__(self, query: jax.Array, key: jax.Array, value: jax.Array) -> jax.Array:
    """[B, T, embed] each → [B, T, embed]."""
    kernel, bias, e = self.in_proj[...], self.in_bias[...], self.embed
    q = query @ kernel[:, :e] + bias[:e]
    k = key @ kernel[:, e:2 * e] + bias[e:2 * e]
    v = value @ kernel[:, 2 * e:] + bias[2 * e:]
    split = lambda x: x.reshape(*x.shape[:2], self.heads, HEAD_DIM)
    scores = jnp.einsum("bqhd,bkhd->bhqk", split(q), split(k)) / HEAD_DIM ** 0.5
    attended = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), split(v))
    return self.out_proj(attended.reshape(*query.shape[:2], e))


class LayerATT(nnx.Module):
  """One layerATT module (module docstring); `final` selects ATT_3's form."""

  def __init__(self, channels: int, tap_channels: int, height: int, width: int, *,
               down: str | None, final: bool, d_state: int = 64, scan_chunk_size: int = 16,
               dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs):
    """Creates the module.

    Args:
      channels: C3, the layer3 width (1024 for ResNet-50); r = C3 / 4.
      tap_channels: the width of s (64, 256, 512 for the stem, layer1, layer2 taps).
      height, width: the layer3 map's size (24 × 12 at 384 × 192): E = height · width.
      down: "k6s4" (ATT_0, ATT_1), "k4s2" (ATT_2) or None (ATT_3: s goes through `narrow`).
      final: ATT_3 (residual around the Mamba) instead of ATT_0..2.
      d_state, scan_chunk_size, dtype: the MambaLayer's.
      rngs: the parameter keys.
    """
    reduced = channels // 4
    self.reduced, self.height, self.width, self.final = reduced, height, width, final
    conv = lambda i, o, k, s, p: nnx.Conv(i, o, (k, k), strides=(s, s), padding=((p, p), (p, p)),
                                          kernel_init=torch_default_uniform(i * k * k),
                                          bias_init=torch_default_uniform(i * k * k),
                                          dtype=dtype, rngs=rngs)
    self.narrow = conv(channels, reduced, 1, 1, 0)
    self.down = None if down is None else conv(tap_channels, reduced,
                                               *{"k6s4": (6, 4, 2), "k4s2": (4, 2, 1)}[down])
    self.broad = conv(reduced, channels, 1, 1, 0)
    positions = height * width
    self.query_norm = nnx.LayerNorm(positions, epsilon=1e-5, dtype=jnp.float32, rngs=rngs)
    self.key_norm = nnx.LayerNorm(positions, epsilon=1e-5, dtype=jnp.float32, rngs=rngs)
    self.attention = MultiheadAttention(positions, rngs=rngs)
    self.mamba = MambaLayer(reduced, d_state=d_state, scan_chunk_size=scan_chunk_size,
                            dtype=dtype, rngs=rngs)

  def _tokens(self, maps: jax.Array) -> jax.Array:
    """[B, H, W, r] → [B, r, H·W] (row-major positions), float32."""
    return maps.astype(jnp.float32).reshape(maps.shape[0], -1, self.reduced).swapaxes(1, 2)

  def __call__(self, x: jax.Array, s: jax.Array) -> jax.Array:
    """x [B, H, W, C3], s the tap [B, H', W', C'] → [B, H, W, C3]."""
    query = self.query_norm(self._tokens(self.narrow(x)))
    reduced_s = self.narrow(s) if self.down is None else self.down(s)
    if reduced_s.shape[1:3] != x.shape[1:3]:
      raise ValueError(f"The tap {s.shape} reduces to a {reduced_s.shape[1:3]} map, not the "
                       f"layer3 map's {x.shape[1:3]}.")
    context = self.key_norm(self._tokens(reduced_s))
    query = query + 0.1 * context
    query = query + self.attention(query, context, context)
    sequence = query.swapaxes(1, 2)                               # [B, E, r]: Mamba over E
    mixed = self.mamba(sequence)
    sequence = sequence + mixed if self.final else mixed
    maps = sequence.reshape(x.shape[0], self.height, self.width, self.reduced)
    return self.broad(maps.astype(x.dtype))
