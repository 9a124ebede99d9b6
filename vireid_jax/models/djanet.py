"""DJANet's network (spec djanet.md §4): four stems, a non-local ResNet trunk and the layerATT
chain between layer3 and layer4.

* Stems (§4.1): `visible`, `visible_augmented`, `infrared`, `infrared_augmented`, one per
  training view, each conv1 + bn1 + ReLU + max-pool (its BatchNorm sees only its view). In
  training the four outputs are concatenated [V1 | V2 | T1 | T2] before the shared stages
  (whose BatchNorms see all 4n). In evaluation an image of modality m goes through both of m's
  stems and the trunk gets S0 = ½ · (stem_m(x) + stem_m_augmented(x)).
* Shared stages (§4.2) with non-local blocks after the last (0, 2, 3, 0) blocks, inner width
  C / 2 (`non_local_inner = "half"`; AGW's code uses 1), θᵀφ / N, no softmax. Taps S0 (stem
  output), S1 (layer1), S2 (layer2), F3 (layer3).
* The chain (§4.3): A0 = ATT₀(F3, S0), A1 = ATT₁(A0, S1), A2 = ATT₂(A1, S2), A3 = ATT₃(A2, F3);
  layer4 gets A3 (there is no skip from F3 around the chain).
* Head (§4.5): GeM with p = 3 (eps 1e-12 inside the root, float32), a BNNeck without β
  (γ ~ N(1, 0.01)), a bias-free classifier (N(0, 0.001)).

Geometry comes from the input size: the layer3 map is (H / 16) × (W / 16), E = its positions,
E / 9 attention heads of 9 dimensions, r = C3 / 4 (384 × 192 → E = 288, 32 heads, r = 256 for
ResNet-50); H and W must be multiples of 16 and E a multiple of 9.

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

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax import struct
from jax.typing import DTypeLike

from vireid_jax.models.agw import NON_LOCAL_PER_STAGE
from vireid_jax.models.layers import (BatchNorm, GeneralizedMeanPooling, NonLocalBlock,
                                      NonLocalInner, normal_init, torch_default_uniform)
from vireid_jax.models.mamba import MambaLayer
from vireid_jax.models.outputs import ReidOutputs
from vireid_jax.models.resnet import (ResNetStages, Stem, after_last_blocks, resnet_config,
                                      stage_channels)


class MultiheadAttention(nnx.Module):
  """PyTorch's `nn.MultiheadAttention(embed, embed // head_dim, batch_first=True)` over
  [B, T, embed].

  Attributes: in_proj Linear embed → 3·embed with bias (PyTorch's packed `in_proj_weight`
  [3·embed, embed] transposed: columns [q | k | v]; `in_proj_bias`), out_proj Linear embed →
  embed with bias. Init as PyTorch's: Xavier-uniform over the packed matrix, zero biases,
  out-projection U(±1/√embed).
  """

  def __init__(self, embed: int, *, head_dim: int = 9, rngs: nnx.Rngs):
    if embed % head_dim:
      raise ValueError(f"The attention's embedding ({embed} = H·W of the layer3 map) must be a "
                       f"multiple of {head_dim} (heads of {head_dim} dimensions).")
    self.embed, self.head_dim, self.heads = embed, head_dim, embed // head_dim
    # Xavier-uniform over the packed [3·embed, embed] matrix: fan_in + fan_out = 4·embed.
    bound = (6.0 / (4 * embed)) ** 0.5
    self.in_proj = nnx.Linear(
        embed, 3 * embed, bias_init=jax.nn.initializers.zeros, rngs=rngs,
        kernel_init=lambda key, shape, dtype=jnp.float32: jax.random.uniform(
            key, shape, dtype, -bound, bound))
    self.out_proj = nnx.Linear(embed, embed, kernel_init=torch_default_uniform(embed),
                               bias_init=jax.nn.initializers.zeros, rngs=rngs)

  def __call__(self, query: jax.Array, key: jax.Array, value: jax.Array) -> jax.Array:
    """[B, T, embed] each → [B, T, embed]."""
    kernel, bias, e = self.in_proj.kernel[...], self.in_proj.bias[...], self.embed
    q = query @ kernel[:, :e] + bias[:e]
    k = key @ kernel[:, e:2 * e] + bias[e:2 * e]
    v = value @ kernel[:, 2 * e:] + bias[2 * e:]
    split = lambda x: x.reshape(*x.shape[:2], self.heads, self.head_dim)
    scores = jnp.einsum("bqhd,bkhd->bhqk", split(q), split(k)) / self.head_dim ** 0.5
    attended = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), split(v))
    return self.out_proj(attended.reshape(*query.shape[:2], e))


class LayerATT(nnx.Module):
  """One layerATT module (module docstring); `final` selects ATT_3's form."""

  def __init__(self, channels: int, tap_channels: int, height: int, width: int, *,
               down: str | None, final: bool, reduction: int = 4, head_dim: int = 9,
               kv_scale: float = 0.1, d_state: int = 64, d_conv: int = 4, expand: int = 2,
               dt_rank: int | str = "auto", scan_chunk_size: int = 16,
               dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs):
    """Creates the module.

    Args:
      channels: C3, the layer3 width (1024 for ResNet-50); r = C3 / reduction.
      tap_channels: the width of s (64, 256, 512 for the stem, layer1, layer2 taps).
      height, width: the layer3 map's size (24 × 12 at 384 × 192): E = height · width.
      down: "k6s4" (ATT_0, ATT_1), "k4s2" (ATT_2) or None (ATT_3: s goes through `narrow`).
      final: ATT_3 (residual around the Mamba) instead of ATT_0..2.
      reduction, head_dim, kv_scale: r = C3 / reduction; the attention's head width; the
        weight of kv added to q before the attention (4, 9, 0.1 in the reference).
      d_state, d_conv, expand, dt_rank, scan_chunk_size, dtype: the MambaLayer's.
      rngs: the parameter keys.
    """
    reduced = channels // reduction
    self.reduced, self.height, self.width, self.final = reduced, height, width, final
    self.kv_scale = kv_scale
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
    self.attention = MultiheadAttention(positions, head_dim=head_dim, rngs=rngs)
    self.mamba = MambaLayer(reduced, d_state=d_state, d_conv=d_conv, expand=expand,
                            dt_rank=dt_rank, scan_chunk_size=scan_chunk_size, dtype=dtype,
                            rngs=rngs)

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
    query = query + self.kv_scale * context
    query = query + self.attention(query, context, context)
    sequence = query.swapaxes(1, 2)                               # [B, E, r]: Mamba over E
    mixed = self.mamba(sequence)
    sequence = sequence + mixed if self.final else mixed
    maps = sequence.reshape(x.shape[0], self.height, self.width, self.reduced)
    return self.broad(maps.astype(x.dtype))


@struct.dataclass
class DJANetOutputs(ReidOutputs):
  """:class:`ReidOutputs` plus the layer4 maps [B, h, w, C4] (the complementary loss's input)."""

  layer4: jax.Array

  def features(self) -> dict[str, jax.Array]:
    """"pool" = L2(f), "bn" = L2(BNNeck(f)) [B, D], the reference's POOL and FC; and
    [B, 2D] "pool_bn_sum" = [pool, bn] / √2 and "pool_bn_weighted" = [√0.1·pool, √0.9·bn],
    whose inner products are LLCM `test.py`'s (S_pool + S_fc) / 2 and 0.1·S_pool + 0.9·S_fc."""
    features = super().features()
    pool, bn = features["pool"], features["bn"]
    features["pool_bn_sum"] = jnp.concatenate([pool, bn], axis=-1) / jnp.sqrt(2.0)
    features["pool_bn_weighted"] = jnp.concatenate([jnp.sqrt(0.1) * pool, jnp.sqrt(0.9) * bn],
                                                   axis=-1)
    return features


# The training views, in the trunk's order [V1 | V2 | T1 | T2] (spec djanet.md §3).
VIEWS = ("visible", "visible_augmented", "infrared", "infrared_augmented")
# The taps the chain fuses with, in order: the stem output and layers 1–3.
DOWNS = ("k6s4", "k6s4", "k4s2", None)


def layer3_geometry(image_height: int, image_width: int, head_dim: int) -> tuple[int, int]:
  """The layer3 map's (height, width) for an input size, checked for the chain.

  Raises:
    ValueError: H or W not a multiple of 16, or E = (H / 16) · (W / 16) not a multiple of
      `head_dim`, naming the size, E and the head width.
  """
  if image_height % 16 or image_width % 16:
    raise ValueError(
        f"DJANet's layerATT chain needs an input whose height and width are multiples of 16, "
        f"got {image_height}×{image_width} (config.data.image_height/width; the reference's is "
        "384×192).")
  height, width = image_height // 16, image_width // 16
  if (height * width) % head_dim:
    raise ValueError(
        f"DJANet at {image_height}×{image_width}: the layer3 map has E = {height}×{width} = "
        f"{height * width} positions, not a multiple of the attention's head width {head_dim} "
        f"(config.model.att_head_dim); use e.g. 384×192 (E = 288) or 96×48 (E = 18).")
  return height, width


class DJANet(nnx.Module):
  """DJANet's re-id network (module docstring).

  Attributes:
    visible_stem, visible_augmented_stem, infrared_stem, infrared_augmented_stem: the four
      :class:`Stem` s (reference `visible_module`, `visible_moduleA`, `thermal_module`,
      `thermal_moduleA`).
    stages: shared :class:`ResNetStages` with the non-local blocks (`base_resnet.base`,
      `NL_2`, `NL_3`).
    fusions: the four :class:`LayerATT` (`layerATT0`..`layerATT3`).
    bottleneck, classifier, gem: the head.
  """

  def __init__(self, num_classes: int, *, image_size: tuple[int, int], depth: int = 50,
               width: int = 64, last_stride: int = 1,
               non_local_inner: NonLocalInner | int = "half", att_reduction: int = 4,
               att_head_dim: int = 9, att_kv_scale: float = 0.1, mamba_d_state: int = 64,
               mamba_d_conv: int = 4, mamba_expand: int = 2,
               mamba_dt_rank: int | str = "auto", scan_chunk_size: int = 16,
               dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs):
    """Creates the network (random init; ImageNet weights are imported separately).

    Args:
      num_classes: training identities (395 SYSU-MM01, 206 RegDB, 713 LLCM).
      image_size: (H, W) of the input, which fixes the chain's geometry.
      depth, width, last_stride: the ResNet's (50, 64, 1 in the reference).
      non_local_inner: the non-local blocks' inner width ("half": C / 2, the reference's).
      att_reduction, att_head_dim, att_kv_scale: see :class:`LayerATT`.
      mamba_d_state, mamba_d_conv, mamba_expand, mamba_dt_rank: the Mamba blocks' (64, 4, 2,
        "auto").
      scan_chunk_size: positions per chunk of the selective scan (`ops.selective_scan`).
      dtype: compute dtype; LayerNorms, the scan, GeM, BatchNorm statistics stay float32.
      rngs: the parameter keys.
    """
    height, width_3 = layer3_geometry(*image_size, att_head_dim)
    _, blocks_per_stage = resnet_config(depth)
    stem = lambda: Stem(width, dtype=dtype, rngs=rngs)
    self.visible_stem, self.visible_augmented_stem = stem(), stem()
    self.infrared_stem, self.infrared_augmented_stem = stem(), stem()
    self.stages = ResNetStages(
        depth, width=width, last_stride=last_stride,
        insert_after=after_last_blocks(blocks_per_stage, NON_LOCAL_PER_STAGE),
        make_inserted=lambda channels, r: NonLocalBlock(channels, inner=non_local_inner,
                                                        dtype=dtype, rngs=r),
        dtype=dtype, rngs=rngs)
    channels = stage_channels(depth, width)
    taps = (width, channels[0], channels[1], channels[2])
    self.fusions = nnx.List([
        LayerATT(channels[2], tap, height, width_3, down=down, final=down is None,
                 reduction=att_reduction, head_dim=att_head_dim, kv_scale=att_kv_scale,
                 d_state=mamba_d_state, d_conv=mamba_d_conv, expand=mamba_expand,
                 dt_rank=mamba_dt_rank, scan_chunk_size=scan_chunk_size, dtype=dtype,
                 rngs=rngs)
        for tap, down in zip(taps, DOWNS)])
    self.image_size = tuple(image_size)
    self.gem = GeneralizedMeanPooling(p=3.0, eps=1e-12)
    self.feature_dim = self.stages.out_channels
    self.num_classes = num_classes
    self.bottleneck = BatchNorm(self.feature_dim, use_bias=False,
                                scale_init=normal_init(0.01, mean=1.0), rngs=rngs)
    self.classifier = nnx.Linear(self.feature_dim, num_classes, use_bias=False,
                                 kernel_init=normal_init(0.001), rngs=rngs)

  def stem_outputs(self, views: dict[str, jax.Array | None]) -> jax.Array:
    """S0: the four views' stems concatenated, or one modality's two stems averaged."""
    given = tuple(name for name in VIEWS if views.get(name) is not None)
    if given == VIEWS:
      return jnp.concatenate([getattr(self, f"{name}_stem")(views[name]) for name in VIEWS])
    if given in (("visible",), ("infrared",)):
      (modality,) = given
      images = views[modality]
      return 0.5 * (getattr(self, f"{modality}_stem")(images)
                    + getattr(self, f"{modality}_augmented_stem")(images))
    raise ValueError(
        f"DJANet takes the four training views {VIEWS} (config.data.augmentation = \"djanet\") "
        f"or the images of one modality (visible= or infrared=, evaluation); got {given}.")

  def __call__(self, visible: jax.Array | None = None,
               visible_augmented: jax.Array | None = None,
               infrared: jax.Array | None = None,
               infrared_augmented: jax.Array | None = None) -> DJANetOutputs:
    """Four views [n, H, W, 3] each (training layout, rows [V1; V2; T1; T2]), or one
    modality's images [B, H, W, 3] (both its stems averaged) → :class:`DJANetOutputs`."""
    for images in (visible, visible_augmented, infrared, infrared_augmented):
      if images is not None and tuple(images.shape[1:3]) != self.image_size:
        raise ValueError(f"DJANet was built for {self.image_size[0]}×{self.image_size[1]} "
                         f"images (its attention's geometry), got {images.shape[1:3]}.")
    s0 = self.stem_outputs(dict(visible=visible, visible_augmented=visible_augmented,
                                infrared=infrared, infrared_augmented=infrared_augmented))
    s1 = self.stages.run_stage(0, s0)
    s2 = self.stages.run_stage(1, s1)
    f3 = self.stages.run_stage(2, s2)
    x = f3
    for fusion, tap in zip(self.fusions, (s0, s1, s2, f3)):
      x = fusion(x, tap)
    layer4 = self.stages.run_stage(3, x).astype(jnp.float32)
    pooled = self.gem(layer4)
    bn = self.bottleneck(pooled)
    return DJANetOutputs(pooled=pooled, bn=bn, logits=self.classifier(bn), layer4=layer4)


def build_djanet(model_config: Any, num_classes: int, image_size: tuple[int, int], *,
                 rngs: nnx.Rngs) -> DJANet:
  """A :class:`DJANet` from `config.model` (configs/djanet.py) for `image_size` (H, W)."""
  return DJANet(
      num_classes, image_size=image_size, depth=model_config.depth, width=model_config.width,
      last_stride=model_config.last_stride, non_local_inner=model_config.non_local_inner,
      att_reduction=model_config.att_reduction, att_head_dim=model_config.att_head_dim,
      att_kv_scale=model_config.att_kv_scale, mamba_d_state=model_config.mamba_d_state,
      mamba_d_conv=model_config.mamba_d_conv, mamba_expand=model_config.mamba_expand,
      mamba_dt_rank=model_config.mamba_dt_rank, scan_chunk_size=model_config.scan_chunk_size,
      dtype=jnp.dtype(model_config.dtype), rngs=rngs)
