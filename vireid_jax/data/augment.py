"""Training augmentations of every method, in TensorFlow, vectorised over a batch (tf.data side).

Every random draw is stateless and keyed by an explicit seed, which the pipeline derives from
(config seed, epoch, batch index, view): a resumed run augments each batch exactly as an
uninterrupted run does.

Random draws are made per row of the *global* batch: an op draws its parameters for all
`rows.total` rows and keeps those of `rows.start:rows.stop`, the rows this process holds (see
`Rows`). A process of a multi-host run therefore augments its share of the batch exactly as a
single process augments those rows of the whole batch. (Parameters are a few numbers per
image, so drawing them for the whole batch costs nothing.)

Each op is split into a parameter draw and a deterministic application where tests need to
feed it chosen parameters. Ops follow the references' transforms (spec baseline §3, mcja §1,
djanet §2.3); where a reference computes on uint8 PIL images (hue, grey, brightness, VIMC) the
op reproduces PIL's integer arithmetic, and ops that the reference applies to the normalised
tensor (erasing, channel exchange, grey) run after `normalize`. Where a spec marks a reference
bug, the reference behaviour is the default and a switch gives the corrected one (see
`channel_cutmix_boxes`).

`RECIPES` (name → one view's function) holds the methods' input recipes; which views each
stream gets (`config.data.augmentation`) is `views.AUGMENTATIONS`, and the references'
settings (erasing variants, fills, VIMC branches) are in `views`, shared with the jnp twins of
these ops (`device_augment`). A new recipe adds entries (`register_recipe`, its device twin,
`views.register_augmentation`); nothing else changes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, NamedTuple

import tensorflow as tf

from vireid_jax.data.normalization import IMAGENET_MEAN
from vireid_jax.data.normalization import IMAGENET_STD
# The settings both augmentation backends share, re-exported under their old home.
from vireid_jax.data.views import CAJ_ERASING_FILL  # noqa: F401
from vireid_jax.data.views import ERASING_VARIANTS
from vireid_jax.data.views import TENSOR_GREY_WEIGHTS
from vireid_jax.data.views import VIMC_BRANCHES  # noqa: F401
from vireid_jax.data.views import VIMC_CUTMIX
from vireid_jax.data.views import VIMC_HUE
from vireid_jax.data.views import VIMC_SPECTRUM
from vireid_jax.data.views import VIMC_WEIGHTED_GREY
from vireid_jax.data.views import ErasingVariant  # noqa: F401
from vireid_jax.data.views import check_erasing_variant
from vireid_jax.data.views import vimc_branch_switches  # noqa: F401



class Rows(NamedTuple):
  """The rows [start, stop) of a global batch of `total` rows that a call augments."""

  start: int
  stop: int
  total: int


def _rows_of(images: tf.Tensor, rows: Rows | None) -> Rows:
  if rows is not None:
    return rows
  batch_size = tf.shape(images)[0]
  return Rows(0, batch_size, batch_size)


def _uniform(seed: tf.Tensor, rows: Rows, tail=(), minval=0.0, maxval=1.0,
             dtype=tf.float32) -> tf.Tensor:
  """Uniform draws [rows.total, *tail] from `seed`, cut to this call's rows."""
  values = tf.random.stateless_uniform([rows.total, *tail], seed, minval=minval,
                                       maxval=maxval, dtype=dtype)
  return values[rows.start:rows.stop]


def _split(seed: tf.Tensor, num: int) -> tf.Tensor:
  return tf.random.experimental.stateless_split(seed, num=num)


def _broadcast_channel(plane: tf.Tensor) -> tf.Tensor:
  """[B, H, W] → [B, H, W, 3], the plane in every channel."""
  return tf.repeat(plane[..., None], 3, axis=-1)


def _select_rows(condition: tf.Tensor, if_true: tf.Tensor, if_false: tf.Tensor) -> tf.Tensor:
  """Per image: `if_true[i]` where `condition[i]` ([B] bool), else `if_false[i]`."""
  return tf.where(condition[:, None, None, None], if_true, if_false)


# --- Normalisation and geometry ------------------------------------------------------------


def normalize(images: tf.Tensor) -> tf.Tensor:
  """uint8 [..., H, W, 3] → float32 ImageNet-normalised (÷255, minus mean, over std).

  Computed as one multiply-add per pixel (x / (255 std) - mean / std): the input pipeline
  runs it on every training image, and it equals the three-step form to float rounding.
  """
  scale = [1.0 / (255.0 * std) for std in IMAGENET_STD]
  offset = [-mean / std for mean, std in zip(IMAGENET_MEAN, IMAGENET_STD)]
  return tf.cast(images, tf.float32) * tf.constant(scale) + tf.constant(offset)


def pad_crop_flip(images: tf.Tensor, seed: tf.Tensor, pad: int, *, fill: int = 0,
                  rows: Rows | None = None) -> tf.Tensor:
  """Pad, random crop and horizontal flip on uint8 images (spec baseline §3.1 steps 1–3).

  Pad `pad` pixels of value `fill` on every side (0 in AGW/CAJ/DJANet/MMN/DAN, 127 in MCJA),
  crop back to H x W at a uniform offset in {0..2*pad} per axis, then flip horizontally with
  probability 0.5; each image draws its own. (MCJA flips before the pad and crop; with offsets
  uniform over a symmetric range the two orders give the same distribution.)

  Args:
    images: [B, H, W, C] uint8.
    seed: [2] int32 stateless seed for this batch.
    pad: padding in pixels (10 at 288 x 144).
    fill: value of the padded pixels.
    rows: which rows of the global batch `images` are; None: the whole batch.

  Returns:
    [B, H, W, C] uint8.
  """
  rows = _rows_of(images, rows)
  height, width = images.shape[1], images.shape[2]
  seeds = _split(seed, 3)
  tops = _uniform(seeds[0], rows, minval=0, maxval=2 * pad + 1, dtype=tf.int32)
  lefts = _uniform(seeds[1], rows, minval=0, maxval=2 * pad + 1, dtype=tf.int32)
  flips = _uniform(seeds[2], rows) < 0.5

  padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], constant_values=fill)
  row_indices = tops[:, None] + tf.range(height)[None, :]
  cropped = tf.gather(padded, row_indices, axis=1, batch_dims=1)
  columns = lefts[:, None] + tf.range(width)[None, :]
  # Flipping a crop = reading its columns right to left.
  columns = tf.where(flips[:, None], tf.reverse(columns, axis=[1]), columns)
  return tf.gather(cropped, columns, axis=2, batch_dims=1)


# --- Rectangles: random erasing and MCJA's channel cutmix ------------------------------------


class Boxes(NamedTuple):
  """One rectangle per image, rows [top, top+height) x columns [left, left+width).

  A box of height 0 changes nothing (the op was skipped or no attempt fitted).
  """

  top: tf.Tensor
  left: tf.Tensor
  height: tf.Tensor
  width: tf.Tensor


def _draw_boxes(seed: tf.Tensor, rows: Rows, frame_height: int, frame_width: int, *,
                probability: float, area_range, aspect_range, log_aspect: bool,
                max_attempts: int) -> Boxes:
  """The references' rectangle search, for all images at once.

  Per image: with probability `probability`, up to `max_attempts` tries of area
  `U(area_range) * H * W` and aspect `r` (uniform or log-uniform in `aspect_range`), height
  round(sqrt(area * r)) and width round(sqrt(area / r)) (round half to even, as Python's
  `round`); the first try with height < H and width < W (strict) is kept and placed at a
  uniform top in {0..H-height} and left in {0..W-width}.
  """
  seeds = _split(seed, 5)
  apply = _uniform(seeds[0], rows) < probability
  area = frame_height * frame_width * _uniform(seeds[1], rows, (max_attempts,),
                                               *area_range)
  if log_aspect:
    aspect = tf.exp(_uniform(seeds[2], rows, (max_attempts,), math.log(aspect_range[0]),
                             math.log(aspect_range[1])))
  else:
    aspect = _uniform(seeds[2], rows, (max_attempts,), *aspect_range)
  heights = tf.cast(tf.round(tf.sqrt(area * aspect)), tf.int32)
  widths = tf.cast(tf.round(tf.sqrt(area / aspect)), tf.int32)
  fits = (heights < frame_height) & (widths < frame_width)
  first_fit = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)
  height = tf.gather(heights, first_fit, batch_dims=1)
  width = tf.gather(widths, first_fit, batch_dims=1)
  keep = apply & tf.reduce_any(fits, axis=1)
  height = tf.where(keep, height, 0)
  width = tf.where(keep, width, 0)
  top = tf.cast(tf.floor(_uniform(seeds[3], rows) *
                         tf.cast(frame_height - height + 1, tf.float32)), tf.int32)
  left = tf.cast(tf.floor(_uniform(seeds[4], rows) *
                          tf.cast(frame_width - width + 1, tf.float32)), tf.int32)
  return Boxes(top, left, height, width)


def box_masks(boxes: Boxes, height: int, width: int) -> tf.Tensor:
  """[B, H, W] bool, True inside each image's box (clipped to the image)."""
  row = tf.range(height)[None, :, None]
  column = tf.range(width)[None, None, :]
  def inside(start, size, position):
    return (position >= start[:, None, None]) & (position < (start + size)[:, None, None])
  return inside(boxes.top, boxes.height, row) & inside(boxes.left, boxes.width, column)


def erasing_boxes(seed: tf.Tensor, rows: Rows, height: int, width: int,
                  variant: str) -> Boxes:
  """The rectangles `random_erasing` would erase, [B] each (height 0: not erased)."""
  spec = ERASING_VARIANTS[variant]
  return _draw_boxes(seed, rows, height, width, probability=spec.probability,
                     area_range=spec.area_range, aspect_range=spec.aspect_range,
                     log_aspect=spec.log_aspect, max_attempts=spec.max_attempts)


def erase(images: tf.Tensor, boxes: Boxes, fill) -> tf.Tensor:
  """Writes `fill` [3] into each image's box. images: [B, H, W, 3] float32."""
  masks = box_masks(boxes, images.shape[1], images.shape[2])
  fill = tf.broadcast_to(tf.constant(fill, images.dtype), tf.shape(images))
  return tf.where(masks[..., None], fill, images)


def random_erasing(images: tf.Tensor, seed: tf.Tensor, variant: str, *,
                   rows: Rows | None = None) -> tf.Tensor:
  """Random erasing on normalised images [B, H, W, 3] float32, one of `ERASING_VARIANTS`.

  "llcm": the [LLCM] AGW fork's and MMN's (fill 0); "caj": CAJ's and DJANet's
  ChannelRandomErasing (fill `CAJ_ERASING_FILL`); "mcja": torchvision's, as MCJA sets it.
  """
  check_erasing_variant(variant)
  rows = _rows_of(images, rows)
  boxes = erasing_boxes(seed, rows, images.shape[1], images.shape[2], variant)
  return erase(images, boxes, ERASING_VARIANTS[variant].fill)


# --- Channel operations on the normalised tensor (CAJ, DJANet) -----------------------------


def tensor_grey(images: tf.Tensor) -> tf.Tensor:
  """[B, H, W, 3] → [B, H, W]: 0.2989 R + 0.5870 G + 0.1140 B."""
  return tf.tensordot(images, tf.constant(TENSOR_GREY_WEIGHTS, images.dtype), axes=[[3], [0]])


def copy_channel(images: tf.Tensor, channels: tf.Tensor) -> tf.Tensor:
  """Every channel of image i replaced by its channel `channels[i]` ([B] int32)."""
  return _broadcast_channel(tf.gather(images, channels, axis=3, batch_dims=1))


def channel_exchange(images: tf.Tensor, seed: tf.Tensor, *,
                     rows: Rows | None = None) -> tf.Tensor:
  """CAJ's ChannelExchange(gray=2), also DJANet's (spec baseline §3.3.2).

  A channel k uniform in {R, G, B} replaces all three; the grey branch of the reference is
  unreachable with gray=2 (its draw is inclusive 0..2), so it never happens here either.
  """
  rows = _rows_of(images, rows)
  channels = _uniform(seed, rows, minval=0, maxval=3, dtype=tf.int32)
  return copy_channel(images, channels)


def channel_adaptive_grey(images: tf.Tensor, seed: tf.Tensor, variant: str, *,
                          rows: Rows | None = None) -> tf.Tensor:
  """ChannelAdapGray for infrared images, normalised [B, H, W, 3] float32.

  variant "caj" (spec baseline §3.3.3): k uniform in {0, 1, 2, 3}; k < 3 copies channel k
  into all three (1/4 each); k = 3 gives the `tensor_grey` image with probability 1/2, else
  the image unchanged (1/8 each).
  variant "djanet" (spec djanet §2.3): channel 1 copied into channels 0 and 2 with
  probability 1/2; otherwise the grey image with probability 1/2; otherwise unchanged
  (1/2, 1/4, 1/4).
  """
  rows = _rows_of(images, rows)
  seeds = _split(seed, 2)
  grey = _broadcast_channel(tensor_grey(images))
  if variant == "caj":
    choice = _uniform(seeds[0], rows, minval=0, maxval=4, dtype=tf.int32)
    to_grey = _uniform(seeds[1], rows) <= 0.5
    copied = copy_channel(images, tf.minimum(choice, 2))
    out = _select_rows(choice < 3, copied, images)
    return _select_rows((choice == 3) & to_grey, grey, out)
  if variant == "djanet":
    first, second = _uniform(seeds[0], rows) < 0.5, _uniform(seeds[1], rows) < 0.5
    copied = copy_channel(images, tf.ones_like(first, tf.int32))
    return _select_rows(first, copied, _select_rows(second, grey, images))
  raise ValueError(f"Unknown ChannelAdapGray variant {variant!r}; expected 'caj' or 'djanet'.")


def channel_scale(images: tf.Tensor, seed: tf.Tensor, *, rows: Rows | None = None) -> tf.Tensor:
  """DJANet's ChannelT (spec djanet §2.3): with probability 1/2, channel c of the normalised
  image times 2 a_c, a_c ~ U(0.01, 0.5) independently per channel."""
  rows = _rows_of(images, rows)
  seeds = _split(seed, 2)
  apply = _uniform(seeds[0], rows) < 0.5
  scales = 2.0 * _uniform(seeds[1], rows, (3,), 0.01, 0.5)
  return _select_rows(apply, images * scales[:, None, None, :], images)


# --- PIL-arithmetic ops on uint8 images (DJANet, MCJA's VIMC) --------------------------------


def pil_grey(images: tf.Tensor) -> tf.Tensor:
  """PIL's `convert("L")` of uint8 [B, H, W, 3]: (19595 R + 38470 G + 7471 B + 2^15) >> 16.

  Returns [B, H, W] uint8 (ITU-R 601 luma 0.299/0.587/0.114 in PIL's fixed point).
  """
  pixels = tf.cast(images, tf.int32)
  luma = (pixels[..., 0] * 19595 + pixels[..., 1] * 38470 + pixels[..., 2] * 7471 + 32768)
  return tf.cast(tf.bitwise.right_shift(luma, 16), tf.uint8)


def random_grayscale(images: tf.Tensor, seed: tf.Tensor, probability: float = 0.5, *,
                     rows: Rows | None = None) -> tf.Tensor:
  """torchvision's RandomGrayscale on PIL images (DJANet's visible view V1): `pil_grey` in
  all three channels with probability `probability`. uint8 → uint8."""
  rows = _rows_of(images, rows)
  apply = _uniform(seed, rows) < probability
  return _select_rows(apply, _broadcast_channel(pil_grey(images)), images)


def pil_blend(first: tf.Tensor, second: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
  """PIL's `Image.blend(first, second, alpha)` per image: first + alpha (second - first) in
  float32, clipped to [0, 255] and truncated. uint8 [B, H, W, C], alpha [B]."""
  first = tf.cast(first, tf.float32)
  second = tf.cast(second, tf.float32)
  blended = first + alpha[:, None, None, None] * (second - first)
  return tf.cast(tf.floor(tf.clip_by_value(blended, 0.0, 255.0)), tf.uint8)


def random_brightness(images: tf.Tensor, seed: tf.Tensor, max_delta: float = 0.5, *,
                      rows: Rows | None = None) -> tf.Tensor:
  """torchvision's ColorJitter(brightness=max_delta) on PIL images (DJANet's view T2): a blend
  with black at a factor uniform in [1 - max_delta, 1 + max_delta]. uint8 → uint8."""
  rows = _rows_of(images, rows)
  factors = _uniform(seed, rows, minval=1.0 - max_delta, maxval=1.0 + max_delta)
  return pil_blend(tf.zeros_like(images), images, factors)


def _pil_rgb_to_hsv(images: tf.Tensor):
  """PIL's RGB → HSV conversion (libImaging `rgb2hsv_row`), uint8 in, int32 planes out.

  The casts reproduce its C arithmetic: `float` intermediates, `double` where a double
  constant enters, truncation to bytes.
  """
  f32, f64 = tf.float32, tf.float64
  pixels = tf.cast(images, f32)
  red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
  high = tf.reduce_max(pixels, axis=-1)
  low = tf.reduce_min(pixels, axis=-1)
  grey = tf.equal(high, low)
  spread = tf.where(grey, 1.0, high - low)
  saturation = spread / tf.where(grey, 1.0, high)
  red_c, green_c, blue_c = ((high - channel) / spread for channel in (red, green, blue))
  hue = tf.where(
      tf.equal(red, high), tf.cast(blue_c - green_c, f64),
      tf.where(tf.equal(green, high),
               2.0 + tf.cast(red_c, f64) - tf.cast(blue_c, f64),
               4.0 + tf.cast(green_c, f64) - tf.cast(red_c, f64)))
  hue = tf.cast(tf.cast(hue, f32), f64)
  hue = tf.cast(tf.math.floormod(hue / 6.0 + 1.0, 1.0), f32)
  def to_byte(x):
    return tf.clip_by_value(tf.cast(tf.cast(x, f64) * 255.0, tf.int32), 0, 255)
  hue_byte = tf.where(grey, 0, to_byte(hue))
  saturation_byte = tf.where(grey, 0, to_byte(saturation))
  return hue_byte, saturation_byte, tf.cast(high, tf.int32)


def _pil_hsv_to_rgb(hue: tf.Tensor, saturation: tf.Tensor, value: tf.Tensor) -> tf.Tensor:
  """PIL's HSV → RGB conversion (libImaging `hsv2rgb`), int32 planes in, uint8 [..., 3] out."""
  f32, f64 = tf.float32, tf.float64
  scaled = tf.cast(hue, f64) * 6.0 / 255.0
  sector = tf.floor(scaled)
  fraction = tf.cast(scaled - sector, f32)
  fs = tf.cast(tf.cast(saturation, f64) / 255.0, f32)
  v = tf.cast(value, f64)
  def rounded(x):  # C `round` of a non-negative double: half away from zero.
    return tf.clip_by_value(tf.cast(tf.floor(x + 0.5), tf.int32), 0, 255)
  p = rounded(v * (1.0 - tf.cast(fs, f64)))
  q = rounded(v * (1.0 - tf.cast(fs * fraction, f64)))  # a float product in the C code
  t = rounded(v * (1.0 - tf.cast(fs, f64) * (1.0 - tf.cast(fraction, f64))))
  value = tf.cast(value, tf.int32)
  sector = tf.math.floormod(tf.cast(sector, tf.int32), 6)
  candidates = tf.stack([
      tf.stack([value, t, p], -1), tf.stack([q, value, p], -1), tf.stack([p, value, t], -1),
      tf.stack([p, q, value], -1), tf.stack([t, p, value], -1), tf.stack([value, p, q], -1),
  ], axis=-2)
  rgb = tf.reduce_sum(candidates * tf.one_hot(sector, 6, dtype=tf.int32)[..., None], axis=-2)
  rgb = tf.where(tf.equal(saturation, 0)[..., None], _broadcast_channel(value), rgb)
  return tf.cast(rgb, tf.uint8)


def adjust_hue(images: tf.Tensor, shifts: tf.Tensor) -> tf.Tensor:
  """torchvision 0.9's `adjust_hue` on PIL images: the PIL hue byte plus `shifts[i]`, mod 256.

  images: [B, H, W, 3] uint8; shifts: [B] int32, the uint8 of the truncated hue_factor * 255.
  """
  hue, saturation, value = _pil_rgb_to_hsv(images)
  hue = tf.math.floormod(hue + shifts[:, None, None], 256)
  return _pil_hsv_to_rgb(hue, saturation, value)


def weighted_grayscale(images: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
  """MCJA's Weighted Grayscale: floor(w1 R + w2 G + w3 B) in all channels. weights: [B, 3]."""
  grey = tf.einsum("bhwc,bc->bhw", tf.cast(images, tf.float32), weights)
  return _broadcast_channel(tf.cast(tf.floor(grey), tf.uint8))


def channel_cutmix_boxes(seed: tf.Tensor, rows: Rows, height: int, width: int, *,
                         hw_swap: bool = True) -> Boxes:
  """The rectangle of MCJA's Channel CutMix: area U(0.02, 0.33), aspect log-uniform in
  [0.3, 3.3], 10 tries (spec mcja §1.2).

  Reference bug, `hw_swap=True` (default, `config.data.vimc_cutmix_hw_swap`): the reference
  reads PIL's (W, H) size as (H, W), so it accepts a box when its height < W and width < H
  and draws top in {0..W-height}, left in {0..H-width}; the box then lies in the top W rows
  and is clipped at the right edge (empty when left >= W): about 26 % of calls paste nothing
  at 384 x 192. `hw_swap=False` gives the corrected rectangle inside the image. If no try fits
  the box is empty (the reference would crash; the chance is negligible).
  """
  frame = (width, height) if hw_swap else (height, width)
  return _draw_boxes(seed, rows, *frame, probability=1.0, area_range=(0.02, 0.33),
                     aspect_range=(0.3, 3.3), log_aspect=True, max_attempts=10)


def channel_cutmix(images: tf.Tensor, background: tf.Tensor, foreground: tf.Tensor,
                   boxes: Boxes) -> tf.Tensor:
  """MCJA's Channel CutMix: channel `background[i]`, with channel `foreground[i]` inside the
  box, in all three channels (a grey image). uint8 [B, H, W, 3]; channels [B] int32."""
  masks = box_masks(boxes, images.shape[1], images.shape[2])
  base = tf.gather(images, background, axis=3, batch_dims=1)
  pasted = tf.gather(images, foreground, axis=3, batch_dims=1)
  return _broadcast_channel(tf.where(masks, pasted, base))


def spectrum_jitter(images: tf.Tensor, channels: tf.Tensor, factors: tf.Tensor) -> tf.Tensor:
  """MCJA's Spectrum Jitter: PIL blend of channel `channels[i]` (as grey) towards the original
  image by `factors[i]` in [0, 1]. uint8 [B, H, W, 3]."""
  return pil_blend(copy_channel(images, channels), images, factors)


def vimc(images: tf.Tensor, seed: tf.Tensor, *, visible: tf.Tensor | None = None,
         cutmix_hw_swap: bool = True, switches: tuple[bool, ...] = (True,) * 4,
         rows: Rows | None = None) -> tf.Tensor:
  """MCJA's colour step for visible images: hue jitter or the VIMC (spec mcja §1.1–1.2).

  Each image draws one of four branches uniformly, each applied with probability 1/2:
  hue jitter (factor U(-0.2, 0.2)), Weighted Grayscale (convex weights u_k / sum u),
  Channel CutMix (an ordered pair of distinct channels, `channel_cutmix_boxes`), Spectrum
  Jitter (channel uniform, factor U(0, 1)). Images with `visible` False pass unchanged (MCJA's
  infrared pipeline has no such step). A branch switched off in `switches` is the identity but
  keeps its 1/4 share of the choice, as the reference's flags do. uint8 [B, H, W, 3] → uint8.

  Args:
    images: [B, H, W, 3] uint8.
    seed: [2] int32.
    visible: [B] bool, which images are visible; None: all.
    cutmix_hw_swap: the reference's Channel CutMix bug (True) or the corrected box (False).
    switches: which of hue, weighted grey, channel cutmix, spectrum jitter run (in that order;
      `vimc_branch_switches`).
    rows: which rows of the global batch `images` are.
  """
  rows = _rows_of(images, rows)
  height, width = images.shape[1], images.shape[2]
  seeds = _split(seed, 9)
  branch = _uniform(seeds[0], rows, minval=0, maxval=4, dtype=tf.int32)
  apply = _uniform(seeds[1], rows) < 0.5
  if visible is not None:
    apply &= visible
  hue_factor = _uniform(seeds[2], rows, minval=-0.2, maxval=0.2)
  shifts = tf.math.floormod(tf.cast(hue_factor * 255.0, tf.int32), 256)
  grey_weights = _uniform(seeds[3], rows, (3,))
  grey_weights /= tf.reduce_sum(grey_weights, axis=1, keepdims=True)
  # An ordered pair of distinct channels: background uniform, foreground one of the others.
  background = _uniform(seeds[4], rows, minval=0, maxval=3, dtype=tf.int32)
  foreground = (background + _uniform(seeds[5], rows, minval=1, maxval=3,
                                      dtype=tf.int32)) % 3
  boxes = channel_cutmix_boxes(seeds[6], rows, height, width, hw_swap=cutmix_hw_swap)
  spectrum_channel = _uniform(seeds[7], rows, minval=0, maxval=3, dtype=tf.int32)
  spectrum_factor = _uniform(seeds[8], rows)

  def take(values, positions):
    return tf.gather(values, positions)
  transforms = (
      (VIMC_HUE, lambda x, i: adjust_hue(x, take(shifts, i))),
      (VIMC_WEIGHTED_GREY, lambda x, i: weighted_grayscale(x, take(grey_weights, i))),
      (VIMC_CUTMIX, lambda x, i: channel_cutmix(
          x, take(background, i), take(foreground, i), Boxes(*(take(b, i) for b in boxes)))),
      (VIMC_SPECTRUM, lambda x, i: spectrum_jitter(x, take(spectrum_channel, i),
                                                   take(spectrum_factor, i))))
  out = images
  for index, transform in transforms:
    if switches[index]:
      out = _transform_rows(out, apply & (branch == index), transform)
  return out


def _transform_rows(images: tf.Tensor, selected: tf.Tensor, transform) -> tf.Tensor:
  """`transform(images[selected], positions)` written back into those rows, the others kept.

  For ops that touch a small share of a batch (each VIMC branch, about 1/8), computing them on
  those rows only saves the cost of transforming every image and discarding most results.
  """
  positions = tf.where(selected)[:, 0]
  subset = tf.gather(images, positions)
  return tf.tensor_scatter_nd_update(images, positions[:, None], transform(subset, positions))


# --- Whole training views ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ViewOptions:
  """What a recipe may read besides the images and the seed.

  Attributes:
    pad: padding of the random crop.
    random_erasing: the "agw" recipe's erasing ("none" or a key of `ERASING_VARIANTS`;
      `config.data.random_erasing`).
    cutmix_hw_swap: the "mcja" recipe's Channel CutMix bug switch (`channel_cutmix_boxes`;
      `config.data.vimc_cutmix_hw_swap`).
    vimc_switches: the "mcja" recipe's VIMC branches on or off (`vimc_branch_switches` of
      `config.data.vimc_branches`).
    visible: [B] bool for "mcja": which images get the VIMC; None: all.
    rows: which rows of the global batch the images are.
  """

  pad: int
  random_erasing: str = "none"
  cutmix_hw_swap: bool = True
  vimc_switches: tuple[bool, ...] = (True,) * 4
  visible: tf.Tensor | None = None
  rows: Rows | None = None


# recipe(images uint8 [B, H, W, 3], seed [2] int32, options) -> float32 normalised views.
Recipe = Callable[[tf.Tensor, tf.Tensor, ViewOptions], tf.Tensor]
RECIPES: dict[str, Recipe] = {}


def register_recipe(name: str) -> Callable[[Recipe], Recipe]:
  """Decorator: adds a view recipe to `RECIPES` under `name`."""
  def register(recipe: Recipe) -> Recipe:
    if name in RECIPES:
      raise ValueError(f"A view recipe named {name!r} is registered already.")
    RECIPES[name] = recipe
    return recipe
  return register


def geometric_view(images: tf.Tensor, seed: tf.Tensor, options: ViewOptions, *, pre=None,
                   post=None, erasing: str | None = "caj", fill: int = 0) -> tf.Tensor:
  """The shape every recipe shares: `pre`, Geo (`pad_crop_flip`), `normalize`, erasing, `post`.

  Geo uses `seed` itself (so "agw" reproduces `agw_train_augment`); `pre` and `post` get
  `op_seeds`, eight seeds split from it (pre: 3, erasing: 4, post: 5).
  """
  op_seeds = _split(seed, 8)
  if pre is not None:
    images = pre(images, op_seeds)
  views = normalize(pad_crop_flip(images, seed, options.pad, fill=fill, rows=options.rows))
  if erasing is not None:
    views = random_erasing(views, op_seeds[4], erasing, rows=options.rows)
  if post is not None:
    views = post(views, op_seeds)
  return views


@register_recipe("agw")
def agw_view(images, seed, options):
  """Geo, then `options.random_erasing` unless "none" (AGW: none; LLCM fork, MMN: "llcm";
  spec baseline §3.1–3.2). Also DAN's transform."""
  erasing = None if options.random_erasing == "none" else options.random_erasing
  return geometric_view(images, seed, options, erasing=erasing)


@register_recipe("caj_visible")
def caj_visible_view(images, seed, options):
  """CAJ's view A: Geo, CAJ erasing (§3.3)."""
  return geometric_view(images, seed, options)


@register_recipe("caj_visible_exchange")
def caj_visible_exchange_view(images, seed, options):
  """CAJ's view B: Geo, CAJ erasing, `channel_exchange` (§3.3); DJANet's V2."""
  return geometric_view(images, seed, options, post=lambda x, seeds: channel_exchange(
      x, seeds[5], rows=options.rows))


@register_recipe("caj_infrared")
def caj_infrared_view(images, seed, options):
  """CAJ's infrared view: Geo, CAJ erasing, `channel_adaptive_grey` "caj" (§3.3)."""
  return geometric_view(images, seed, options, post=lambda x, seeds: channel_adaptive_grey(
      x, seeds[5], "caj", rows=options.rows))


@register_recipe("djanet_visible")
def djanet_visible_view(images, seed, options):
  """DJANet's V1: `random_grayscale`, Geo, CAJ erasing (spec djanet §2.3)."""
  return geometric_view(images, seed, options, pre=lambda x, seeds: random_grayscale(
      x, seeds[3], rows=options.rows))


@register_recipe("djanet_infrared")
def djanet_infrared_view(images, seed, options):
  """DJANet's T1: Geo, CAJ erasing, `channel_adaptive_grey` "djanet" (spec djanet §2.3)."""
  return geometric_view(images, seed, options, post=lambda x, seeds: channel_adaptive_grey(
      x, seeds[5], "djanet", rows=options.rows))


@register_recipe("djanet_infrared_scale")
def djanet_infrared_scale_view(images, seed, options):
  """DJANet's T2: `random_brightness`, Geo, CAJ erasing, `channel_scale` (spec djanet §2.3)."""
  return geometric_view(
      images, seed, options,
      pre=lambda x, seeds: random_brightness(x, seeds[3], rows=options.rows),
      post=lambda x, seeds: channel_scale(x, seeds[5], rows=options.rows))


@register_recipe("mcja")
def mcja_view(images, seed, options):
  """`vimc` on the visible images, Geo with fill 127, MCJA erasing (mcja §1.1)."""
  return geometric_view(
      images, seed, options, erasing="mcja", fill=127,
      pre=lambda x, seeds: vimc(x, seeds[3], visible=options.visible,
                                cutmix_hw_swap=options.cutmix_hw_swap,
                                switches=options.vimc_switches, rows=options.rows))


def train_view(images: tf.Tensor, seed: tf.Tensor, recipe: str, *, pad: int,
               random_erasing_variant: str = "none", cutmix_hw_swap: bool = True,
               vimc_switches: tuple[bool, ...] = (True,) * 4,
               visible: tf.Tensor | None = None, rows: Rows | None = None) -> tf.Tensor:
  """One training view of a batch: uint8 [B, H, W, 3] → float32 normalised [B, H, W, 3].

  Args:
    images: [B, H, W, 3] uint8.
    seed: [2] int32 seed of this batch and view.
    recipe: a name in `RECIPES`.
    pad, random_erasing_variant, cutmix_hw_swap, vimc_switches, visible, rows: see
      `ViewOptions`.
  """
  if recipe not in RECIPES:
    raise ValueError(f"Unknown augmentation recipe {recipe!r}; expected one of "
                     f"{sorted(RECIPES)}.")
  options = ViewOptions(pad=pad, random_erasing=random_erasing_variant,
                        cutmix_hw_swap=cutmix_hw_swap, vimc_switches=tuple(vimc_switches),
                        visible=visible,
                        rows=_rows_of(images, rows))
  return RECIPES[recipe](images, seed, options)


def agw_train_augment(images: tf.Tensor, seed: tf.Tensor, pad: int) -> tf.Tensor:
  """The AGW train transform: pad, random crop, flip, normalise. uint8 → float32 [B,H,W,3]."""
  return normalize(pad_crop_flip(images, seed, pad))
