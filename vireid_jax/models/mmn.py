"""MMN's network: a two-stream ResNet with a middle-modality generator and a 4-stripe head
(spec mmn.md §3).

* Two ResNet stems (visible, thermal) and shared layer1–4 with last stride 1: AGW's split, but
  **no non-local blocks and no GeM**, whatever the reference's arguments say (§0.1).
* The middle-modality generator (MMG, §3.3) works per pixel on the normalised input: per
  modality a 1×1 convolution 3 → 1 (+bias), ReLU, a 1×1 convolution 1 → 1, ReLU and a
  one-channel BatchNorm (statistics over that modality's images only); then one shared 1×1
  decoder 1 → 3 and a ReLU. Every MMG convolution starts at the constant 0.333 (bias 0). The
  middle images go, un-normalised, through the stem of the modality they come from,
  concatenated behind the originals (`stem([x; M])`).
* The head (§3.4): the layer4 map is cut along its height into `num_stripes` stripes with
  `torch.chunk` semantics (⌈H / 4⌉ rows each, the last shorter), each average-pooled to f_k
  and given its own BNNeck (γ ~ N(1, 0.01), no β) and bias-free classifier (N(0, 0.001)).

The forward pass returns :class:`StripeOutputs` (rows [visible; M_visible; infrared;
M_infrared] of whatever was given); `.features()` gives MMN's evaluation features of one
modality's images.

PyTorch key maps of the reference ``embed_net``: :mod:`vireid_jax.models.mmn_pytorch`.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax import struct
from jax.typing import DTypeLike

from vireid_jax.models.layers import BatchNorm, l2_normalize, normal_init
from vireid_jax.models.resnet import ResNetStages, Stem


def stripe_bounds(height: int, num_stripes: int) -> tuple[tuple[int, int], ...]:
  """`torch.chunk(x, num_stripes, height)`: rows [start, stop) of each stripe.

  Chunks of ⌈height / num_stripes⌉ rows, the last one shorter: 24 → 6, 6, 6, 6; 18 → 5, 5, 5,
  3. torch.chunk may return fewer chunks than asked (6 rows in 4: 2, 2, 2), which MMN's head
  cannot use.

  Raises:
    ValueError: fewer than `num_stripes` stripes, naming the height.
  """
  size = math.ceil(height / num_stripes)
  bounds = tuple((start, min(start + size, height)) for start in range(0, height, size))
  if len(bounds) != num_stripes:
    raise ValueError(
        f"A layer4 map {height} rows high cuts into {len(bounds)} stripes of {size} rows "
        f"(torch.chunk), not {num_stripes}: use taller images (config.data.image_height; "
        f"MMN's 384 gives a 24-row map).")
  return bounds


@struct.dataclass
class StripeOutputs:
  """Outputs of MMN's stripe head for a batch of N rows.

  Attributes:
    pooled: [S, N, D] pre-BN stripe features f_k (the triplet loss's and DCL's input).
    bn: [S, N, D] BNNeck outputs g_k.
    logits: [S, N, num_classes] classifier scores of g_k.
  """

  pooled: jax.Array
  bn: jax.Array
  logits: jax.Array

  def features(self) -> dict[str, jax.Array]:
    """Evaluation features of rows [originals; their middle images] (one modality).

    "pool" / "bn": L2(concat_k f_k) / L2(concat_k g_k) of the originals ([b, S·D], L2 without
    epsilon over the whole concatenation); "pool_middle" / "bn_middle": the same of their
    middle images; "bn_sum" = bn + bn_middle, not re-normalised, whose dot products are the
    reference `test.py`'s sum of its four similarity matrices.
    """
    count = self.pooled.shape[1] // 2

    def concatenated(stripes):
      return l2_normalize(jnp.concatenate(list(stripes), axis=-1))
    pool, bn = concatenated(self.pooled), concatenated(self.bn)
    return {"pool": pool[:count], "bn": bn[:count], "pool_middle": pool[count:],
            "bn_middle": bn[count:], "bn_sum": bn[:count] + bn[count:]}


class MiddleModalityEncoder(nnx.Module):
  """One modality's half of the MMG: [B, H, W, 3] → [B, H, W, 1]."""

  def __init__(self, init_value: float, *, rngs: nnx.Rngs):
    constant = jax.nn.initializers.constant(init_value)
    self.encode = nnx.Conv(3, 1, (1, 1), kernel_init=constant,
                           bias_init=jax.nn.initializers.zeros, rngs=rngs)
    self.fc = nnx.Conv(1, 1, (1, 1), kernel_init=constant, bias_init=jax.nn.initializers.zeros,
                       rngs=rngs)
    self.bn = BatchNorm(1, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.bn(jax.nn.relu(self.fc(jax.nn.relu(self.encode(x.astype(jnp.float32))))))


class MMN(nnx.Module):
  """MMN's re-id network.

  Attributes:
    visible_stem, infrared_stem: :class:`Stem` s (reference ``visible_module.visible`` /
      ``thermal_module.thermal``).
    stages: shared :class:`ResNetStages` (``base_resnet.base.layer1``–``4``), last stride 1.
    visible_encoder, infrared_encoder: the MMG's :class:`MiddleModalityEncoder` s (reference
      ``encode1``/``fc1``/``bn1`` and ``encode2``/``fc2``/``bn2``).
    decoder: the MMG's shared 1×1 convolution 1 → 3 (reference ``decode``).
    bottlenecks, classifiers: one BNNeck and one classifier per stripe (``bottleneck{k}``,
      ``classifier{k}``).
    feature_dim: D per stripe (2048 for ResNet-50).
  """

  def __init__(self, num_classes: int, *, depth: int = 50, width: int = 64,
               last_stride: int = 1, num_stripes: int = 4, mmg_init: float = 0.333,
               dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs):
    self.visible_stem = Stem(width, dtype=dtype, rngs=rngs)
    self.infrared_stem = Stem(width, dtype=dtype, rngs=rngs)
    self.stages = ResNetStages(depth, width=width, last_stride=last_stride, dtype=dtype,
                               rngs=rngs)
    self.visible_encoder = MiddleModalityEncoder(mmg_init, rngs=rngs)
    self.infrared_encoder = MiddleModalityEncoder(mmg_init, rngs=rngs)
    self.decoder = nnx.Conv(1, 3, (1, 1), kernel_init=jax.nn.initializers.constant(mmg_init),
                            bias_init=jax.nn.initializers.zeros, rngs=rngs)
    self.feature_dim = self.stages.out_channels
    self.num_classes = num_classes
    self.num_stripes = num_stripes
    self.bottlenecks = nnx.List([
        BatchNorm(self.feature_dim, use_bias=False, scale_init=normal_init(0.01, mean=1.0),
                  rngs=rngs) for _ in range(num_stripes)])
    self.classifiers = nnx.List([
        nnx.Linear(self.feature_dim, num_classes, use_bias=False,
                   kernel_init=normal_init(0.001), rngs=rngs) for _ in range(num_stripes)])

  def middle_images(self, images: jax.Array, modality: str) -> jax.Array:
    """The MMG: [B, H, W, 3] normalised images of one modality → [B, H, W, 3] ≥ 0."""
    encoder = self.visible_encoder if modality == "visible" else self.infrared_encoder
    return jax.nn.relu(self.decoder(encoder(images)))

  def __call__(self, visible: jax.Array | None = None,
               infrared: jax.Array | None = None) -> StripeOutputs:
    """Runs originals and their middle images through the network.

    Args:
      visible: normalised visible images [Bv, H, W, 3], or None.
      infrared: normalised infrared images [Bi, H, W, 3], or None.

    Returns:
      :class:`StripeOutputs` over the rows [visible; M_visible; infrared; M_infrared] of the
      modalities given.
    """
    stem_outputs = []
    for images, modality, stem in ((visible, "visible", self.visible_stem),
                                   (infrared, "infrared", self.infrared_stem)):
      if images is not None:
        middle = self.middle_images(images, modality).astype(images.dtype)
        # One stem call: its BatchNorm sees the originals and their middle images together.
        stem_outputs.append(stem(jnp.concatenate([images, middle])))
    if not stem_outputs:
      raise ValueError("MMN needs visible and/or infrared images.")
    x = self.stages(jnp.concatenate(stem_outputs) if len(stem_outputs) > 1 else stem_outputs[0])
    pooled = jnp.stack([jnp.mean(x[:, start:stop].astype(jnp.float32), axis=(1, 2))
                        for start, stop in stripe_bounds(x.shape[1], self.num_stripes)])
    bn = jnp.stack([norm(stripe) for norm, stripe in zip(self.bottlenecks, pooled)])
    logits = jnp.stack([classifier(stripe) for classifier, stripe in zip(self.classifiers, bn)])
    return StripeOutputs(pooled=pooled, bn=bn, logits=logits)


def build_mmn(model_config: Any, num_classes: int, *, rngs: nnx.Rngs) -> MMN:
  """An :class:`MMN` from ``config.model`` (configs/mmn.py).

  Reads depth, width, last_stride, num_stripes, mmg_init and dtype, and refuses non-local
  blocks or GeM: the reference's arguments ask for them and its model never builds them.

  Raises:
    ValueError: `config.model.non_local` True or `config.model.pooling` not "avg".
  """
  if model_config.get("non_local", False) or model_config.get("pooling", "avg") != "avg":
    raise ValueError(
        "MMN's network has no non-local blocks and average-pools its stripes (spec mmn.md "
        "§0.1; the reference's 'on' arguments are never used): set config.model.non_local="
        "False and config.model.pooling=\"avg\".")
  return MMN(num_classes, depth=model_config.depth, width=model_config.width,
             last_stride=model_config.last_stride, num_stripes=model_config.num_stripes,
             mmg_init=model_config.mmg_init, dtype=jnp.dtype(model_config.dtype), rngs=rngs)
