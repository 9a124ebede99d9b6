"""The device augmentations (`device_augment`, jnp, run in the train step) against their
TensorFlow twins (`augment`, run by tf.data).

The two sides draw their random parameters from different generators (threefry and TF's
stateless Philox), so they are compared in three ways:

1. Application: the parameters a TF op draws, re-derived here from its seed as the op draws
   them (`tf_*_draws`; that they are the op's draws shows in the op's output), fed to the
   device op's deterministic part, give the TF op's pixels: uint8 exactly, floats to 1e-6.
   Where a device op has no separate application, the test composes one from device
   primitives and checks that the device op is that composition of its own draws, re-derived
   from its key (`device_*_draws`).
2. Draws: both sides' parameters for tens of thousands of rows have the same distribution
   (frequencies within 5 standard errors of the references' probabilities, two-sample
   Kolmogorov-Smirnov tests at p = 1e-6, means within 5 standard errors) and the same
   structure (boxes inside the frame, distinct channels, ...).
3. Whole recipes: the per-pixel mean and mean square of many views of a few images, the
   distributions of each view's channel means and spreads, and the share of grey views agree
   within statistical tolerance.
(That the views are a function of the seed and not of how the batch is sharded over devices is
tested on whole batches in tests/data/test_device_pipeline.py.)

The application tests run the device functions under `jax.jit`, as the train step does: that
is where XLA fuses and contracts multiply-adds (the tests whose pixels hang on it run with
XLA's optimisations on). The recipes' statistics run eagerly (cheaper, and no statistic
depends on compilation).
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
import tensorflow as tf

from vireid_jax.data import augment
from vireid_jax.data import device_augment

SEED = (4, 2)
BATCH = 64                              # rows of the application tests
PART = augment.Rows(16, 48, BATCH)      # a process's share of them (the rows convention)
DRAWS = 40_000                          # rows of the distribution tests
DRAW_SEED = (11, 3)
FRAME = (288, 144)                      # the references' image size, for the boxes' draws
Z = 5.0                                 # standard errors allowed in the distribution tests


def tf_seed(seed=SEED):
  return tf.constant(seed, tf.int32)


def device_key(seed=SEED):
  return device_augment.key_of(np.array(seed, np.int32))


def whole(count):
  return augment.Rows(0, count, count)


def numpy_tree(tree):
  """The TF tensors or jax arrays in a pytree (NamedTuples, dicts) as numpy arrays."""
  return jax.tree.map(np.asarray, tree)


def make_images(count=BATCH, height=8, width=6, seed=0):
  """uint8 [count, H, W, 3]: random colours, a row of flat greys (R = G = B: where a rounding
  before a floor shows as a grey level lost) and a row of extreme and saturated colours."""
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (count, height, width, 3)).astype(np.uint8)
  images[:, 0] = rng.integers(0, 256, (count, width, 1))
  extremes = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255],
                       [255, 255, 0]], np.uint8)
  images[:, 1] = extremes[np.arange(width) % len(extremes)]
  return images


def normalised(images):
  return augment.normalize(tf.constant(images)).numpy()


def assert_same_pixels(device_out, tf_out, err_msg=""):
  """uint8: equal; float32 (normalised): equal to 1e-6."""
  device_out, tf_out = np.asarray(device_out), np.asarray(tf_out)
  assert device_out.dtype == tf_out.dtype and device_out.shape == tf_out.shape, err_msg
  if tf_out.dtype == np.uint8:
    np.testing.assert_array_equal(device_out, tf_out, err_msg=err_msg)
  else:
    np.testing.assert_allclose(device_out, tf_out, rtol=0, atol=1e-6, err_msg=err_msg)


# --- The ops, split into draws and application ------------------------------------------------


class Op(NamedTuple):
  """One augmentation op on both sides.

  Attributes:
    tf_op: (images, seed, rows) → the TF op's output.
    device_op: (images, key) → the device op's output.
    tf_draws: (seed, rows, frame) → the TF op's parameters, re-derived as it draws them.
    device_draws: (key, rows, frame) → the device op's parameters, likewise.
    apply: (images, params) → the device application of `params` (jnp).
    normalised: whether the op reads normalised floats (else uint8).
    frame: (H, W) of the application tests' images.
  """

  tf_op: Callable
  device_op: Callable
  tf_draws: Callable
  device_draws: Callable
  apply: Callable
  normalised: bool = False
  frame: tuple[int, int] = (8, 6)


def crop_flip_op(pad, fill):
  def tf_draws(seed, rows, frame):
    seeds = augment._split(seed, 3)
    offset = lambda s: augment._uniform(s, rows, minval=0, maxval=2 * pad + 1, dtype=tf.int32)
    return device_augment.CropFlip(offset(seeds[0]), offset(seeds[1]),
                                   augment._uniform(seeds[2], rows) < 0.5)
  return Op(
      tf_op=lambda x, seed, rows: augment.pad_crop_flip(x, seed, pad, fill=fill, rows=rows),
      device_op=lambda x, key: device_augment.pad_crop_flip(x, key, pad, fill=fill),
      tf_draws=tf_draws,
      device_draws=lambda key, rows, frame: device_augment.crop_flip_params(key, rows, pad),
      apply=lambda x, params: device_augment.apply_pad_crop_flip(x, params, pad, fill))


def erasing_op(variant):
  def tf_draws(seed, rows, frame):
    return device_augment.Boxes(*augment.erasing_boxes(seed, rows, *frame, variant))
  return Op(
      tf_op=lambda x, seed, rows: augment.random_erasing(x, seed, variant, rows=rows),
      device_op=lambda x, key: device_augment.random_erasing(x, key, variant),
      tf_draws=tf_draws,
      device_draws=lambda key, rows, frame: device_augment.erasing_boxes(key, rows, *frame,
                                                                         variant),
      apply=lambda x, boxes: device_augment.erase(
          x, boxes, device_augment.ERASING_VARIANTS[variant].fill),
      normalised=True, frame=(16, 8))


# The outcomes of ChannelAdapGray: channel 0, 1 or 2 copied into all three, the tensor grey in
# all three, or the image unchanged.
GREY, SAME = 3, 4


def adaptive_grey_outcomes(params, variant):
  """[B] outcome of each image from ChannelAdapGray's draws (`augment.channel_adaptive_grey`)."""
  if variant == "caj":
    choice, to_grey = params["choice"], params["to_grey"]
    return jnp.where(choice < 3, choice, jnp.where(to_grey, GREY, SAME))
  return jnp.where(params["first"], 1, jnp.where(params["second"], GREY, SAME))


def adaptive_grey_op(variant):
  def tf_draws(seed, rows, frame):
    seeds = augment._split(seed, 2)
    if variant == "caj":
      return {"choice": augment._uniform(seeds[0], rows, minval=0, maxval=4, dtype=tf.int32),
              "to_grey": augment._uniform(seeds[1], rows) <= 0.5}
    return {"first": augment._uniform(seeds[0], rows) < 0.5,
            "second": augment._uniform(seeds[1], rows) < 0.5}

  def device_draws(key, rows, frame):
    keys = jax.random.split(key, 2)
    if variant == "caj":
      return {"choice": device_augment._randint(keys[0], rows, 0, 4),
              "to_grey": device_augment._uniform(keys[1], rows) <= 0.5}
    return {"first": device_augment._uniform(keys[0], rows) < 0.5,
            "second": device_augment._uniform(keys[1], rows) < 0.5}

  def apply(images, params):
    outcome = adaptive_grey_outcomes(params, variant)[:, None, None, None]
    copied = device_augment.copy_channel(images, jnp.minimum(outcome[:, 0, 0, 0], 2))
    grey = device_augment._broadcast_channel(device_augment.tensor_grey(images))
    return jnp.where(outcome < 3, copied, jnp.where(outcome == GREY, grey, images))

  return Op(
      tf_op=lambda x, seed, rows: augment.channel_adaptive_grey(x, seed, variant, rows=rows),
      device_op=lambda x, key: device_augment.channel_adaptive_grey(x, key, variant),
      tf_draws=tf_draws, device_draws=device_draws, apply=apply, normalised=True)


def channel_scale_tf_draws(seed, rows, frame):
  seeds = augment._split(seed, 2)
  return {"apply": augment._uniform(seeds[0], rows) < 0.5,
          "scales": 2.0 * augment._uniform(seeds[1], rows, (3,), 0.01, 0.5)}


def channel_scale_device_draws(key, rows, frame):
  keys = jax.random.split(key, 2)
  return {"apply": device_augment._uniform(keys[0], rows) < 0.5,
          "scales": 2.0 * device_augment._uniform(keys[1], rows, (3,), 0.01, 0.5)}


OPS = {
    "pad_crop_flip": crop_flip_op(pad=2, fill=0),
    "pad_crop_flip_fill_127": crop_flip_op(pad=3, fill=127),   # MCJA's
    **{f"random_erasing_{variant}": erasing_op(variant)
       for variant in augment.ERASING_VARIANTS},
    "channel_exchange": Op(
        tf_op=lambda x, seed, rows: augment.channel_exchange(x, seed, rows=rows),
        device_op=device_augment.channel_exchange,
        tf_draws=lambda seed, rows, frame: {"channels": augment._uniform(
            seed, rows, minval=0, maxval=3, dtype=tf.int32)},
        device_draws=lambda key, rows, frame: {"channels": device_augment._randint(
            key, rows, 0, 3)},
        apply=lambda x, params: device_augment.copy_channel(x, params["channels"]),
        normalised=True),
    "channel_adaptive_grey_caj": adaptive_grey_op("caj"),
    "channel_adaptive_grey_djanet": adaptive_grey_op("djanet"),
    "channel_scale": Op(
        tf_op=lambda x, seed, rows: augment.channel_scale(x, seed, rows=rows),
        device_op=device_augment.channel_scale,
        tf_draws=channel_scale_tf_draws, device_draws=channel_scale_device_draws,
        apply=lambda x, params: jnp.where(params["apply"][:, None, None, None],
                                          x * params["scales"][:, None, None, :], x),
        normalised=True),
    "random_grayscale": Op(
        tf_op=lambda x, seed, rows: augment.random_grayscale(x, seed, rows=rows),
        device_op=device_augment.random_grayscale,
        tf_draws=lambda seed, rows, frame: {"apply": augment._uniform(seed, rows) < 0.5},
        device_draws=lambda key, rows, frame: {"apply": device_augment._uniform(key, rows)
                                               < 0.5},
        apply=lambda x, params: jnp.where(
            params["apply"][:, None, None, None],
            device_augment._broadcast_channel(device_augment.pil_grey(x)), x)),
    "random_brightness": Op(
        tf_op=lambda x, seed, rows: augment.random_brightness(x, seed, rows=rows),
        device_op=device_augment.random_brightness,
        tf_draws=lambda seed, rows, frame: {"factors": augment._uniform(
            seed, rows, minval=0.5, maxval=1.5)},
        device_draws=lambda key, rows, frame: {"factors": device_augment._uniform(
            key, rows, (), 0.5, 1.5)},
        apply=lambda x, params: device_augment.pil_blend(jnp.zeros_like(x), x,
                                                         params["factors"])),
}


def op_inputs(op):
  images = make_images(BATCH, *op.frame)
  return normalised(images) if op.normalised else images


def tf_vimc_draws(seed, rows, frame, *, visible=None, hw_swap=True):
  """`augment.vimc`'s draws, made as it makes them, as a `device_augment.VimcParams`."""
  seeds = augment._split(seed, 9)
  apply = augment._uniform(seeds[1], rows) < 0.5
  if visible is not None:
    apply &= tf.constant(visible)
  hue_factor = augment._uniform(seeds[2], rows, minval=-0.2, maxval=0.2)
  weights = augment._uniform(seeds[3], rows, (3,))
  background = augment._uniform(seeds[4], rows, minval=0, maxval=3, dtype=tf.int32)
  return numpy_tree(device_augment.VimcParams(
      branch=augment._uniform(seeds[0], rows, minval=0, maxval=4, dtype=tf.int32),
      apply=apply,
      shifts=tf.math.floormod(tf.cast(hue_factor * 255.0, tf.int32), 256),
      grey_weights=weights / tf.reduce_sum(weights, axis=1, keepdims=True),
      background=background,
      foreground=(background + augment._uniform(seeds[5], rows, minval=1, maxval=3,
                                                 dtype=tf.int32)) % 3,
      boxes=device_augment.Boxes(*augment.channel_cutmix_boxes(seeds[6], rows, *frame,
                                                               hw_swap=hw_swap)),
      spectrum_channel=augment._uniform(seeds[7], rows, minval=0, maxval=3, dtype=tf.int32),
      spectrum_factor=augment._uniform(seeds[8], rows)))


# --- 1. Application: the TF draws give the TF pixels ------------------------------------------


@pytest.mark.parametrize("name", sorted(OPS))
def test_tf_draws_applied_on_device_give_the_tf_ops_pixels(name):
  op = OPS[name]
  images = op_inputs(op)
  expected = op.tf_op(tf.constant(images), tf_seed(), whole(BATCH)).numpy()
  params = numpy_tree(op.tf_draws(tf_seed(), whole(BATCH), op.frame))
  got = np.asarray(jax.jit(op.apply)(images, params))
  assert_same_pixels(got, expected)
  # The rows convention: a process holding rows PART of the batch draws for all of them and
  # keeps its own, so they are those rows of the whole batch's application (which is what
  # the device computes: its arrays are the global batch).
  part = op.tf_op(tf.constant(images[PART.start:PART.stop]), tf_seed(), PART).numpy()
  assert_same_pixels(got[PART.start:PART.stop], part)


@pytest.mark.parametrize("name", sorted(OPS))
def test_device_op_is_the_application_of_its_draws(name):
  """What ties the device draws of the distribution tests to the device ops. (Eager: two
  separately compiled programs could round a multiply-add differently.)"""
  op = OPS[name]
  images = op_inputs(op)
  got = op.device_op(images, device_key())
  params = op.device_draws(device_key(), BATCH, op.frame)
  np.testing.assert_array_equal(got, op.apply(images, params))
  # Another key, other draws: the op is random at all.
  assert not np.array_equal(got, op.device_op(images, device_key((5, 2))))


def test_normalize_matches_tf_on_every_byte():
  images = np.broadcast_to(np.arange(256, dtype=np.uint8)[None, :, None, None],
                           (1, 256, 1, 3)).copy()
  assert_same_pixels(jax.jit(device_augment.normalize)(images), normalised(images))


def test_tensor_grey_and_copy_channel_match_tf():
  views = normalised(make_images())
  assert_same_pixels(jax.jit(device_augment.tensor_grey)(views),
                     augment.tensor_grey(tf.constant(views)).numpy())
  channels = np.arange(BATCH, dtype=np.int32) % 3
  assert_same_pixels(jax.jit(device_augment.copy_channel)(views, channels),
                     augment.copy_channel(tf.constant(views), tf.constant(channels)).numpy())


def all_colours():
  """uint8 [16, 1024, 1024, 3]: every RGB triple once (16 chunks of 2^20)."""
  values = np.arange(1 << 24, dtype=np.uint32)
  return np.stack([values >> 16, (values >> 8) & 255, values & 255],
                  axis=-1).astype(np.uint8).reshape(16, 1024, 1024, 3)


def test_pil_grey_matches_tf_on_every_colour():
  grey = jax.jit(device_augment.pil_grey)
  for chunk in all_colours():
    np.testing.assert_array_equal(grey(chunk[None]), augment.pil_grey(tf.constant(chunk[None])))


def test_pil_rgb_to_hsv_matches_tf_on_every_colour():
  """Exhaustive over the 2^24 RGB triples: the float / double mix of PIL's C code."""
  to_hsv = jax.jit(device_augment._pil_rgb_to_hsv)
  tf_to_hsv = tf.function(augment._pil_rgb_to_hsv)   # a graph: faster than eager, same kernels
  for chunk in all_colours():
    for got, expected, plane in zip(to_hsv(chunk), tf_to_hsv(tf.constant(chunk)),
                                    ("hue", "saturation", "value")):
      np.testing.assert_array_equal(got, expected, err_msg=plane)


def test_pil_hsv_to_rgb_matches_tf_on_every_hsv_triple():
  """Exhaustive over the 2^24 (hue, saturation, value) byte triples."""
  hue, saturation = np.meshgrid(np.arange(256, dtype=np.int32), np.arange(256, dtype=np.int32),
                                indexing="ij")
  to_rgb = jax.jit(device_augment._pil_hsv_to_rgb)
  tf_to_rgb = tf.function(augment._pil_hsv_to_rgb)
  for values in np.arange(256, dtype=np.int32).reshape(16, 16, 1, 1):   # 2^20 triples a chunk
    planes = [np.broadcast_to(plane, (16, 256, 256)) for plane in (hue, saturation, values)]
    np.testing.assert_array_equal(to_rgb(*planes), tf_to_rgb(*(tf.constant(p) for p in planes)))


def test_adjust_hue_matches_tf_for_every_shift():
  images = make_images(256)
  shifts = np.arange(256, dtype=np.int32)
  assert_same_pixels(jax.jit(device_augment.adjust_hue)(images, shifts),
                     augment.adjust_hue(tf.constant(images), tf.constant(shifts)).numpy())


def test_pil_blend_matches_tf_on_every_pair_of_bytes(optimized_xla):
  """All 2^16 (first, second) byte pairs, i.e. every pair of flat colours too (the blend is per
  channel), at the factors VIMC's Spectrum Jitter (U(0, 1)) and DJANet's brightness
  (U(0.5, 1.5)) draw, and round ones: a product that XLA fused into the addition (see
  `device_augment._rounded_product`) shows here as a level lost after the floor."""
  factors = np.concatenate([
      augment._uniform(tf_seed(), whole(24)).numpy(),
      augment._uniform(tf_seed((4, 3)), whole(24), minval=0.5, maxval=1.5).numpy(),
      np.array([0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0, 1 / 3, 2 / 3, 1.1, 1.3, 1.5],
               np.float32)])
  first, second = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8),
                              indexing="ij")
  first = np.broadcast_to(first[None, ..., None], (len(factors), 256, 256, 1))
  second = np.broadcast_to(second[None, ..., None], (len(factors), 256, 256, 1))
  assert_same_pixels(jax.jit(device_augment.pil_blend)(first, second, factors),
                     augment.pil_blend(tf.constant(first), tf.constant(second),
                                       tf.constant(factors)).numpy())


def test_weighted_grayscale_matches_tf_on_flat_and_random_colours(optimized_xla):
  """VIMC's convex weights on every flat colour (R = G = B, where the weighted sum is the level
  itself up to rounding and the floor shows any other rounding) and on random colours."""
  count = 512
  params = tf_vimc_draws(tf_seed(), whole(count), FRAME)
  flat = np.broadcast_to(np.arange(256, dtype=np.uint8)[None, None, :, None], (count, 1, 256, 3))
  colours = make_images(count, 2, 32).reshape(count, 1, 64, 3)
  images = np.concatenate([flat, colours], axis=2)
  assert_same_pixels(jax.jit(device_augment.weighted_grayscale)(images, params.grey_weights),
                     augment.weighted_grayscale(tf.constant(images),
                                                tf.constant(params.grey_weights)).numpy())


def test_spectrum_jitter_and_channel_cutmix_match_tf_given_the_tf_draws(optimized_xla):
  images = make_images(BATCH, 16, 8)
  for hw_swap in (True, False):
    params = tf_vimc_draws(tf_seed(), whole(BATCH), (16, 8), hw_swap=hw_swap)
    assert_same_pixels(
        jax.jit(device_augment.spectrum_jitter)(images, params.spectrum_channel,
                                                params.spectrum_factor),
        augment.spectrum_jitter(tf.constant(images), tf.constant(params.spectrum_channel),
                                tf.constant(params.spectrum_factor)).numpy())
    boxes = params.boxes
    assert_same_pixels(
        jax.jit(device_augment.channel_cutmix)(images, params.background, params.foreground,
                                               boxes),
        augment.channel_cutmix(tf.constant(images), tf.constant(params.background),
                               tf.constant(params.foreground),
                               augment.Boxes(*(tf.constant(b) for b in boxes))).numpy())
    if hw_swap:   # the reference's boxes run past the right edge, some start beyond it
      assert np.any(boxes.left + boxes.width > 8) and np.any(boxes.left >= 8)


VIMC_SWITCHES = [(True,) * 4, *(tuple(index != off for index in range(4)) for off in range(4)),
                 (False,) * 4]


@pytest.mark.parametrize("hw_swap", [True, False])
def test_vimc_given_the_tf_draws_matches_tf_vimc(hw_swap, optimized_xla):
  count = 128
  images = make_images(count, 16, 8)
  visible = np.arange(count) % 4 != 3
  params = tf_vimc_draws(tf_seed(), whole(count), (16, 8), visible=visible, hw_swap=hw_swap)
  for branch in range(4):   # each branch transforms some images
    assert np.sum(params.apply & (params.branch == branch)) >= 3, branch
  apply = jax.jit(device_augment.apply_vimc, static_argnums=2)
  for switches in VIMC_SWITCHES:
    expected = augment.vimc(tf.constant(images), tf_seed(), visible=tf.constant(visible),
                            cutmix_hw_swap=hw_swap, switches=switches).numpy()
    got = np.asarray(apply(images, params, switches))
    assert_same_pixels(got, expected, err_msg=str(switches))
    if switches == (True,) * 4:
      changed = np.any(got != images, axis=(1, 2, 3))
      assert not changed[~visible].any() and changed[visible].any()
      # The rows convention, as in the other ops' tests.
      rows = augment.Rows(32, 96, count)
      part = augment.vimc(tf.constant(images[rows.start:rows.stop]), tf_seed(),
                          visible=tf.constant(visible[rows.start:rows.stop]),
                          cutmix_hw_swap=hw_swap, rows=rows).numpy()
      assert_same_pixels(got[rows.start:rows.stop], part)


# --- 2. Draws: the same distributions -------------------------------------------------------


def assert_frequencies(sample, probabilities, label=""):
  """A discrete sample takes only the values of `probabilities` ({value: p}), each with its
  probability within Z standard errors."""
  sample = np.asarray(sample).ravel()
  assert set(np.unique(sample).tolist()) <= set(probabilities), label
  for value, probability in probabilities.items():
    frequency = np.mean(sample == value)
    error = np.sqrt(probability * (1 - probability) / len(sample))
    assert abs(frequency - probability) <= Z * error, (label, value, frequency, probability)


def assert_same_distribution(tf_sample, device_sample, label=""):
  """Two samples of one quantity: Kolmogorov-Smirnov at p = 1e-6, means within Z standard
  errors."""
  tf_sample = np.asarray(tf_sample, np.float64).ravel()
  device_sample = np.asarray(device_sample, np.float64).ravel()
  assert stats.ks_2samp(tf_sample, device_sample).pvalue > 1e-6, label
  error = np.sqrt(tf_sample.var() / len(tf_sample) + device_sample.var() / len(device_sample))
  assert abs(tf_sample.mean() - device_sample.mean()) <= Z * error + 1e-9, (
      label, tf_sample.mean(), device_sample.mean())


def assert_same_frequency(tf_flags, device_flags, label=""):
  """Two samples of an event: its frequencies within Z standard errors of each other."""
  tf_rate, device_rate = np.mean(tf_flags), np.mean(device_flags)
  pooled = (tf_rate + device_rate) / 2
  error = np.sqrt(pooled * (1 - pooled) * (1 / np.size(tf_flags) + 1 / np.size(device_flags)))
  assert abs(tf_rate - device_rate) <= Z * error + 1e-12, (label, tf_rate, device_rate)


def assert_uncorrelated(first, second, label=""):
  correlation = np.corrcoef(np.asarray(first, np.float64), np.asarray(second, np.float64))[0, 1]
  assert abs(correlation) <= Z / np.sqrt(len(first)), (label, correlation)


def both_draws(name, frame=FRAME):
  """The TF and the device draws of OPS[name] for DRAWS rows (different generators, so the
  seeds need not match)."""
  op = OPS[name]
  return (numpy_tree(op.tf_draws(tf_seed(DRAW_SEED), whole(DRAWS), frame)),
          numpy_tree(op.device_draws(device_key(DRAW_SEED), DRAWS, frame)))


def test_crop_offsets_uniform_and_flip_one_half():
  pad = 10
  op = crop_flip_op(pad, 0)
  for params in (numpy_tree(op.tf_draws(tf_seed(DRAW_SEED), whole(DRAWS), FRAME)),
                 numpy_tree(op.device_draws(device_key(DRAW_SEED), DRAWS, FRAME))):
    uniform = {offset: 1 / (2 * pad + 1) for offset in range(2 * pad + 1)}
    assert_frequencies(params.top, uniform, "top")
    assert_frequencies(params.left, uniform, "left")
    assert_frequencies(params.flip, {True: 0.5, False: 0.5}, "flip")
    assert_uncorrelated(params.top, params.left, "top, left")
    assert_uncorrelated(params.top, params.flip, "top, flip")


def assert_boxes_in_frame(boxes, height, width):
  """Every non-empty box fits strictly inside the frame, as the references' search demands."""
  drawn = boxes.height > 0
  np.testing.assert_array_equal(drawn, boxes.width > 0)
  top, left, box_height, box_width = (b[drawn] for b in boxes)
  assert np.all(box_height < height) and np.all(box_width < width)
  assert np.all(top >= 0) and np.all(top + box_height <= height)
  assert np.all(left >= 0) and np.all(left + box_width <= width)


def assert_same_box_distribution(tf_boxes, device_boxes, label=""):
  assert_same_frequency(tf_boxes.height > 0, device_boxes.height > 0, f"{label} drawn")
  tf_drawn, device_drawn = tf_boxes.height > 0, device_boxes.height > 0
  for field in device_augment.Boxes._fields:
    assert_same_distribution(getattr(tf_boxes, field)[tf_drawn],
                             getattr(device_boxes, field)[device_drawn], f"{label} {field}")
  assert_same_distribution((tf_boxes.height * tf_boxes.width)[tf_drawn],
                           (device_boxes.height * device_boxes.width)[device_drawn],
                           f"{label} area")


@pytest.mark.parametrize("variant", sorted(augment.ERASING_VARIANTS))
def test_erasing_boxes_same_distribution(variant):
  tf_boxes, device_boxes = both_draws(f"random_erasing_{variant}")
  spec = augment.ERASING_VARIANTS[variant]
  for boxes in (tf_boxes, device_boxes):
    assert_boxes_in_frame(boxes, *FRAME)
    area = boxes.height * boxes.width / (FRAME[0] * FRAME[1])
    drawn = boxes.height > 0
    # The area is drawn in area_range; rounding each side moves it by about a side's worth.
    assert area[drawn].min() > spec.area_range[0] * 0.9
    assert area[drawn].max() < spec.area_range[1] * 1.1
    # Erased with probability 1/2, when a try fits (nearly always at 288 x 144).
    assert 0.45 < drawn.mean() <= 0.5 + Z * np.sqrt(0.25 / DRAWS)
  assert_same_box_distribution(tf_boxes, device_boxes, variant)


@pytest.mark.parametrize("side", ["tf", "device"])
def test_erasing_happens_only_when_the_probability_says(side):
  """The same seed at probability 0, 1/2 and 1: no box; at 1, a box for every image whose try
  fits; at 1/2, the boxes of about half of those."""
  def draw(probability):
    keywords = dict(probability=probability, area_range=(0.02, 0.4), aspect_range=(0.3, 3.3),
                    log_aspect=False, max_attempts=1)   # 1 try: about 7 % find no fit
    if side == "tf":
      return numpy_tree(augment._draw_boxes(tf_seed(DRAW_SEED), whole(DRAWS), 24, 12,
                                            **keywords))
    return numpy_tree(device_augment._draw_boxes(device_key(DRAW_SEED), DRAWS, 24, 12,
                                                 **keywords))
  never, half, always = (draw(probability).height > 0 for probability in (0.0, 0.5, 1.0))
  assert not never.any()
  assert np.all(always[half])           # the same tries: erased at 1/2 ⊂ erased at 1
  assert 0.5 < always.mean() < 0.99
  ratio = half.sum() / always.sum()
  assert abs(ratio - 0.5) <= Z * np.sqrt(0.25 / always.sum())


@pytest.mark.parametrize("hw_swap", [True, False])
def test_channel_cutmix_boxes_same_distribution(hw_swap):
  height, width = FRAME
  tf_params = tf_vimc_draws(tf_seed(DRAW_SEED), whole(DRAWS), FRAME, hw_swap=hw_swap)
  device_params = numpy_tree(device_augment.vimc_params(device_key(DRAW_SEED), DRAWS, *FRAME,
                                                        cutmix_hw_swap=hw_swap))
  pasted_areas = []
  for boxes in (tf_params.boxes, device_params.boxes):
    # The reference's swap draws the box in a W x H frame; corrected: inside the image.
    assert_boxes_in_frame(boxes, *((width, height) if hw_swap else (height, width)))
    assert np.mean(boxes.height > 0) > 0.999      # 10 tries nearly always fit
    pasted_width = np.clip(np.minimum(boxes.left + boxes.width, width) - boxes.left, 0, None)
    pasted_areas.append(boxes.height * pasted_width / (height * width))
    empty = pasted_areas[-1] == 0
    if hw_swap:   # spec mcja §1.2: about a quarter paste nothing
      assert 0.22 < empty.mean() < 0.30
    else:
      assert not empty.any()
  assert_same_box_distribution(tf_params.boxes, device_params.boxes, f"hw_swap={hw_swap}")
  assert_same_distribution(*pasted_areas, "pasted area")


def test_channel_exchange_draws_each_channel_one_third():
  for params in both_draws("channel_exchange"):
    assert_frequencies(params["channels"], {0: 1 / 3, 1: 1 / 3, 2: 1 / 3})


@pytest.mark.parametrize("variant, probabilities", [
    ("caj", {0: 1 / 4, 1: 1 / 4, 2: 1 / 4, GREY: 1 / 8, SAME: 1 / 8}),
    ("djanet", {1: 1 / 2, GREY: 1 / 4, SAME: 1 / 4})])
def test_channel_adaptive_grey_outcome_frequencies(variant, probabilities):
  for params in both_draws(f"channel_adaptive_grey_{variant}"):
    assert_frequencies(adaptive_grey_outcomes(params, variant), probabilities, variant)


def test_channel_scale_draws():
  tf_params, device_params = both_draws("channel_scale")
  for params in (tf_params, device_params):
    assert_frequencies(params["apply"], {True: 0.5, False: 0.5})
    scales = params["scales"]
    assert scales.min() >= 0.02 and scales.max() <= 1.0
    for first, second in ((0, 1), (0, 2), (1, 2)):   # independent per channel
      assert_uncorrelated(scales[:, first], scales[:, second], "channels")
  for channel in range(3):
    assert_same_distribution(tf_params["scales"][:, channel],
                             device_params["scales"][:, channel], f"scale {channel}")
  assert_same_distribution(stats.uniform(0.02, 0.98).rvs(DRAWS, random_state=0),
                           device_params["scales"][:, 0], "U(0.02, 1)")


def test_random_grayscale_and_brightness_draws():
  for params in both_draws("random_grayscale"):
    assert_frequencies(params["apply"], {True: 0.5, False: 0.5})
  tf_params, device_params = both_draws("random_brightness")
  for params in (tf_params, device_params):
    assert params["factors"].min() >= 0.5 and params["factors"].max() <= 1.5
  assert_same_distribution(tf_params["factors"], device_params["factors"], "brightness")
  assert_same_distribution(stats.uniform(0.5, 1.0).rvs(DRAWS, random_state=0),
                           device_params["factors"], "U(0.5, 1.5)")


def test_vimc_draws_same_distribution():
  visible = np.arange(DRAWS) % 3 != 0
  tf_params = tf_vimc_draws(tf_seed(DRAW_SEED), whole(DRAWS), FRAME, visible=visible)
  device_params = numpy_tree(device_augment.vimc_params(
      device_key(DRAW_SEED), DRAWS, *FRAME, visible=visible))
  for params in (tf_params, device_params):
    assert_frequencies(params.branch, {branch: 1 / 4 for branch in range(4)}, "branch")
    assert not params.apply[~visible].any()
    assert_frequencies(params.apply[visible], {True: 0.5, False: 0.5}, "apply")
    # Hue: the byte of trunc(U(-0.2, 0.2) * 255), i.e. -50..50 modulo 256 (51 would need
    # the factor's open upper bound).
    assert set(np.unique(params.shifts).tolist()) == set((np.arange(-50, 51) % 256).tolist())
    np.testing.assert_allclose(params.grey_weights.sum(axis=1), 1.0, rtol=1e-6)
    assert params.grey_weights.min() >= 0
    assert_frequencies(params.background * 3 + params.foreground,
                       {b * 3 + f: 1 / 6 for b in range(3) for f in range(3) if b != f},
                       "(background, foreground) distinct and uniform")
    assert_frequencies(params.spectrum_channel, {0: 1 / 3, 1: 1 / 3, 2: 1 / 3}, "spectrum")
  signed_shift = lambda params: (params.shifts + 128) % 256 - 128
  assert_same_distribution(signed_shift(tf_params), signed_shift(device_params), "hue shift")
  assert_same_frequency(tf_params.shifts == 0, device_params.shifts == 0, "no hue shift")
  for channel in range(3):
    assert_same_distribution(tf_params.grey_weights[:, channel],
                             device_params.grey_weights[:, channel], f"grey weight {channel}")
  assert_same_distribution(tf_params.spectrum_factor, device_params.spectrum_factor, "factor")
  assert_same_box_distribution(tf_params.boxes, device_params.boxes, "cutmix")


# --- 3. Whole recipes -------------------------------------------------------------------------


def test_device_recipes_are_the_tf_recipes():
  assert set(device_augment.DEVICE_RECIPES) == set(augment.RECIPES)
  with pytest.raises(ValueError, match="device"):
    device_augment.train_view(np.zeros((1, 4, 4, 3), np.uint8), np.array(SEED), "cutout",
                              pad=1)


BASE_IMAGES, COPIES = 4, 500
RECIPE_SHAPE = (24, 12)
VISIBLE = np.repeat(np.arange(BASE_IMAGES) % 2 == 0, COPIES)   # base images 0, 2 visible

RECIPE_CASES = {
    **{f"agw_{variant}": ("agw", dict(random_erasing_variant=variant))
       for variant in ("none", *sorted(augment.ERASING_VARIANTS))},
    **{recipe: (recipe, {}) for recipe in sorted(augment.RECIPES) if recipe != "agw"},
}
RECIPE_CASES["mcja"] = ("mcja", dict(visible=VISIBLE))


def recipe_images():
  """COPIES copies of each of BASE_IMAGES images, uint8 [BASE_IMAGES * COPIES, 24, 12, 3]."""
  return np.repeat(make_images(BASE_IMAGES, *RECIPE_SHAPE, seed=1), COPIES, axis=0)


def device_views(case, images, seed=SEED):
  """Eagerly: no statistic depends on how XLA compiles the ops (the determinism test runs
  recipes under jit), and eager ops are compiled once for all recipes."""
  recipe, options = RECIPE_CASES[case]
  return np.asarray(device_augment.train_view(images, np.array(seed, np.int32), recipe, pad=2,
                                              **options))


def tf_views(case, images, seed=SEED):
  recipe, options = RECIPE_CASES[case]
  if "visible" in options:
    options = dict(options, visible=tf.constant(options["visible"]))
  return augment.train_view(tf.constant(images), tf_seed(seed), recipe, pad=2,
                            **options).numpy()


def grey_views(views):
  """[B] bool pairs: views whose channels are equal in the normalised tensor (CAJ's and
  DJANet's channel ops) and views that are grey images (PIL grey, VIMC)."""
  tensor_grey = np.all(views[..., :1] == views, axis=(1, 2, 3))
  pixels = np.round((views * augment.IMAGENET_STD + augment.IMAGENET_MEAN) * 255)
  return tensor_grey, np.all(pixels[..., :1] == pixels, axis=(1, 2, 3))


# Largest per-pixel difference of means allowed, in standard errors, over the 3,456 compared
# (pixel, channel, base image) values of each moment. Pixels are far from normal (a border
# pixel is the fill in a few crops): with correct implementations the largest deviation over
# four seeds was 5.2; a wrong fill, mask or branch moves whole regions by tens.
PIXEL_Z = 6.5


@pytest.mark.parametrize("case", sorted(RECIPE_CASES))
def test_recipe_views_have_the_tf_views_statistics(case):
  images = recipe_images()
  tf_out, device_out = tf_views(case, images), device_views(case, images)
  assert device_out.dtype == np.float32 and device_out.shape == tf_out.shape
  for moment in (1, 2):   # per-pixel mean and mean square (the std)
    tf_moment = tf_out.reshape(BASE_IMAGES, COPIES, -1).astype(np.float64) ** moment
    device_moment = device_out.reshape(BASE_IMAGES, COPIES, -1).astype(np.float64) ** moment
    difference = np.abs(tf_moment.mean(axis=1) - device_moment.mean(axis=1))
    error = np.sqrt((tf_moment.var(axis=1) + device_moment.var(axis=1)) / COPIES)
    # Where neither side varies the pixel is the same deterministic value on both.
    assert np.all(difference <= PIXEL_Z * error + 1e-5), (
        case, moment, np.max(difference / np.maximum(error, 1e-12)))
  # Per view, each channel's mean and spread: the erasing's fill, probability and box sizes
  # move them, which per-pixel statistics see only faintly (a pixel is erased in few views).
  for statistic in (np.mean, np.std):
    tf_statistic, device_statistic = (statistic(views, axis=(1, 2))
                                      for views in (tf_out, device_out))
    for channel in range(3):
      assert_same_distribution(tf_statistic[:, channel], device_statistic[:, channel],
                               f"{case} view {statistic.__name__} of channel {channel}")
  # Grey views per base image (MCJA: VIMC's grey branches on visible images only).
  for tf_grey, device_grey, kind in zip(grey_views(tf_out), grey_views(device_out),
                                        ("tensor grey", "grey image")):
    for base, (tf_rows, device_rows) in enumerate(zip(tf_grey.reshape(BASE_IMAGES, COPIES),
                                                      device_grey.reshape(BASE_IMAGES, COPIES))):
      assert_same_frequency(tf_rows, device_rows, f"{case} {kind} of image {base}")


# Determinism and sharding (the same seed gives the same views, another seed others, 8 devices
# those of one) are tests/data/test_device_pipeline.py's, on whole batches.
