"""torchvision-exact ResNet (18/34/50/101/152) in Flax NNX, NHWC.

Matches ``torchvision.models.resnet`` (v1.5: the stride of a Bottleneck is
on its 3×3 conv) so that ImageNet weights can be imported:

* explicit symmetric padding — (3, 3) for the 7×7/2 stem conv, (1, 1) for
  3×3 convs and the 3×3/2 max-pool (padded with −inf). Flax's ``'SAME'``
  pads stride-2 layers asymmetrically and would shift every feature map;
* no conv biases; projection shortcut = 1×1 conv (with the stride) + BN;
* init: convs ``kaiming_normal_(mode='fan_out', nonlinearity='relu')``,
  BN γ = 1, β = 0, ``fc`` PyTorch's default Linear init.

Parameters are always float32; ``dtype`` is the compute dtype of the convs.
BatchNorm statistics are computed in float32 (see :class:`BatchNorm`).

Naming, for a PyTorch state-dict importer (torch name → NNX path)::

  conv1 / bn1                      → stem.conv1 / stem.bn1
  layer{s+1}.{j}.conv1|bn1|...     → stages.layers[s][j].conv1|bn1|...
  layer{s+1}.{j}.downsample.0 / .1 → stages.layers[s][j].downsample.conv / .bn
  fc                               → fc            (plain ResNet only)

  conv weight [O, I, kh, kw] → kernel [kh, kw, I, O];  Linear weight [O, I]
  → kernel [I, O];  BN weight/bias/running_mean/running_var →
  scale/bias/mean/var (num_batches_tracked is dropped).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Union

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import DTypeLike

from vireid_jax.models.layers import (
    BatchNorm,
    kaiming_normal_fan_out,
    torch_default_uniform,
)

# torchvision's kaiming_normal_(mode='fan_out', nonlinearity='relu').
conv_kernel_init = kaiming_normal_fan_out()


def conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    dtype: DTypeLike = jnp.float32,
    rngs: nnx.Rngs,
) -> nnx.Conv:
  """Bias-free square conv with torchvision's padding ``kernel_size // 2``."""
  pad = kernel_size // 2
  return nnx.Conv(
      in_channels,
      out_channels,
      (kernel_size, kernel_size),
      strides=(stride, stride),
      padding=((pad, pad), (pad, pad)),
      use_bias=False,
      kernel_init=conv_kernel_init,
      dtype=dtype,
      param_dtype=jnp.float32,
      rngs=rngs,
  )


def max_pool_3x3_s2(x: jax.Array) -> jax.Array:
  """3×3/2 max-pool with one row/column of −inf padding on every side.

  ``[B, H, W, C]`` -> ``[B, ⌊(H−1)/2⌋+1, ⌊(W−1)/2⌋+1, C]``.
  """
  # A Python scalar init lets JAX recognise the max monoid (differentiable
  # reduce_window_max); a traced array init would not be.
  return jax.lax.reduce_window(
      x,
      -jnp.inf,
      jax.lax.max,
      window_dimensions=(1, 3, 3, 1),
      window_strides=(1, 2, 2, 1),
      padding=((0, 0), (1, 1), (1, 1), (0, 0)),
  )


class Stem(nnx.Module):
  """conv1 (7×7/2, pad 3) → bn1 → ReLU → max-pool (3×3/2, pad 1).

  ``[B, H, W, 3]`` -> ``[B, H/4, W/4, width]`` (sizes rounded up).
  """

  def __init__(
      self,
      width: int = 64,
      *,
      in_channels: int = 3,
      dtype: DTypeLike = jnp.float32,
      rngs: nnx.Rngs,
  ):
    self.conv1 = conv2d(in_channels, width, 7, stride=2, dtype=dtype, rngs=rngs)
    self.bn1 = BatchNorm(width, rngs=rngs)
    self.out_channels = width

  def __call__(self, x: jax.Array) -> jax.Array:
    return max_pool_3x3_s2(jax.nn.relu(self.bn1(self.conv1(x))))


class Projection(nnx.Module):
  """Projection shortcut: 1×1 conv with the block's stride, then BN.

  torchvision's ``downsample`` Sequential: ``downsample.0`` → ``conv``,
  ``downsample.1`` → ``bn``.
  """

  def __init__(self, in_channels, out_channels, *, stride, dtype, rngs):
    self.conv = conv2d(in_channels, out_channels, 1, stride=stride, dtype=dtype, rngs=rngs)
    self.bn = BatchNorm(out_channels, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.bn(self.conv(x))


class BasicBlock(nnx.Module):
  """ResNet-18/34 block: 3×3 (stride) → BN → ReLU → 3×3 → BN, + shortcut, ReLU."""

  expansion = 1

  def __init__(
      self,
      in_channels: int,
      planes: int,
      *,
      stride: int = 1,
      dtype: DTypeLike = jnp.float32,
      rngs: nnx.Rngs,
  ):
    out_channels = planes * self.expansion
    self.conv1 = conv2d(in_channels, planes, 3, stride=stride, dtype=dtype, rngs=rngs)
    self.bn1 = BatchNorm(planes, rngs=rngs)
    self.conv2 = conv2d(planes, planes, 3, dtype=dtype, rngs=rngs)
    self.bn2 = BatchNorm(planes, rngs=rngs)
    self.downsample = (
        Projection(in_channels, out_channels, stride=stride, dtype=dtype, rngs=rngs)
        if stride != 1 or in_channels != out_channels
        else None
    )
    self.out_channels = out_channels

  def __call__(self, x: jax.Array) -> jax.Array:
    shortcut = x if self.downsample is None else self.downsample(x)
    y = jax.nn.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    return jax.nn.relu(y + shortcut)


class Bottleneck(nnx.Module):
  """ResNet-50/101/152 block: 1×1 → 3×3 (stride) → 1×1 (×4 channels), + shortcut.

  The stride sits on the 3×3 conv (torchvision "v1.5"), as in the reference.
  """

  expansion = 4

  def __init__(
      self,
      in_channels: int,
      planes: int,
      *,
      stride: int = 1,
      dtype: DTypeLike = jnp.float32,
      rngs: nnx.Rngs,
  ):
    out_channels = planes * self.expansion
    self.conv1 = conv2d(in_channels, planes, 1, dtype=dtype, rngs=rngs)
    self.bn1 = BatchNorm(planes, rngs=rngs)
    self.conv2 = conv2d(planes, planes, 3, stride=stride, dtype=dtype, rngs=rngs)
    self.bn2 = BatchNorm(planes, rngs=rngs)
    self.conv3 = conv2d(planes, out_channels, 1, dtype=dtype, rngs=rngs)
    self.bn3 = BatchNorm(out_channels, rngs=rngs)
    self.downsample = (
        Projection(in_channels, out_channels, stride=stride, dtype=dtype, rngs=rngs)
        if stride != 1 or in_channels != out_channels
        else None
    )
    self.out_channels = out_channels

  def __call__(self, x: jax.Array) -> jax.Array:
    shortcut = x if self.downsample is None else self.downsample(x)
    y = jax.nn.relu(self.bn1(self.conv1(x)))
    y = jax.nn.relu(self.bn2(self.conv2(y)))
    y = self.bn3(self.conv3(y))
    return jax.nn.relu(y + shortcut)


Block = Union[type[BasicBlock], type[Bottleneck]]

# depth -> (block type, number of blocks in layer1..layer4), as torchvision.
RESNET_CONFIGS: dict[int, tuple[Block, tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def resnet_config(depth: int) -> tuple[Block, tuple[int, int, int, int]]:
  """(block type, blocks per stage) of a ResNet depth."""
  if depth not in RESNET_CONFIGS:
    raise ValueError(f'Unsupported ResNet depth {depth}; choose from {sorted(RESNET_CONFIGS)}.')
  return RESNET_CONFIGS[depth]


def stage_channels(depth: int, width: int = 64) -> tuple[int, int, int, int]:
  """Output channels of layer1..layer4, e.g. (256, 512, 1024, 2048) for R-50."""
  block, _ = resnet_config(depth)
  return tuple(width * 2**s * block.expansion for s in range(4))


def after_last_blocks(blocks_per_stage: Sequence[int],
                      per_stage: Sequence[int]) -> dict[int, tuple[int, ...]]:
  """Block indices after the last k blocks of each stage: ``insert_after`` of ResNetStages.

  AGW's non-local blocks and MCJA's adapters both go after the last (0, 2, 3, 0) blocks: for
  ResNet-50 (3, 4, 6, 3) that is {1: (2, 3), 2: (3, 4, 5)}. Stages with fewer blocks than
  requested (ResNet-18's 2-block stages) get one after every block, i.e. k is clipped to the
  stage length.
  """
  return {
      stage: tuple(range(max(n - k, 0), n))
      for stage, (n, k) in enumerate(zip(blocks_per_stage, per_stage))
      if k > 0
  }


# Factory of a module inserted after a residual block: (channels, rngs) -> module
# mapping [B, H, W, channels] to the same shape.
InsertFactory = Callable[[int, nnx.Rngs], nnx.Module]


class ResNetStages(nnx.Module):
  """layer1..layer4 of a ResNet, optionally with modules inserted between blocks.

  ``layers[s][j]`` is block j of stage s (torchvision ``layer{s+1}.{j}``).
  Modules created by ``make_inserted`` run on the output of the blocks listed in
  ``insert_after[s]`` (after that block's final ReLU) and feed the next block;
  they are stored in order of position as ``inserted[s][k]`` (the AGW
  reference's ``NL_{s+1}.{k}``).

  ``[B, H, W, width]`` (stem output) -> ``[B, H/8, W/8, 8·width·expansion]``
  with ``last_stride=2``, or ``H/4 × W/4`` spatially with ``last_stride=1``
  (sizes rounded up at every stride).
  """

  def __init__(
      self,
      depth: int = 50,
      *,
      width: int = 64,
      last_stride: int = 2,
      insert_after: Mapping[int, Sequence[int]] | None = None,
      make_inserted: InsertFactory | None = None,
      dtype: DTypeLike = jnp.float32,
      rngs: nnx.Rngs,
  ):
    """Creates the four stages.

    Args:
      depth: 18, 34, 50, 101 or 152.
      width: channels of the stem; stage s has ``width·2^s`` planes.
      last_stride: stride of layer4 (1 keeps layer3's resolution, as AGW).
      insert_after: stage index (0-based) -> block indices (0-based) after
        which a module from ``make_inserted`` is applied.
      make_inserted: ``(channels, rngs) -> module``; required with
        ``insert_after``.
      dtype: compute dtype.
      rngs: supplies the ``params`` keys.
    """
    if last_stride not in (1, 2):
      raise ValueError(f'last_stride must be 1 or 2, got {last_stride}.')
    block_type, blocks_per_stage = resnet_config(depth)
    insert_after = dict(insert_after or {})
    if insert_after and make_inserted is None:
      raise ValueError('insert_after needs make_inserted.')

    strides = (1, 2, 2, last_stride)
    in_channels = width
    layers, inserted, positions = [], [], []
    for stage, (num_blocks, stride) in enumerate(zip(blocks_per_stage, strides)):
      planes = width * 2**stage
      blocks = []
      for j in range(num_blocks):
        blocks.append(
            block_type(in_channels, planes, stride=stride if j == 0 else 1, dtype=dtype, rngs=rngs)
        )
        in_channels = planes * block_type.expansion
      layers.append(nnx.List(blocks))
      stage_positions = tuple(sorted(set(insert_after.get(stage, ()))))
      if any(not 0 <= j < num_blocks for j in stage_positions):
        raise ValueError(
            f'insert_after[{stage}] = {stage_positions} out of range for {num_blocks} blocks.'
        )
      positions.append(stage_positions)
      inserted.append(nnx.List([make_inserted(in_channels, rngs) for _ in stage_positions]))

    self.layers = nnx.List(layers)
    self.inserted = nnx.List(inserted)
    self.insert_after = tuple(positions)
    self.out_channels = in_channels

  def run_stage(self, stage: int, x: jax.Array) -> jax.Array:
    """Runs stage ``stage`` (0-based) including its inserted modules."""
    positions = self.insert_after[stage]
    for j, block in enumerate(self.layers[stage]):
      x = block(x)
      if j in positions:
        x = self.inserted[stage][positions.index(j)](x)
    return x

  def __call__(self, x: jax.Array) -> jax.Array:
    """Stem output ``[B, H, W, width]`` -> layer4 output ``[B, H', W', C']``."""
    for stage in range(len(self.layers)):
      x = self.run_stage(stage, x)
    return x


class ResNet(nnx.Module):
  """Plain torchvision ResNet classifier: stem → layer1..4 → average pool → fc.

  ``[B, H, W, 3]`` -> logits ``[B, num_classes]``. For parity tests against
  torchvision (ImageNet weights: ``width=64``, ``last_stride=2``).
  """

  def __init__(
      self,
      depth: int = 50,
      num_classes: int = 1000,
      *,
      width: int = 64,
      last_stride: int = 2,
      dtype: DTypeLike = jnp.float32,
      rngs: nnx.Rngs,
  ):
    self.stem = Stem(width, dtype=dtype, rngs=rngs)
    self.stages = ResNetStages(depth, width=width, last_stride=last_stride, dtype=dtype, rngs=rngs)
    features = self.stages.out_channels
    init = torch_default_uniform(features)
    self.fc = nnx.Linear(
        features, num_classes, kernel_init=init, bias_init=init, rngs=rngs
    )

  def __call__(self, x: jax.Array) -> jax.Array:
    x = self.stages(self.stem(x))
    return self.fc(jnp.mean(x.astype(jnp.float32), axis=(1, 2)))
