"""Tests of vireid_jax.models.resnet (torchvision-exact structure, padding, init)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vireid_jax.models import (
    BasicBlock,
    Bottleneck,
    ResNet,
    ResNetStages,
    Stem,
    max_pool_3x3_s2,
    stage_channels,
)
from vireid_jax.models.resnet import conv2d


def _abstract_stage_shapes(stem, stages, image_hw):
  """Shapes of the stem output and of layer1..4, without computing anything."""

  def forward(stem, stages, x):
    outputs = [stem(x)]
    for stage in range(4):
      outputs.append(stages.run_stage(stage, outputs[-1]))
    return outputs

  image = jax.ShapeDtypeStruct((2, *image_hw, 3), jnp.float32)
  return [o.shape for o in nnx.eval_shape(forward, stem, stages, image)]


@pytest.fixture(scope='module')
def abstract_resnet50():
  """ResNet-50 with AGW's last stride 1, shapes only (tracing it takes seconds)."""
  return nnx.eval_shape(lambda: ResNet(50, 1000, last_stride=1, rngs=nnx.Rngs(0)))


def test_spatial_sizes_for_288x144_with_last_stride_1():
  # Spec §4.1: 144×72 after conv1 → 72×36 after the pool → 36×18 → 18×9 →
  # 18×9. Spatial sizes depend only on the strides, which ResNet-18 shares
  # with ResNet-50; a narrow ResNet-18 keeps the tracing cheap.
  stem = nnx.eval_shape(lambda: Stem(8, rngs=nnx.Rngs(0)))
  stages = nnx.eval_shape(lambda: ResNetStages(18, width=8, last_stride=1, rngs=nnx.Rngs(0)))
  assert _abstract_stage_shapes(stem, stages, (288, 144)) == [
      (2, 72, 36, 8),
      (2, 72, 36, 8),
      (2, 36, 18, 16),
      (2, 18, 9, 32),
      (2, 18, 9, 64),
  ]
  assert stage_channels(50) == (256, 512, 1024, 2048)


def test_last_stride_2_and_odd_sizes_round_up_like_pytorch():
  stem = nnx.eval_shape(lambda: Stem(8, rngs=nnx.Rngs(0)))
  stages = nnx.eval_shape(lambda: ResNetStages(18, width=8, last_stride=2, rngs=nnx.Rngs(0)))
  # 288×144 with last stride 2: layer4 9×5 (ceil of 18/2 and 9/2).
  assert _abstract_stage_shapes(stem, stages, (288, 144))[-1] == (2, 9, 5, 64)
  # 33×17: conv1 17×9, pool 9×5, then 9×5, 5×3, 3×2, 2×1 — PyTorch's sizes.
  assert _abstract_stage_shapes(stem, stages, (33, 17)) == [
      (2, 9, 5, 8),
      (2, 9, 5, 8),
      (2, 5, 3, 16),
      (2, 3, 2, 32),
      (2, 2, 1, 64),
  ]


def test_parameter_count_equals_torchvision(abstract_resnet50):
  def count(model):
    return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))

  # torchvision.models.resnet{18,50}(): 11,689,512 / 25,557,032 parameters.
  assert count(abstract_resnet50) == 25_557_032
  assert count(nnx.eval_shape(lambda: ResNet(18, rngs=nnx.Rngs(0)))) == 11_689_512
  assert abstract_resnet50.fc.kernel.shape == (2048, 1000)


def test_stem_conv_pads_3_on_every_side_not_same():
  # 8×8 input, stride 2, ones everywhere: output (i, j) counts the valid
  # input pixels under its window. Padding 3 puts the first window on rows
  # -3..3 (4 valid) and the last on rows 3..9 (5 valid); 'SAME' would pad
  # (2, 3): rows -2..4 (5 valid) and 4..10 (4 valid).
  conv = conv2d(1, 1, 7, stride=2, rngs=nnx.Rngs(0))
  conv.kernel[...] = jnp.ones_like(conv.kernel[...])
  y = conv(jnp.ones((1, 8, 8, 1)))
  assert y.shape == (1, 4, 4, 1)
  assert float(y[0, 0, 0, 0]) == 16.0
  assert float(y[0, 3, 3, 0]) == 25.0


def test_max_pool_pads_with_minus_infinity():
  x = -1.0 - jnp.arange(16.0).reshape(1, 4, 4, 1)  # all negative
  y = max_pool_3x3_s2(x)
  # Output (i, j) covers rows 2i-1..2i+1 and columns 2j-1..2j+1 clipped to
  # the image; the max of negatives is the top-left valid element. Zero
  # padding would have returned 0 on the border.
  np.testing.assert_array_equal(y[0, :, :, 0], [[-1.0, -2.0], [-5.0, -6.0]])


def test_conv_init_is_kaiming_normal_fan_out():
  conv = conv2d(16, 64, 3, rngs=nnx.Rngs(0))
  kernel = np.asarray(conv.kernel[...])
  assert kernel.shape == (3, 3, 16, 64)
  assert conv.bias is None
  expected_std = np.sqrt(2.0 / (3 * 3 * 64))  # fan_out, not fan_in (= 3·3·16)
  assert abs(kernel.std() / expected_std - 1) < 0.05
  assert abs(kernel.mean()) < 0.1 * expected_std
  bn = Stem(4, rngs=nnx.Rngs(0)).bn1
  np.testing.assert_array_equal(bn.scale[...], 1.0)
  np.testing.assert_array_equal(bn.bias[...], 0.0)


def test_bottleneck_has_stride_on_3x3_conv_and_projection_shortcut():
  block = nnx.eval_shape(lambda: Bottleneck(16, 8, stride=2, rngs=nnx.Rngs(0)))
  assert block.conv1.strides == (1, 1) and block.conv1.kernel.shape == (1, 1, 16, 8)
  assert block.conv2.strides == (2, 2) and block.conv2.kernel.shape == (3, 3, 8, 8)
  assert block.conv3.kernel.shape == (1, 1, 8, 32)
  assert block.downsample.conv.strides == (2, 2)
  assert block.downsample.conv.kernel.shape == (1, 1, 16, 32)
  output = nnx.eval_shape(lambda b, x: b(x), block, jax.ShapeDtypeStruct((2, 6, 4, 16), jnp.float32))
  assert output.shape == (2, 3, 2, 32)


def test_projection_only_when_shape_changes(abstract_resnet50):
  assert BasicBlock(8, 8, rngs=nnx.Rngs(0)).downsample is None
  assert BasicBlock(8, 16, stride=2, rngs=nnx.Rngs(0)).downsample is not None
  # ResNet-50's layer1 block 0 keeps stride 1 but widens 64 → 256.
  stages = abstract_resnet50.stages
  assert stages.layers[0][0].downsample is not None
  assert stages.layers[0][1].downsample is None
  assert stages.layers[2][0].conv2.strides == (2, 2)
  assert stages.layers[3][0].conv2.strides == (1, 1)  # last stride 1
  assert stage_channels(18, 8) == (8, 16, 32, 64)


class _Recorder(nnx.Module):
  """Inserted module that logs (its name, the shape it sees) and returns x."""

  log = []

  def __init__(self, name):
    self.name = name

  def __call__(self, x):
    _Recorder.log.append((self.name, x.shape))
    return x


def test_inserted_modules_run_after_the_requested_blocks():
  names = iter(['a', 'b', 'c'])
  stages = nnx.eval_shape(lambda: ResNetStages(
      18,
      width=4,
      insert_after={1: [0], 2: [1, 0]},
      make_inserted=lambda channels, rngs: _Recorder(f'{next(names)}{channels}'),
      rngs=nnx.Rngs(0),
  ))
  assert stages.insert_after == ((), (0,), (0, 1), ())
  _Recorder.log.clear()
  # Tracing is enough: the recorder logs while the forward is traced.
  nnx.eval_shape(lambda s, x: s(x), stages, jax.ShapeDtypeStruct((2, 8, 8, 4), jnp.float32))
  # After block 0 of layer2 the map is already strided and widened (4×4×8);
  # 'before' would have seen 8×8×4. Created in stage order, run in block order.
  assert _Recorder.log == [
      ('a8', (2, 4, 4, 8)),
      ('b16', (2, 2, 2, 16)),
      ('c16', (2, 2, 2, 16)),
  ]


def test_invalid_configuration_is_rejected():
  with pytest.raises(ValueError, match='depth'):
    ResNetStages(42, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match='last_stride'):
    nnx.eval_shape(lambda: ResNetStages(18, last_stride=3, rngs=nnx.Rngs(0)))
  with pytest.raises(ValueError, match='out of range'):
    nnx.eval_shape(
        lambda: ResNetStages(
            18, insert_after={0: [2]}, make_inserted=lambda c, r: _Recorder('x'), rngs=nnx.Rngs(0)
        )
    )
