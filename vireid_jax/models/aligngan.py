"""AlignGAN's eight networks (Wang et al., ICCV 2019; spec aligngan.md §2), NHWC.

The pixel alignment module works on 128×128 images in [−1, 1]:

* :class:`Generator` (G_rgb2ir, G_ir2rgb; §2.1): a StarGAN-style encoder / residual /
  decoder with zero padding, bias-free convs, 4×4/2 down-sampling convs with explicit
  symmetric padding (Flax's 'SAME' would pad (1, 2)), PyTorch-exact 4×4/2 transposed convs,
  and affine instance norms *with running statistics*: in evaluation mode the generator
  normalises with statistics accumulated over every training-mode call.
* :class:`Discriminator` (D_rgb, D_rgb_warmup, D_ir_warmup; §2.2): an unconditional PatchGAN
  with plain instance norms, raw scores.
* :class:`ConditionalDiscriminator` (D_ir; §2.3): judges an IR image together with an
  encoder feature map, resized bilinearly (no antialiasing) onto the image branch's grid.

The feature alignment module is :class:`Encoder` (torchvision ResNet to layer4, last stride
1, behind the differentiable 128×128 → 384×192 adapter of §1.2) and :class:`Head` (§2.4).
:class:`AlignGAN` holds all eight and computes the test feature of §5.1.

Initialisation (§2.5): G and D conv weights N(0, 0.02), D conv biases PyTorch's default
U(±1/√fan_in); generator IN γ = 1 (PyTorch ≥ 1.2; the reference's PyTorch 1.1 drew
γ ~ U(0, 1), a documented deviation); the head as `core/model.py`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from flax import struct
from jax.typing import DTypeLike

from vireid_jax.data.normalization import IMAGENET_MEAN, IMAGENET_STD
from vireid_jax.models.layers import (
    BatchNorm,
    ConvTranspose,
    InstanceNorm,
    average_pool,
    l2_normalize,
    normal_init,
    resize_bilinear,
    torch_default_uniform,
)
from vireid_jax.models.resnet import ResNetStages, Stem, stage_channels

# weights_init_normal (core/model.py): every conv and transposed conv weight.
GAN_CONV_INIT = normal_init(0.02)
# Discriminators' 4×4/2 convs halve the size: 128 → 64 → ... (PyTorch padding 1 each side).
STRIDE2_PADDING = ((1, 1), (1, 1))


def gan_conv(in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
             padding: int, use_bias: bool, dtype: DTypeLike, rngs: nnx.Rngs) -> nnx.Conv:
  """A square conv with explicit symmetric ``padding``, weights N(0, 0.02), and (when
  ``use_bias``) PyTorch's default bias init U(±1/√(C_in·k²))."""
  fan_in = in_channels * kernel_size * kernel_size
  return nnx.Conv(in_channels, out_channels, (kernel_size, kernel_size), strides=(stride, stride),
                  padding=((padding, padding), (padding, padding)), use_bias=use_bias,
                  kernel_init=GAN_CONV_INIT, bias_init=torch_default_uniform(fan_in),
                  dtype=dtype, param_dtype=jnp.float32, rngs=rngs)


def _generator_norm(channels: int) -> InstanceNorm:
  return InstanceNorm(channels, affine=True, track_running_stats=True)


class ResidualBlock(nnx.Module):
  """x + IN(conv3×3(ReLU(IN(conv3×3(x))))), no activation after the sum."""

  def __init__(self, channels: int, *, dtype: DTypeLike, rngs: nnx.Rngs):
    self.conv1 = gan_conv(channels, channels, 3, padding=1, use_bias=False, dtype=dtype, rngs=rngs)
    self.norm1 = _generator_norm(channels)
    self.conv2 = gan_conv(channels, channels, 3, padding=1, use_bias=False, dtype=dtype, rngs=rngs)
    self.norm2 = _generator_norm(channels)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = jax.nn.relu(self.norm1(self.conv1(x)))
    return x + self.norm2(self.conv2(y))


class Generator(nnx.Module):
  """G: ``[B, H, W, 3]`` in [−1, 1] -> ``[B, H, W, 3]`` in (−1, 1) (§2.1); H, W multiples of 4.

  conv7×7 → 2 × (conv4×4/2, channels ×2) → residual blocks → 2 × (transposed conv4×4/2,
  channels ÷2) → conv7×7 → tanh; IN (affine, running statistics) + ReLU after every conv but
  the last. Submodules (reference ``model.{i}``): ``input_conv`` (0), ``input_norm`` (1),
  ``down_convs[j]`` / ``down_norms[j]`` (3 + 3j / 4 + 3j), ``residual_blocks[b]`` (9 + b),
  ``up_convs[j]`` / ``up_norms[j]`` (9 + n + 3j / 10 + n + 3j), ``output_conv`` (9 + n + 6).
  """

  def __init__(self, conv_dim: int = 64, num_residual_blocks: int = 4, *,
               dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs):
    self.input_conv = gan_conv(3, conv_dim, 7, padding=3, use_bias=False, dtype=dtype, rngs=rngs)
    self.input_norm = _generator_norm(conv_dim)
    channels = conv_dim
    down_convs, down_norms = [], []
    for _ in range(2):
      down_convs.append(gan_conv(channels, 2 * channels, 4, stride=2, padding=1, use_bias=False,
                                 dtype=dtype, rngs=rngs))
      down_norms.append(_generator_norm(2 * channels))
      channels *= 2
    self.down_convs = nnx.List(down_convs)
    self.down_norms = nnx.List(down_norms)
    self.residual_blocks = nnx.List([ResidualBlock(channels, dtype=dtype, rngs=rngs)
                                     for _ in range(num_residual_blocks)])
    up_convs, up_norms = [], []
    for _ in range(2):
      up_convs.append(ConvTranspose(channels, channels // 2, 4, stride=2, padding=1,
                                    kernel_init=GAN_CONV_INIT, dtype=dtype, rngs=rngs))
      up_norms.append(_generator_norm(channels // 2))
      channels //= 2
    self.up_convs = nnx.List(up_convs)
    self.up_norms = nnx.List(up_norms)
    self.output_conv = gan_conv(channels, 3, 7, padding=3, use_bias=False, dtype=dtype, rngs=rngs)
    self.num_residual_blocks = num_residual_blocks

  def __call__(self, images: jax.Array) -> jax.Array:
    x = jax.nn.relu(self.input_norm(self.input_conv(images)))
    for conv, norm in zip(self.down_convs, self.down_norms):
      x = jax.nn.relu(norm(conv(x)))
    for block in self.residual_blocks:
      x = block(x)
    for conv, norm in zip(self.up_convs, self.up_norms):
      x = jax.nn.relu(norm(conv(x)))
    return jnp.tanh(self.output_conv(x).astype(jnp.float32))


def _leaky(x: jax.Array) -> jax.Array:
  return jax.nn.leaky_relu(x, 0.2)


def _plain_norm(channels: int) -> InstanceNorm:
  return InstanceNorm(channels)   # no affine, no running statistics: per instance always


class Discriminator(nnx.Module):
  """Unconditional PatchGAN D (§2.2): ``[B, H, W, 3]`` -> raw scores
  ``[B, H / 2^(L+1), W / 2^(L+1), 1]`` (4×4 at 128×128 with L = 4 hidden layers).

  conv4×4/2 (+bias) → LReLU 0.2 → L × (conv4×4/2 (+bias), channels ×2, IN, LReLU 0.2) →
  conv3×3 (no bias). Submodules: ``input_conv`` (``model.0``), ``hidden_convs[j]``
  (``model.{2 + 3j}``), ``score_conv`` (``conv_src``).
  """

  def __init__(self, conv_dim: int = 64, num_layers: int = 4, *,
               dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs):
    self.input_conv = gan_conv(3, conv_dim, 4, stride=2, padding=1, use_bias=True, dtype=dtype,
                               rngs=rngs)
    channels = conv_dim
    convs, norms = [], []
    for _ in range(num_layers):
      convs.append(gan_conv(channels, 2 * channels, 4, stride=2, padding=1, use_bias=True,
                            dtype=dtype, rngs=rngs))
      norms.append(_plain_norm(2 * channels))
      channels *= 2
    self.hidden_convs = nnx.List(convs)
    self.hidden_norms = nnx.List(norms)
    self.score_conv = gan_conv(channels, 1, 3, padding=1, use_bias=False, dtype=dtype, rngs=rngs)
    self.num_layers = num_layers

  def __call__(self, images: jax.Array) -> jax.Array:
    x = _leaky(self.input_conv(images))
    for conv, norm in zip(self.hidden_convs, self.hidden_norms):
      x = _leaky(norm(conv(x)))
    return self.score_conv(x).astype(jnp.float32)


class ConditionalDiscriminator(nnx.Module):
  """Joint D_ir (§2.3): (IR image ``[B, H, W, 3]``, encoder map ``[B, h, w, F]``) -> raw
  scores ``[B, H/32, W/32, 1]`` (4×4 at 128×128).

  Image branch: conv4×4/2 → LReLU, 2 × (conv4×4/2, IN, LReLU) → ``[B, H/8, W/8, 4c]``.
  Feature branch: conv1×1 F → c, LReLU, bilinear resize to ``[H/8, W/8]`` (the reference's
  fixed 16×16 at 128×128; 24×12 → 16×16 down-samples the rows, without antialiasing).
  Joint: concatenated channels → 2 × (conv4×4/2, IN, LReLU) → conv3×3 (no bias). All convs
  but the last have biases. Submodules: ``image_input_conv`` (``image_convs.0``),
  ``image_convs[j]`` (``image_convs.{2 + 3j}``), ``feature_conv`` (``feature_convs.0``),
  ``joint_convs[j]`` (``dis_convs.{3j}``), ``score_conv`` (``conv_src``).
  """

  def __init__(self, conv_dim: int = 64, feature_channels: int = 2048, *,
               dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs):
    conv = lambda i, o: gan_conv(i, o, 4, stride=2, padding=1, use_bias=True, dtype=dtype,
                                 rngs=rngs)
    self.image_input_conv = conv(3, conv_dim)
    self.image_convs = nnx.List([conv(conv_dim, 2 * conv_dim), conv(2 * conv_dim, 4 * conv_dim)])
    self.image_norms = nnx.List([_plain_norm(2 * conv_dim), _plain_norm(4 * conv_dim)])
    self.feature_conv = gan_conv(feature_channels, conv_dim, 1, padding=0, use_bias=True,
                                 dtype=dtype, rngs=rngs)
    joint = 4 * conv_dim + conv_dim
    self.joint_convs = nnx.List([conv(joint, 8 * conv_dim), conv(8 * conv_dim, 16 * conv_dim)])
    self.joint_norms = nnx.List([_plain_norm(8 * conv_dim), _plain_norm(16 * conv_dim)])
    self.score_conv = gan_conv(16 * conv_dim, 1, 3, padding=1, use_bias=False, dtype=dtype,
                               rngs=rngs)

  def __call__(self, images: jax.Array, feature_maps: jax.Array) -> jax.Array:
    x = _leaky(self.image_input_conv(images))
    for conv, norm in zip(self.image_convs, self.image_norms):
      x = _leaky(norm(conv(x)))
    features = _leaky(self.feature_conv(feature_maps.astype(x.dtype)))
    features = resize_bilinear(features, x.shape[1], x.shape[2]).astype(x.dtype)
    x = jnp.concatenate([x, features], axis=-1)
    for conv, norm in zip(self.joint_convs, self.joint_norms):
      x = _leaky(norm(conv(x)))
    return self.score_conv(x).astype(jnp.float32)


def encoder_input(images: jax.Array, height: int, width: int) -> jax.Array:
  """The reference's `process_images_4_encoder` (§1.2), differentiable.

  ``[B, h, w, 3]`` in [−1, 1] -> ``[B, height, width, 3]`` ImageNet-normalised: bilinear
  resize (half-pixel centres, no antialiasing), (x + 1) / 2, then (x − mean) / std.
  """
  x = (resize_bilinear(images.astype(jnp.float32), height, width) + 1.0) / 2.0
  return (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)


def from_imagenet_normalized(images: jax.Array) -> jax.Array:
  """ImageNet-normalised images (what the pipeline and evaluator give) -> [−1, 1], the pixel
  module's scale (the reference's ToTensor + Normalize(0.5, 0.5))."""
  return (images * jnp.asarray(IMAGENET_STD) + jnp.asarray(IMAGENET_MEAN)) * 2.0 - 1.0


class Encoder(nnx.Module):
  """torchvision ResNet up to layer4 with last stride 1 (§2.4), behind the §1.2 adapter.

  ``[B, h, w, 3]`` in [−1, 1] -> feature map ``[B, H/16, W/16, C]`` with (H, W) =
  ``input_size`` (24×12×2048 for ResNet-50 at 384×192). ``stem`` and ``stages`` are the
  reference's ``resnet_conv.{0, 1}`` and ``resnet_conv.{4..7}``; ImageNet weights load into
  them like any ResNet (`checkpoints.init_pretrained`). ``remat`` keeps only each residual
  block's input for the backward pass and recomputes the block's inside there, one block at a
  time (memory for compute; the values are the same). A single checkpoint around the whole
  backbone would not lower the peak: its backward pass recomputes every activation at once.
  """

  def __init__(self, depth: int = 50, width: int = 64, *, input_size: tuple[int, int] = (384, 192),
               remat: bool = False, dtype: DTypeLike = jnp.float32, rngs: nnx.Rngs):
    self.stem = Stem(width, dtype=dtype, rngs=rngs)
    self.stages = ResNetStages(depth, width=width, last_stride=1, dtype=dtype, rngs=rngs)
    self.out_channels = stage_channels(depth, width)[-1]
    self.input_size = tuple(input_size)
    self.remat = remat
    self.dtype = dtype

  def __call__(self, images: jax.Array) -> jax.Array:
    x = self.stem(encoder_input(images, *self.input_size).astype(self.dtype))
    if not self.remat:
      return self.stages(x)
    for stage in self.stages.layers:   # the encoder's stages hold no inserted modules
      for block in stage:
        x = nnx.remat(type(block).__call__)(block, x)
    return x


class Head(nnx.Module):
  """The reference's ``Embeder`` with one part (§2.4) on an encoder map ``[B, h, w, C]``.

  g = global average pool ``[B, C]``; classification: Dropout(0.5)(g) (training only) →
  Linear C→256 → BatchNorm1d → LeakyReLU(0.1) → Linear 256→classes; embedding: Linear
  C→256 on g (no dropout). Submodules: ``bottle_linear`` / ``bottle_norm``
  (``classifier0.bottle.{0, 1}``), ``classifier`` (``classifier0.classifier.0``),
  ``embedder`` (``embedder0``). Dropout is inverted dropout on an explicit key, active while
  ``deterministic`` is False (``model.train()``).
  """

  def __init__(self, in_features: int, num_classes: int, *, bottle_dim: int = 256,
               embedding_dim: int = 256, dropout: float = 0.5, rngs: nnx.Rngs):
    # kaiming_normal_(mode='fan_out') of a Linear: PyTorch's fan_out is out_features.
    self.bottle_linear = nnx.Linear(in_features, bottle_dim,
                                    kernel_init=normal_init(math.sqrt(2.0 / bottle_dim)),
                                    bias_init=jax.nn.initializers.zeros, rngs=rngs)
    self.bottle_norm = BatchNorm(bottle_dim, scale_init=normal_init(0.02, mean=1.0), rngs=rngs)
    self.classifier = nnx.Linear(bottle_dim, num_classes, kernel_init=normal_init(0.001),
                                 bias_init=jax.nn.initializers.zeros, rngs=rngs)
    default = torch_default_uniform(in_features)
    self.embedder = nnx.Linear(in_features, embedding_dim, kernel_init=default,
                               bias_init=default, rngs=rngs)
    self.dropout = dropout
    self.deterministic = False

  def __call__(self, feature_maps: jax.Array, dropout_key: jax.Array | None = None
               ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Returns (g ``[B, C]``, logits ``[B, classes]``, embedding ``[B, 256]``), float32."""
    pooled = average_pool(feature_maps)
    dropped = pooled
    if not self.deterministic and self.dropout > 0:
      if dropout_key is None:
        raise ValueError('Head in training mode needs a dropout_key (or model.eval()).')
      keep = jax.random.bernoulli(dropout_key, 1.0 - self.dropout, pooled.shape)
      dropped = jnp.where(keep, pooled / (1.0 - self.dropout), 0.0)
    bottle = jax.nn.leaky_relu(self.bottle_norm(self.bottle_linear(dropped)), 0.1)
    return pooled, self.classifier(bottle), self.embedder(pooled)


NETWORKS = ('g_rgb2ir', 'g_ir2rgb', 'd_rgb', 'd_ir', 'd_rgb_warmup', 'd_ir_warmup', 'encoder',
            'head')


class AlignGAN(nnx.Module):
  """The eight networks of AlignGAN, in the reference's `model_list` order (`NETWORKS`).

  ``translate``, ``d_rgb``, ``d_ir`` work on the pixel module's [−1, 1] scale; ``__call__``
  takes ImageNet-normalised images of one modality and returns the test feature (§5.1).
  """

  def __init__(self, *, g_rgb2ir: Generator, g_ir2rgb: Generator, d_rgb: Discriminator,
               d_ir: ConditionalDiscriminator, d_rgb_warmup: Discriminator,
               d_ir_warmup: Discriminator, encoder: Encoder, head: Head):
    self.g_rgb2ir = g_rgb2ir
    self.g_ir2rgb = g_ir2rgb
    self.d_rgb = d_rgb
    self.d_ir = d_ir
    self.d_rgb_warmup = d_rgb_warmup
    self.d_ir_warmup = d_ir_warmup
    self.encoder = encoder
    self.head = head

  def translate(self, images: jax.Array) -> jax.Array:
    """G_rgb2ir ``[B, H, W, 3]`` -> fake IR ``[B, H, W, 3]``, in the generator's mode."""
    return self.g_rgb2ir(images)

  def __call__(self, *, visible: jax.Array | None = None,
               infrared: jax.Array | None = None) -> 'TestOutputs':
    """The test feature (§5.1) of ImageNet-normalised images ``[B, H, W, 3]`` of one modality.

    Call in evaluation mode (``model.eval()`` or ``nnx.view(model, use_running_average=True)``):
    the generator then normalises with its running statistics, as the reference's test.
    """
    if (visible is None) == (infrared is None):
      raise ValueError('AlignGAN takes the images of exactly one modality: visible=... or '
                       'infrared=...')
    return test_outputs(self.g_rgb2ir, self.encoder, visible if infrared is None else infrared,
                        translate=infrared is None)


@struct.dataclass
class TestOutputs:
  """AlignGAN's test-time output: ``pooled`` ``[B, C]`` = g(x) + g(flip(x)), unnormalised."""

  pooled: jax.Array

  def features(self) -> dict[str, jax.Array]:
    """``{"pool": [B, C]}``, L2-normalised. There is no BNNeck, so no "bn"."""
    return {'pool': l2_normalize(self.pooled)}


def test_outputs(g_rgb2ir: Generator, encoder: Encoder, images: jax.Array, *,
                 translate: bool) -> TestOutputs:
  """The reference's test feature (§5.1, `core/test.py`) before normalisation.

  ImageNet-normalised images → [−1, 1] → (RGB only) G_rgb2ir in its current mode → x; then
  g(x) + g(flip(x)) — the flip comes *after* the translation — with g the average-pooled
  encoder map (the head's pooled feature, which dropout does not touch at test time).
  """
  x = from_imagenet_normalized(images)
  if translate:
    x = g_rgb2ir(x)
  pooled = average_pool(encoder(jnp.concatenate([x, jnp.flip(x, axis=2)])))
  unflipped, flipped = jnp.split(pooled, 2)
  return TestOutputs(unflipped + flipped)


def build_aligngan(config, num_classes: int, *, rngs: nnx.Rngs) -> AlignGAN:
  """AlignGAN from the experiment config (`configs/aligngan.py`).

  Args:
    config: ``config.model`` (encoder ``depth``, ``width``, ``dtype``) and ``config.aligngan``
      (``generator_dim``, ``residual_blocks``, ``discriminator_dim``,
      ``discriminator_layers``, ``encoder_input_size`` (H, W), ``remat_encoder``,
      ``bottle_dim``, ``embedding_dim``, ``dropout``).
    num_classes: training identities.
  """
  model_config, gan_config = config.model, config.aligngan
  dtype = jnp.dtype(model_config.get('dtype', 'float32'))
  encoder = Encoder(model_config.depth, model_config.width,
                    input_size=tuple(gan_config.encoder_input_size),
                    remat=gan_config.get('remat_encoder', False), dtype=dtype, rngs=rngs)
  generator = lambda: Generator(gan_config.generator_dim, gan_config.residual_blocks,
                                dtype=dtype, rngs=rngs)
  discriminator = lambda: Discriminator(gan_config.discriminator_dim,
                                        gan_config.discriminator_layers, dtype=dtype, rngs=rngs)
  return AlignGAN(
      g_rgb2ir=generator(), g_ir2rgb=generator(), d_rgb=discriminator(),
      d_ir=ConditionalDiscriminator(gan_config.discriminator_dim, encoder.out_channels,
                                    dtype=dtype, rngs=rngs),
      d_rgb_warmup=discriminator(), d_ir_warmup=discriminator(), encoder=encoder,
      head=Head(encoder.out_channels, num_classes, bottle_dim=gan_config.bottle_dim,
                embedding_dim=gan_config.embedding_dim, dropout=gan_config.dropout,
                rngs=rngs))
