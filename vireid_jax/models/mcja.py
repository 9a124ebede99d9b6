"""MCJA's network: one modality-agnostic ResNet with Modality Distribution Adapters (spec mcja.md §2–3).

Both modalities go through the same network in one mixed batch: a torchvision ResNet stem and
stages with **last stride 2** (384×192 → a 12×6 final map), an MDA (`vireid_jax.models.mda`)
after the last n blocks of each stage, n = `mda_layers` (0, 2, 3, 0), GeM pooling with p = 3
fixed, a BNNeck without β and a bias-free classifier with PyTorch's default initialisation (not
AGW's N(1, 0.01) and N(0, 0.001)).

The forward pass returns :class:`~vireid_jax.models.outputs.ReidOutputs`: ``pooled`` = GeM,
``bn`` = BNNeck(GeM) (batch statistics in training, running ones in evaluation), ``logits`` =
classifier(bn). MCJA trains both its losses on ``bn``; ``.features()`` gives the evaluation
features {"pool", "bn"}, "bn" being the reference's test feature.

PyTorch key maps of the reference ``MCJA`` module: :mod:`vireid_jax.models.mcja_pytorch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import DTypeLike

from vireid_jax.models.layers import BatchNorm, GeneralizedMeanPooling, torch_default_uniform
from vireid_jax.models.mda import MDA
from vireid_jax.models.outputs import ReidOutputs
from vireid_jax.models.resnet import ResNetStages, Stem, after_last_blocks, resnet_config

# MDAs after the last blocks of layer1..layer4 (the reference's mda_layers = [0, 2, 3, 0]).
MDA_PER_STAGE = (0, 2, 3, 0)


class MCJA(nnx.Module):
  """MCJA's re-id network.

  Attributes:
    stem: the one :class:`Stem` (reference ``backbone.conv1`` / ``backbone.bn1``).
    stages: :class:`ResNetStages` (``backbone.layer1``–``layer4``); the MDAs are
      ``stages.inserted[s][k]`` (reference ``MDA_{s+1}.{k}``).
    gem: GeM pooling, p = 3 fixed, eps 1e-12 inside the root.
    bottleneck: BNNeck over ``[B, D]``, γ = 1 at init, no β (reference ``bn_neck``, whose β is
      frozen at 0).
    classifier: Linear D → num_classes, no bias, U(±1/√D) (reference ``classifier``).
    feature_dim: D (2048 for ResNet-50).
  """

  def __init__(
      self,
      num_classes: int,
      *,
      depth: int = 50,
      width: int = 64,
      last_stride: int = 2,
      mda_layers: Sequence[int] = MDA_PER_STAGE,
      mda_m: int = 2,
      mda_ratio: int = 2,
      dtype: DTypeLike = jnp.float32,
      rngs: nnx.Rngs,
  ):
    """Creates the network (random init; ImageNet weights are imported separately).

    Args:
      num_classes: training identities (395 SYSU-MM01, 206 RegDB, 713 LLCM).
      depth: ResNet depth (the reference: 50).
      width: stem channels (64 for the real model; the demo and tests use less).
      last_stride: stride of layer4 (MCJA keeps torchvision's 2).
      mda_layers: MDAs after the last n blocks of each stage, n clipped to the stage length.
      mda_m: M, spatial masks per MDA (2 on SYSU-MM01, 12 on RegDB).
      mda_ratio: the reference's `mda_ratio`, recorded without effect.
      dtype: compute dtype of the convolutions; parameters, the MDAs' softmax and sums,
        BatchNorms, GeM, BNNeck and classifier are float32.
      rngs: supplies the ``params`` keys.
    """
    if len(mda_layers) != 4 or any(n < 0 for n in mda_layers):
      raise ValueError(f'mda_layers must give 4 non-negative counts, got {tuple(mda_layers)}.')
    _, blocks_per_stage = resnet_config(depth)
    self.stem = Stem(width, dtype=dtype, rngs=rngs)
    self.stages = ResNetStages(
        depth,
        width=width,
        last_stride=last_stride,
        insert_after=after_last_blocks(blocks_per_stage, mda_layers),
        make_inserted=lambda channels, r: MDA(channels, num_maps=mda_m, ratio=mda_ratio,
                                              dtype=dtype, rngs=r),
        dtype=dtype,
        rngs=rngs,
    )
    self.gem = GeneralizedMeanPooling(p=3.0, eps=1e-12)
    self.feature_dim = self.stages.out_channels
    self.num_classes = num_classes
    self.bottleneck = BatchNorm(self.feature_dim, use_bias=False, rngs=rngs)
    self.classifier = nnx.Linear(self.feature_dim, num_classes, use_bias=False,
                                 kernel_init=torch_default_uniform(self.feature_dim), rngs=rngs)

  def __call__(self, images: jax.Array | None = None, *, visible: jax.Array | None = None,
               infrared: jax.Array | None = None) -> ReidOutputs:
    """Runs the network on one batch of images of either or both modalities.

    The network is modality-agnostic: ``visible`` and ``infrared`` are accepted so that every
    re-id model is called alike (:func:`vireid_jax.inference.extract_features` passes the
    modality's keyword), and they change nothing but the order of the rows.

    Args:
      images: normalised images ``[B, H, W, 3]`` of any modality mix, or None.
      visible, infrared: more images, appended in this order, or None.

    Returns:
      :class:`ReidOutputs` over all rows: ``pooled`` = GeM ``[B, D]``, ``bn`` = BNNeck
      ``[B, D]`` (the embedding both losses use), ``logits`` ``[B, num_classes]``.
    """
    parts = [x for x in (images, visible, infrared) if x is not None]
    if not parts:
      raise ValueError('MCJA needs images.')
    x = jnp.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
    pooled = self.gem(self.stages(self.stem(x)))
    bn = self.bottleneck(pooled)
    return ReidOutputs(pooled=pooled, bn=bn, logits=self.classifier(bn))


def build_mcja(model_config: Any, num_classes: int, *, rngs: nnx.Rngs) -> MCJA:
  """An :class:`MCJA` from the ``config.model`` block (``configs/mcja.py``).

  Reads depth, width, last_stride, mda_layers, mda_m, mda_ratio and dtype; ``pretrained`` is
  read by the method (ImageNet initialisation), not here.
  """
  return MCJA(
      num_classes,
      depth=model_config.depth,
      width=model_config.width,
      last_stride=model_config.last_stride,
      mda_layers=tuple(model_config.mda_layers),
      mda_m=model_config.mda_m,
      mda_ratio=model_config.mda_ratio,
      dtype=jnp.dtype(model_config.dtype),
      rngs=rngs,
  )
