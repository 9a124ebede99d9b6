"""Training augmentations of every method in jnp, run on the accelerator inside the train step.

The device twin of `augment` (the tf.data side): with `config.data.augment_on = "device"` the
input pipeline ships the sampled uint8 images and each view's seed, and `DeviceAugmentation`
computes the views inside the jitted train step, where they cost a sliver of a ResNet-50 step
instead of most of the host's cores. Every op here has the same name, parameters, order and
arithmetic as its TensorFlow twin; given the same parameters the two give the same pixels
(tests/data/test_device_augment.py: exactly on uint8, to float rounding on normalised floats).
Only the random draws differ: they come from `jax.random` (threefry) instead of TF's stateless
Philox, so the two modes see different but identically distributed augmentations.

Determinism: view v of a batch is keyed by the same (config seed, epoch, batch index, view)
seed as on the host (`views.augmentation_seeds`), so a resumed run augments every batch
exactly as an uninterrupted one. Draws are made per row of the *global* batch: inside the
jitted step the arrays are the global batch, so any number of devices or processes gives the
same augmented batch.

The PIL hue conversion reproduces PIL's C arithmetic, which mixes `float` and `double`; those
few lines trace under `jax.enable_x64` (float64 is native on GPUs and CPUs).

A new recipe is an entry of `DEVICE_RECIPES` (`register_device_recipe`) under the name of its
TF twin in `augment.RECIPES`; nothing else changes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vireid_jax.data.normalization import IMAGENET_MEAN
from vireid_jax.data.normalization import IMAGENET_STD
from vireid_jax.data.splits import VISIBLE
from vireid_jax.data.views import ERASING_VARIANTS
from vireid_jax.data.views import TENSOR_GREY_WEIGHTS
from vireid_jax.data.views import VIMC_CUTMIX
from vireid_jax.data.views import VIMC_HUE
from vireid_jax.data.views import VIMC_SPECTRUM
from vireid_jax.data.views import VIMC_WEIGHTED_GREY
from vireid_jax.data.views import View
from vireid_jax.data.views import check_erasing_variant
from vireid_jax.data.views import vimc_branch_switches


def key_of(seed: jax.Array) -> jax.Array:
  """A threefry key from a [2] int32 stateless seed (the pipeline's per-view seeds)."""
  return jax.random.wrap_key_data(jnp.asarray(seed).astype(jnp.uint32), impl="threefry2x32")


def _uniform(key, rows: int, tail=(), minval=0.0, maxval=1.0):
  return jax.random.uniform(key, (rows, *tail), jnp.float32, minval, maxval)


def _randint(key, rows: int, minval: int, maxval: int):
  """Integers uniform in [minval, maxval), [rows]."""
  return jax.random.randint(key, (rows,), minval, maxval, jnp.int32)


def _broadcast_channel(plane):
  """[B, H, W] → [B, H, W, 3], the plane in every channel."""
  return jnp.repeat(plane[..., None], 3, axis=-1)


def _select_rows(condition, if_true, if_false):
  """Per image: `if_true[i]` where `condition[i]` ([B] bool), else `if_false[i]`."""
  return jnp.where(condition[:, None, None, None], if_true, if_false)


# --- Normalisation and geometry ------------------------------------------------------------


def normalize(images):
  """uint8 [..., H, W, 3] → float32 ImageNet-normalised, as `augment.normalize`."""
  scale = np.array([1.0 / (255.0 * std) for std in IMAGENET_STD], np.float32)
  offset = np.array([-mean / std for mean, std in zip(IMAGENET_MEAN, IMAGENET_STD)],
                    np.float32)
  return images.astype(jnp.float32) * scale + offset


class CropFlip(NamedTuple):
  """Per image: crop offsets into the padded image and whether to flip. [B] each."""

  top: jax.Array
  left: jax.Array
  flip: jax.Array


def crop_flip_params(key, rows: int, pad: int) -> CropFlip:
  keys = jax.random.split(key, 3)
  return CropFlip(_randint(keys[0], rows, 0, 2 * pad + 1),
                  _randint(keys[1], rows, 0, 2 * pad + 1),
                  _uniform(keys[2], rows) < 0.5)


def apply_pad_crop_flip(images, params: CropFlip, pad: int, fill: int = 0):
  """Pads `pad` pixels of `fill`, crops H x W at (top, left), flips where `flip`. uint8."""
  height, width, channels = images.shape[1:]
  padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=fill)
  crop = jax.vmap(lambda image, top, left: jax.lax.dynamic_slice(
      image, (top, left, 0), (height, width, channels)))
  cropped = crop(padded, params.top, params.left)
  # Flipping = reading the columns right to left, as one gather: a select between the crop and
  # its mirror would have XLA's CPU backend compute everything fused before it twice (MCJA's
  # colour branches: 3x slower).
  columns = jnp.arange(width)[None, :]
  columns = jnp.where(params.flip[:, None], width - 1 - columns, columns)
  return jnp.take_along_axis(cropped, columns[:, None, :, None], axis=2)


def pad_crop_flip(images, key, pad: int, *, fill: int = 0):
  """`augment.pad_crop_flip`: pad, uniform crop offset in {0..2 pad} per axis, flip 1/2."""
  return apply_pad_crop_flip(images, crop_flip_params(key, images.shape[0], pad), pad, fill)


# --- Rectangles: random erasing and MCJA's channel cutmix ------------------------------------


class Boxes(NamedTuple):
  """One rectangle per image, rows [top, top+height) x columns [left, left+width); height 0:
  nothing changes. [B] int32 each."""

  top: jax.Array
  left: jax.Array
  height: jax.Array
  width: jax.Array


def _draw_boxes(key, rows: int, frame_height: int, frame_width: int, *, probability: float,
                area_range, aspect_range, log_aspect: bool, max_attempts: int) -> Boxes:
  """The references' rectangle search for all images at once (`augment._draw_boxes`)."""
  keys = jax.random.split(key, 5)
  apply = _uniform(keys[0], rows) < probability
  area = frame_height * frame_width * _uniform(keys[1], rows, (max_attempts,), *area_range)
  if log_aspect:
    aspect = jnp.exp(_uniform(keys[2], rows, (max_attempts,), math.log(aspect_range[0]),
                              math.log(aspect_range[1])))
  else:
    aspect = _uniform(keys[2], rows, (max_attempts,), *aspect_range)
  # jnp.round rounds half to even, as Python's `round` in the references.
  heights = jnp.round(jnp.sqrt(area * aspect)).astype(jnp.int32)
  widths = jnp.round(jnp.sqrt(area / aspect)).astype(jnp.int32)
  fits = (heights < frame_height) & (widths < frame_width)
  first_fit = jnp.argmax(fits, axis=1)
  height = jnp.take_along_axis(heights, first_fit[:, None], axis=1)[:, 0]
  width = jnp.take_along_axis(widths, first_fit[:, None], axis=1)[:, 0]
  keep = apply & fits.any(axis=1)
  height = jnp.where(keep, height, 0)
  width = jnp.where(keep, width, 0)
  top = jnp.floor(_uniform(keys[3], rows) *
                  (frame_height - height + 1).astype(jnp.float32)).astype(jnp.int32)
  left = jnp.floor(_uniform(keys[4], rows) *
                   (frame_width - width + 1).astype(jnp.float32)).astype(jnp.int32)
  return Boxes(top, left, height, width)


def box_masks(boxes: Boxes, height: int, width: int):
  """[B, H, W] bool, True inside each image's box (clipped to the image)."""
  row = jnp.arange(height)[None, :, None]
  column = jnp.arange(width)[None, None, :]
  def inside(start, size, position):
    return (position >= start[:, None, None]) & (position < (start + size)[:, None, None])
  return inside(boxes.top, boxes.height, row) & inside(boxes.left, boxes.width, column)


def erasing_boxes(key, rows: int, height: int, width: int, variant: str) -> Boxes:
  spec = ERASING_VARIANTS[variant]
  return _draw_boxes(key, rows, height, width, probability=spec.probability,
                     area_range=spec.area_range, aspect_range=spec.aspect_range,
                     log_aspect=spec.log_aspect, max_attempts=spec.max_attempts)


def erase(images, boxes: Boxes, fill):
  """Writes `fill` [3] into each image's box. images: [B, H, W, 3] float32."""
  masks = box_masks(boxes, images.shape[1], images.shape[2])
  return jnp.where(masks[..., None], jnp.asarray(fill, images.dtype), images)


def random_erasing(images, key, variant: str):
  """`augment.random_erasing` on normalised float32 [B, H, W, 3]."""
  check_erasing_variant(variant)
  boxes = erasing_boxes(key, images.shape[0], images.shape[1], images.shape[2], variant)
  return erase(images, boxes, ERASING_VARIANTS[variant].fill)


# --- Channel operations on the normalised tensor (CAJ, DJANet) -----------------------------


def tensor_grey(images):
  """[B, H, W, 3] → [B, H, W]: 0.2989 R + 0.5870 G + 0.1140 B."""
  red, green, blue = TENSOR_GREY_WEIGHTS
  return images[..., 0] * red + images[..., 1] * green + images[..., 2] * blue


def copy_channel(images, channels):
  """Every channel of image i replaced by its channel `channels[i]` ([B] int32)."""
  plane = jnp.take_along_axis(images, channels[:, None, None, None], axis=3)
  return jnp.broadcast_to(plane, images.shape)


def channel_exchange(images, key):
  """`augment.channel_exchange`: channel k uniform in {R, G, B} replaces all three."""
  return copy_channel(images, _randint(key, images.shape[0], 0, 3))


def channel_adaptive_grey(images, key, variant: str):
  """`augment.channel_adaptive_grey` ("caj" or "djanet") on normalised float32 images."""
  rows = images.shape[0]
  keys = jax.random.split(key, 2)
  grey = _broadcast_channel(tensor_grey(images))
  if variant == "caj":
    choice = _randint(keys[0], rows, 0, 4)
    to_grey = _uniform(keys[1], rows) <= 0.5
    copied = copy_channel(images, jnp.minimum(choice, 2))
    out = _select_rows(choice < 3, copied, images)
    return _select_rows((choice == 3) & to_grey, grey, out)
  if variant == "djanet":
    first, second = _uniform(keys[0], rows) < 0.5, _uniform(keys[1], rows) < 0.5
    copied = copy_channel(images, jnp.ones((rows,), jnp.int32))
    return _select_rows(first, copied, _select_rows(second, grey, images))
  raise ValueError(f"Unknown ChannelAdapGray variant {variant!r}; expected 'caj' or 'djanet'.")


def channel_scale(images, key):
  """`augment.channel_scale` (DJANet's ChannelT): with probability 1/2, channel c times
  2 a_c, a_c ~ U(0.01, 0.5)."""
  rows = images.shape[0]
  keys = jax.random.split(key, 2)
  apply = _uniform(keys[0], rows) < 0.5
  scales = 2.0 * _uniform(keys[1], rows, (3,), 0.01, 0.5)
  return _select_rows(apply, images * scales[:, None, None, :], images)


# --- PIL-arithmetic ops on uint8 images (DJANet, MCJA's VIMC) --------------------------------


def pil_grey(images):
  """PIL's `convert("L")`: (19595 R + 38470 G + 7471 B + 2^15) >> 16. uint8 [B, H, W]."""
  pixels = images.astype(jnp.int32)
  luma = pixels[..., 0] * 19595 + pixels[..., 1] * 38470 + pixels[..., 2] * 7471 + 32768
  return jnp.right_shift(luma, 16).astype(jnp.uint8)


def random_grayscale(images, key, probability: float = 0.5):
  """`augment.random_grayscale`: `pil_grey` in all channels with probability `probability`."""
  apply = _uniform(key, images.shape[0]) < probability
  return _select_rows(apply, _broadcast_channel(pil_grey(images)), images)


def _rounded_product(pixels, factors):
  """pixels x factors rounded to float32 once, also where XLA fuses it into a multiply-add.

  pixels hold integers of at most 9 bits (a byte, or a difference of two). XLA's CPU backend
  contracts `a + x * w` into a fused multiply-add, which skips the product's rounding that
  TensorFlow (and PIL's C) make; before a floor, that changes a grey level. Split w = high +
  low with high its top 15 significant bits: x * high and x * low are exact in float32, so
  their sum is x * w rounded once whether or not it is fused, and no product is left to fuse
  into what follows.
  """
  high = jax.lax.bitcast_convert_type(
      jax.lax.bitcast_convert_type(factors, jnp.uint32) & jnp.uint32(0xFFFFFE00), jnp.float32)
  return pixels * high + pixels * (factors - high)


def pil_blend(first, second, alpha):
  """PIL's `Image.blend`: first + alpha (second - first) in float32, clipped, truncated."""
  first = first.astype(jnp.float32)
  second = second.astype(jnp.float32)
  blended = first + _rounded_product(second - first, alpha[:, None, None, None])
  return jnp.floor(jnp.clip(blended, 0.0, 255.0)).astype(jnp.uint8)


def random_brightness(images, key, max_delta: float = 0.5):
  """`augment.random_brightness`: a blend with black at a factor U(1 - d, 1 + d)."""
  factors = _uniform(key, images.shape[0], (), 1.0 - max_delta, 1.0 + max_delta)
  return pil_blend(jnp.zeros_like(images), images, factors)


def _pil_rgb_to_hsv(images):
  """PIL's RGB → HSV (libImaging `rgb2hsv_row`): uint8 in, int32 planes out; the float /
  double mix of the C code, as `augment._pil_rgb_to_hsv`."""
  with jax.enable_x64(True):
    f32, f64 = jnp.float32, jnp.float64
    pixels = images.astype(f32)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    high = pixels.max(axis=-1)
    low = pixels.min(axis=-1)
    grey = high == low
    spread = jnp.where(grey, f32(1.0), high - low)
    saturation = spread / jnp.where(grey, f32(1.0), high)
    red_c, green_c, blue_c = ((high - channel) / spread for channel in (red, green, blue))
    hue = jnp.where(
        red == high, (blue_c - green_c).astype(f64),
        jnp.where(green == high,
                  2.0 + red_c.astype(f64) - blue_c.astype(f64),
                  4.0 + green_c.astype(f64) - red_c.astype(f64)))
    hue = hue.astype(f32).astype(f64)
    hue = jnp.mod(hue / 6.0 + 1.0, 1.0).astype(f32)
    def to_byte(x):
      return jnp.clip((x.astype(f64) * 255.0).astype(jnp.int32), 0, 255)
    hue_byte = jnp.where(grey, 0, to_byte(hue))
    saturation_byte = jnp.where(grey, 0, to_byte(saturation))
    return hue_byte, saturation_byte, high.astype(jnp.int32)


def _pil_hsv_to_rgb(hue, saturation, value):
  """PIL's HSV → RGB (libImaging `hsv2rgb`), int32 planes in, uint8 [..., 3] out."""
  with jax.enable_x64(True):
    f32, f64 = jnp.float32, jnp.float64
    scaled = hue.astype(f64) * 6.0 / 255.0
    sector = jnp.floor(scaled)
    fraction = (scaled - sector).astype(f32)
    fs = (saturation.astype(f64) / 255.0).astype(f32)
    v = value.astype(f64)
    def rounded(x):  # C `round` of a non-negative double: half away from zero.
      return jnp.clip(jnp.floor(x + 0.5).astype(jnp.int32), 0, 255)
    p = rounded(v * (1.0 - fs.astype(f64)))
    q = rounded(v * (1.0 - (fs * fraction).astype(f64)))  # a float product in the C code
    t = rounded(v * (1.0 - fs.astype(f64) * (1.0 - fraction.astype(f64))))
    value = value.astype(jnp.int32)
    sector = jnp.mod(sector.astype(jnp.int32), 6)
  candidates = jnp.stack([
      jnp.stack([value, t, p], -1), jnp.stack([q, value, p], -1),
      jnp.stack([p, value, t], -1), jnp.stack([p, q, value], -1),
      jnp.stack([t, p, value], -1), jnp.stack([value, p, q], -1)], axis=-2)
  rgb = jnp.take_along_axis(candidates, sector[..., None, None], axis=-2)[..., 0, :]
  rgb = jnp.where((saturation == 0)[..., None], value[..., None], rgb)
  return rgb.astype(jnp.uint8)


def adjust_hue(images, shifts):
  """torchvision 0.9's `adjust_hue` on PIL images: hue byte plus `shifts[i]` mod 256."""
  hue, saturation, value = _pil_rgb_to_hsv(images)
  hue = jnp.mod(hue + shifts[:, None, None], 256)
  return _pil_hsv_to_rgb(hue, saturation, value)


def weighted_grayscale(images, weights):
  """MCJA's Weighted Grayscale: floor(w1 R + w2 G + w3 B) in all channels. weights [B, 3]."""
  pixels = images.astype(jnp.float32)
  weights = weights[:, None, None, :]
  # (R w1 + G w2) + B w3 with each product rounded, in this order, as TF computes it: the floor
  # turns any other rounding into a grey level one lower on flat colours.
  products = [_rounded_product(pixels[..., channel], weights[..., channel])
              for channel in range(3)]
  grey = (products[0] + products[1]) + products[2]
  return _broadcast_channel(jnp.floor(grey).astype(jnp.uint8))


def channel_cutmix_boxes(key, rows: int, height: int, width: int, *,
                         hw_swap: bool = True) -> Boxes:
  """`augment.channel_cutmix_boxes`, the reference's (W, H) mix-up included (`hw_swap`)."""
  frame = (width, height) if hw_swap else (height, width)
  return _draw_boxes(key, rows, *frame, probability=1.0, area_range=(0.02, 0.33),
                     aspect_range=(0.3, 3.3), log_aspect=True, max_attempts=10)


def channel_cutmix(images, background, foreground, boxes: Boxes):
  """MCJA's Channel CutMix: channel `background[i]`, `foreground[i]` inside the box."""
  masks = box_masks(boxes, images.shape[1], images.shape[2])
  def channel(index):
    return jnp.take_along_axis(images, index[:, None, None, None], axis=3)[..., 0]
  return _broadcast_channel(jnp.where(masks, channel(foreground), channel(background)))


def spectrum_jitter(images, channels, factors):
  """MCJA's Spectrum Jitter: PIL blend of channel `channels[i]` towards the image."""
  return pil_blend(copy_channel(images, channels), images, factors)


class VimcParams(NamedTuple):
  """Every draw of `vimc`, [B] each unless noted."""

  branch: jax.Array           # int32 in {0..3}
  apply: jax.Array            # bool (the 1/2, and the image's being visible)
  shifts: jax.Array           # int32 hue byte shift
  grey_weights: jax.Array     # [B, 3] float32, rows sum to 1
  background: jax.Array       # int32 channel
  foreground: jax.Array       # int32 channel, != background
  boxes: Boxes
  spectrum_channel: jax.Array  # int32
  spectrum_factor: jax.Array   # float32 in [0, 1)


def vimc_params(key, rows: int, height: int, width: int, *, visible=None,
                cutmix_hw_swap: bool = True) -> VimcParams:
  keys = jax.random.split(key, 9)
  apply = _uniform(keys[1], rows) < 0.5
  if visible is not None:
    apply &= visible
  hue_factor = _uniform(keys[2], rows, (), -0.2, 0.2)
  grey_weights = _uniform(keys[3], rows, (3,))
  background = _randint(keys[4], rows, 0, 3)
  return VimcParams(
      branch=_randint(keys[0], rows, 0, 4), apply=apply,
      # Truncation toward zero, then the uint8 wrap-around, as the reference's hue byte.
      shifts=jnp.mod((hue_factor * 255.0).astype(jnp.int32), 256),
      grey_weights=grey_weights / grey_weights.sum(axis=1, keepdims=True),
      background=background,
      foreground=(background + _randint(keys[5], rows, 1, 3)) % 3,
      boxes=channel_cutmix_boxes(keys[6], rows, height, width, hw_swap=cutmix_hw_swap),
      spectrum_channel=_randint(keys[7], rows, 0, 3),
      spectrum_factor=_uniform(keys[8], rows))


def apply_vimc(images, params: VimcParams, switches=(True,) * 4):
  """Each image's branch where `apply`, the image itself elsewhere. uint8 → uint8."""
  transforms = (
      (VIMC_HUE, lambda x: adjust_hue(x, params.shifts)),
      (VIMC_WEIGHTED_GREY, lambda x: weighted_grayscale(x, params.grey_weights)),
      (VIMC_CUTMIX, lambda x: channel_cutmix(x, params.background, params.foreground,
                                             params.boxes)),
      (VIMC_SPECTRUM, lambda x: spectrum_jitter(x, params.spectrum_channel,
                                                params.spectrum_factor)))
  out = images
  for index, transform in transforms:
    if switches[index]:
      out = _select_rows(params.apply & (params.branch == index), transform(images), out)
  return out


def vimc(images, key, *, visible=None, cutmix_hw_swap: bool = True,
         switches: tuple[bool, ...] = (True,) * 4):
  """`augment.vimc`: MCJA's hue jitter or one of the three VIMC branches, 1/2 each image."""
  params = vimc_params(key, *images.shape[:3], visible=visible, cutmix_hw_swap=cutmix_hw_swap)
  return apply_vimc(images, params, switches)


# --- Whole training views ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ViewOptions:
  """What a recipe may read besides the images and the key (`augment.ViewOptions`).

  visible: [B] bool, which images get MCJA's VIMC; None: all.
  """

  pad: int
  random_erasing: str = "none"
  cutmix_hw_swap: bool = True
  vimc_switches: tuple[bool, ...] = (True,) * 4
  visible: jax.Array | None = None


def view_options(data_config) -> ViewOptions:
  """What the recipes read from `config.data` besides the images (both modes)."""
  return ViewOptions(pad=data_config.pad,
                     random_erasing=data_config.get("random_erasing", "none"),
                     cutmix_hw_swap=data_config.get("vimc_cutmix_hw_swap", True),
                     vimc_switches=vimc_branch_switches(
                         data_config.get("vimc_branches", {})))


# recipe(images uint8 [B, H, W, 3], key, options) -> float32 normalised views.
DeviceRecipe = Callable[[jax.Array, jax.Array, ViewOptions], jax.Array]
DEVICE_RECIPES: dict[str, DeviceRecipe] = {}


def register_device_recipe(name: str) -> Callable[[DeviceRecipe], DeviceRecipe]:
  """Decorator: adds the device twin of `augment.RECIPES[name]`."""
  def register(recipe: DeviceRecipe) -> DeviceRecipe:
    if name in DEVICE_RECIPES:
      raise ValueError(f"A device recipe named {name!r} is registered already.")
    DEVICE_RECIPES[name] = recipe
    return recipe
  return register


def geometric_view(images, key, options: ViewOptions, *, pre=None, post=None,
                   erasing: str | None = "caj", fill: int = 0):
  """`pre`, Geo (`pad_crop_flip`), `normalize`, erasing, `post`, as `augment.geometric_view`.

  Eight keys are split from `key`: Geo uses 0 (on the host Geo uses the seed itself, which
  threefry's fold-like split would correlate with key 3), pre 3, erasing 4, post 5.
  """
  op_keys = jax.random.split(key, 8)
  if pre is not None:
    images = pre(images, op_keys)
  views = normalize(pad_crop_flip(images, op_keys[0], options.pad, fill=fill))
  if erasing is not None:
    views = random_erasing(views, op_keys[4], erasing)
  if post is not None:
    views = post(views, op_keys)
  return views


@register_device_recipe("agw")
def agw_view(images, key, options):
  erasing = None if options.random_erasing == "none" else options.random_erasing
  return geometric_view(images, key, options, erasing=erasing)


@register_device_recipe("caj_visible")
def caj_visible_view(images, key, options):
  return geometric_view(images, key, options)


@register_device_recipe("caj_visible_exchange")
def caj_visible_exchange_view(images, key, options):
  return geometric_view(images, key, options,
                        post=lambda x, keys: channel_exchange(x, keys[5]))


@register_device_recipe("caj_infrared")
def caj_infrared_view(images, key, options):
  return geometric_view(images, key, options,
                        post=lambda x, keys: channel_adaptive_grey(x, keys[5], "caj"))


@register_device_recipe("djanet_visible")
def djanet_visible_view(images, key, options):
  return geometric_view(images, key, options, pre=lambda x, keys: random_grayscale(x, keys[3]))


@register_device_recipe("djanet_infrared")
def djanet_infrared_view(images, key, options):
  return geometric_view(images, key, options,
                        post=lambda x, keys: channel_adaptive_grey(x, keys[5], "djanet"))


@register_device_recipe("djanet_infrared_scale")
def djanet_infrared_scale_view(images, key, options):
  return geometric_view(images, key, options,
                        pre=lambda x, keys: random_brightness(x, keys[3]),
                        post=lambda x, keys: channel_scale(x, keys[5]))


@register_device_recipe("mcja")
def mcja_view(images, key, options):
  return geometric_view(
      images, key, options, erasing="mcja", fill=127,
      pre=lambda x, keys: vimc(x, keys[3], visible=options.visible,
                               cutmix_hw_swap=options.cutmix_hw_swap,
                               switches=options.vimc_switches))


def train_view(images, seed, recipe: str, *, pad: int, random_erasing_variant: str = "none",
               cutmix_hw_swap: bool = True, vimc_switches: tuple[bool, ...] = (True,) * 4,
               visible=None):
  """One training view: uint8 [B, H, W, 3] → float32 normalised [B, H, W, 3].

  Args:
    images: [B, H, W, 3] uint8, the global batch of one stream.
    seed: [2] int32, the view's seed (`views.augmentation_seeds`).
    recipe: a name in `DEVICE_RECIPES` (the same names as `augment.RECIPES`).
    pad, random_erasing_variant, cutmix_hw_swap, vimc_switches, visible: see `ViewOptions`.
  """
  options = ViewOptions(pad=pad, random_erasing=random_erasing_variant,
                        cutmix_hw_swap=cutmix_hw_swap, vimc_switches=tuple(vimc_switches),
                        visible=visible)
  return apply_recipe(recipe, images, seed, options)


def apply_recipe(recipe: str, images, seed, options: ViewOptions):
  """`DEVICE_RECIPES[recipe]` on uint8 [B, H, W, 3] with the [2] int32 `seed`'s key."""
  if recipe not in DEVICE_RECIPES:
    raise ValueError(f"Augmentation recipe {recipe!r} has no device version; expected one of "
                     f"{sorted(DEVICE_RECIPES)}, or config.data.augment_on='host'.")
  return DEVICE_RECIPES[recipe](images, key_of(seed), options)


# --- The batch: uint8 streams in, the method's views out ------------------------------------

# Keys of a device-mode host batch (`pipeline.train_dataset` with augment_on="device").
SEEDS_KEY = "augmentation_seeds"    # int32 [R, V, 2]: every row holds the batch's V seeds


def images_key(stream_name: str) -> str:
  """The host batch key of a stream's sampled uint8 images [R, H, W, 3]."""
  return f"uint8/{stream_name}"


def modalities_key(stream_name: str) -> str:
  """The host batch key of a stream's image modalities int32 [R] (0 visible, 1 infrared)."""
  return f"uint8_modalities/{stream_name}"


@dataclasses.dataclass(frozen=True)
class DeviceAugmentation:
  """The host batch of augment_on="device" → the batch the method's train step reads.

  A pure jnp function of the batch, traced into the train step (`loop.jit_train_step`); the
  views and options are the host mode's (`views.view_plan`, `view_options`).
  """

  views: tuple[View, ...]
  options: ViewOptions

  def __call__(self, batch: dict) -> dict:
    """batch: a device-mode host batch (global arrays) → the host mode's batch dict."""
    seeds = batch[SEEDS_KEY][0]
    streams = {view.stream for view in self.views}
    shipped = {SEEDS_KEY} | {images_key(name) for name in streams} | {
        modalities_key(name) for name in streams}
    out = {key: value for key, value in batch.items() if key not in shipped}
    for view in self.views:
      options = dataclasses.replace(
          self.options, visible=batch[modalities_key(view.stream)] == VISIBLE)
      out[view.key] = apply_recipe(view.recipe, batch[images_key(view.stream)],
                                   seeds[view.seed_index], options)
    return out

  def count_images(self, batch: dict) -> int:
    """Training images (views) in a host batch: what the step sees, as `loop.count_images`."""
    return sum(len(batch[images_key(view.stream)]) for view in self.views)


# config.data.augment_on: where the training views are computed.
AUGMENT_ON = ("auto", "host", "device")


def resolve_augment_on(data_config, platform: str | None = None) -> str:
  """`config.data.augment_on` as "host" or "device".

  "auto" is "device" on GPUs, where a host's cores cannot keep up with the step, and "host" on
  CPUs (the augmentation would take the cores the step runs on) and TPUs (whose hosts have
  cores to spare, and which emulate the float64 of MCJA's PIL hue arithmetic).

  Args:
    data_config: `config.data`.
    platform: "cpu", "gpu" or "tpu"; None: `jax.default_backend()`.
  """
  value = data_config.get("augment_on", "host")
  if value not in AUGMENT_ON:
    raise ValueError(f"config.data.augment_on={value!r}: expected one of {AUGMENT_ON}.")
  if value != "auto":
    return value
  platform = platform or jax.default_backend()
  return "device" if platform in ("gpu", "cuda", "rocm") else "host"
