"""AGW cross-modality baseline network (spec §4.2–4.5).

Two modality-specific ResNet stems (visible, infrared) → shared layer1..4
with non-local blocks → GeM (or average, or max: DAN) pooling → BNNeck → bias-free
classifier.

The forward pass returns :class:`~vireid_jax.models.outputs.ReidOutputs`
(pooled feature, BNNeck feature, logits) in both modes; training reads
``.pooled`` and ``.logits``, evaluation ``.features()`` (the L2-normalised
"pool" and "bn" embeddings). Modes follow NNX's convention and only switch
the BatchNorms: ``model.train()`` (the initial state) / ``model.eval()`` set
``use_running_average`` on every BatchNorm, and ``nnx.view(model,
use_running_average=True)`` gives an evaluation view without mutating
``model``.

PyTorch key maps of the reference ``embed_net``: :mod:`vireid_jax.models.agw_pytorch`.
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import DTypeLike

from vireid_jax.models.layers import (
    BatchNorm,
    GeneralizedMeanPooling,
    NonLocalBlock,
    NonLocalInner,
    average_pool,
    max_pool,
    normal_init,
)
from vireid_jax.models.outputs import ReidOutputs
from vireid_jax.models.resnet import ResNetStages, Stem, after_last_blocks, resnet_config

# Number of non-local blocks after the last blocks of layer1..layer4 (the
# reference's non_layers = [0, 2, 3, 0]).
NON_LOCAL_PER_STAGE = (0, 2, 3, 0)

# config.model.pooling -> global pooling [B, H, W, C] -> [B, C] ('gem' is the module's own GeM).
POOLING = {'gem': None, 'avg': average_pool, 'max': max_pool}


class AGW(nnx.Module):
  """AGW two-stream re-id network.

  Attributes:
    visible_stem, infrared_stem: separate :class:`Stem` s (conv1, bn1, ReLU,
      max-pool); reference ``visible_module`` / ``thermal_module``.
    stages: shared :class:`ResNetStages`; non-local blocks are
      ``stages.inserted[1][k]`` / ``[2][k]`` (reference ``NL_2.k`` / ``NL_3.k``).
    bottleneck: BNNeck, BatchNorm over ``[B, D]`` with γ ~ N(1, 0.01) and
      no β (the reference's β is frozen at 0, which is the same thing).
    classifier: bias-free Linear D → num_classes, W ~ N(0, 0.001).
    gem: GeM pooling; ``gem.p`` is a parameter only with ``gem_learnable``.
    feature_dim: D = 8·width·expansion (2048 for ResNet-50, width 64).
  """

  def __init__(
      self,
      num_classes: int,
      *,
      depth: int = 50,
      width: int = 64,
      last_stride: int = 1,
      non_local: bool = True,
      non_local_inner: NonLocalInner | int = 'reference',
      pooling: Literal['gem', 'avg', 'max'] = 'gem',
      gem_learnable: bool = False,
      dtype: DTypeLike = jnp.float32,
      rngs: nnx.Rngs,
  ):
    """Creates the network (random init; ImageNet weights are imported separately).

    Args:
      num_classes: number of training identities (395 SYSU, 206 RegDB, 713 LLCM).
      depth: ResNet depth (18, 34, 50, 101, 152).
      width: stem channels (64 for the real model; tiny tests use less).
      last_stride: stride of layer4 (1 in AGW: 288×144 → 18×9).
      non_local: add the five non-local blocks ('agw'); False for 'base'.
      non_local_inner: inner width of the non-local blocks, see
        :class:`NonLocalBlock` ('reference' = 1).
      pooling: 'gem' (p = 3), 'avg' (the 'base' method) or 'max' (DAN).
      gem_learnable: make GeM's p a trainable parameter (initialised to 3,
        in the backbone LR group) instead of the reference's constant.
      dtype: compute dtype of the backbone; parameters, pooling, BNNeck and
        classifier are float32.
      rngs: supplies the ``params`` keys.
    """
    if pooling not in POOLING:
      raise ValueError(f"config.model.pooling must be one of {sorted(POOLING)}, got {pooling!r}")
    _, blocks_per_stage = resnet_config(depth)
    self.visible_stem = Stem(width, dtype=dtype, rngs=rngs)
    self.infrared_stem = Stem(width, dtype=dtype, rngs=rngs)
    insert_after = (after_last_blocks(blocks_per_stage, NON_LOCAL_PER_STAGE) if non_local
                    else None)
    self.stages = ResNetStages(
        depth,
        width=width,
        last_stride=last_stride,
        insert_after=insert_after,
        make_inserted=lambda channels, r: NonLocalBlock(
            channels, inner=non_local_inner, dtype=dtype, rngs=r
        ),
        dtype=dtype,
        rngs=rngs,
    )
    self.pooling = pooling
    self.gem = GeneralizedMeanPooling(p=3.0, eps=1e-12, learnable=gem_learnable)
    self.feature_dim = self.stages.out_channels
    self.num_classes = num_classes
    self.bottleneck = BatchNorm(
        self.feature_dim,
        use_bias=False,
        scale_init=normal_init(0.01, mean=1.0),
        rngs=rngs,
    )
    self.classifier = nnx.Linear(
        self.feature_dim,
        num_classes,
        use_bias=False,
        kernel_init=normal_init(0.001),
        rngs=rngs,
    )

  def backbone_features(
      self, visible: jax.Array | None = None, infrared: jax.Array | None = None
  ) -> jax.Array:
    """Stems → concatenation (visible first) → shared stages → pooling.

    The concatenation happens before the shared layers on purpose: their
    BatchNorms must see the mixed RGB+IR batch, as in the reference.

    Args:
      visible: visible images ``[Bv, H, W, 3]`` or None.
      infrared: infrared images ``[Bi, H, W, 3]`` or None.

    Returns:
      Pooled features ``[Bv + Bi, D]`` (float32, not normalised).
    """
    stem_outputs = []
    if visible is not None:
      stem_outputs.append(self.visible_stem(visible))
    if infrared is not None:
      stem_outputs.append(self.infrared_stem(infrared))
    if not stem_outputs:
      raise ValueError('AGW needs visible and/or infrared images.')
    x = jnp.concatenate(stem_outputs, axis=0) if len(stem_outputs) > 1 else stem_outputs[0]
    x = self.stages(x)
    return self.gem(x) if self.pooling == 'gem' else POOLING[self.pooling](x)

  def __call__(
      self, visible: jax.Array | None = None, infrared: jax.Array | None = None
  ) -> ReidOutputs:
    """Runs the network on one or both modalities.

    The same outputs in both modes; the mode only decides whether the
    BatchNorms (BNNeck included) use batch or running statistics.

    Args:
      visible: normalised visible images ``[Bv, H, W, 3]`` float32, or None.
      infrared: normalised infrared images ``[Bi, H, W, 3]``, or None.

    Returns:
      :class:`ReidOutputs` over ``B = Bv + Bi`` rows (visible rows first):
      ``pooled`` ``[B, D]``, the raw pre-BN feature (for the triplet loss);
      ``bn`` ``[B, D]`` = BNNeck(pooled); ``logits`` ``[B, num_classes]`` =
      classifier(bn). ``.features()`` gives ``{"pool": l2_normalize(pooled),
      "bn": l2_normalize(bn)}``, the reference's "POOL" and "FC" evaluation
      features.
    """
    pooled = self.backbone_features(visible, infrared)
    bn = self.bottleneck(pooled)
    return ReidOutputs(pooled=pooled, bn=bn, logits=self.classifier(bn))


def build_agw(model_config: Any, num_classes: int, *, rngs: nnx.Rngs) -> AGW:
  """An :class:`AGW` from the ``config.model`` block (``configs/default.py``).

  Reads depth, width, last_stride, non_local, non_local_inner, pooling,
  dtype and, when present, gem_learnable (older configs lack it: False).
  ``pretrained`` is not read here: weights are imported by
  :mod:`vireid_jax.checkpoints` (key maps in :mod:`vireid_jax.models.agw_pytorch`).

  Args:
    model_config: ``config.model`` (a ConfigDict or any attribute container).
    num_classes: number of training identities.
    rngs: supplies the ``params`` keys.
  """
  return AGW(
      num_classes,
      depth=model_config.depth,
      width=model_config.width,
      last_stride=model_config.last_stride,
      non_local=model_config.non_local,
      non_local_inner=model_config.non_local_inner,
      pooling=model_config.pooling,
      gem_learnable=bool(getattr(model_config, 'gem_learnable', False)),
      dtype=jnp.dtype(model_config.dtype),
      rngs=rngs,
  )
