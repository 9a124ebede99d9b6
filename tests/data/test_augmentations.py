"""Every method's augmentation ops against hand-computed or PIL-computed expectations.

Deterministic parts are fed chosen parameters and compared pixel by pixel; random parts are
run with fixed seeds on small images and checked for which pixels change and to what, and for
the frequencies the references give (binomial bounds wide enough never to flake for a fixed
seed yet narrow enough to catch a wrong probability).
"""

import numpy as np
from PIL import Image
from PIL import ImageEnhance
import pytest
import tensorflow as tf

from vireid_jax.data import augment
from vireid_jax.data import splits
from vireid_jax.data import target_domains

SEED = tf.constant([4, 2], tf.int32)


def constant_channels(batch_size, height=4, width=3, values=(1.0, 2.0, 3.0)):
  """[B, H, W, 3] float32 whose channel c is `values[c]` everywhere."""
  return tf.constant(np.broadcast_to(np.array(values, np.float32),
                                     (batch_size, height, width, 3)).copy())


def random_uint8(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)


def boxes(top, left, height, width):
  return augment.Boxes(*(tf.constant(np.array(values, np.int32))
                         for values in (top, left, height, width)))


# --- Pad, crop, flip ---------------------------------------------------------------------------


def test_pad_fill_value_fills_the_border_mcja_uses_127():
  images = np.full((40, 4, 3, 3), 200, np.uint8)
  out = augment.pad_crop_flip(tf.constant(images), SEED, 2, fill=127).numpy()
  assert set(np.unique(out).tolist()) <= {127, 200}
  for image in out:
    # The 200s form one contiguous window of at least (4-2) x (3-2) pixels.
    inside = np.argwhere(image[..., 0] == 200)
    rows, columns = np.unique(inside[:, 0]), np.unique(inside[:, 1])
    assert len(inside) == len(rows) * len(columns) >= 2
    assert np.all(np.diff(rows) == 1) and np.all(np.diff(columns) == 1)
  # Some windows are shifted, so some border pixels are the fill.
  assert (out == 127).any() and (out == 200).any()


# --- Random erasing ---------------------------------------------------------------------------


def test_erase_writes_the_fill_inside_the_box_only():
  images = tf.zeros((2, 5, 4, 3))
  out = augment.erase(images, boxes([1, 0], [2, 3], [2, 0], [3, 2]),
                      augment.CAJ_ERASING_FILL).numpy()
  expected = np.zeros((2, 5, 4, 3), np.float32)
  expected[0, 1:3, 2:4] = augment.CAJ_ERASING_FILL  # width 3 from column 2 clips at 4
  np.testing.assert_array_equal(out, expected)        # image 1: height 0, unchanged


@pytest.mark.parametrize("variant, fill", [("llcm", (0.0, 0.0, 0.0)),
                                           ("caj", (0.4914, 0.4822, 0.4465)),
                                           ("mcja", (0.0, 0.0, 0.0))])
def test_random_erasing_changes_one_rectangle_to_the_fill(variant, fill):
  height, width, count = 16, 8, 400
  images = constant_channels(count, height, width, (5.0, 6.0, 7.0))
  out = augment.random_erasing(images, SEED, variant).numpy()
  drawn = augment.erasing_boxes(SEED, augment.Rows(0, count, count), height, width, variant)
  spec = augment.ERASING_VARIANTS[variant]
  erased = 0
  for image, top, left, box_height, box_width in zip(out, *(d.numpy() for d in drawn)):
    changed = np.argwhere((image != (5.0, 6.0, 7.0)).any(-1))
    if box_height == 0:
      assert changed.size == 0
      continue
    erased += 1
    # Exactly the drawn box, fully inside the image (strict fit), holding the fill.
    expected = np.zeros((height, width), bool)
    expected[top:top + box_height, left:left + box_width] = True
    np.testing.assert_array_equal(np.argwhere(expected), changed)
    assert box_height < height and box_width < width
    assert top + box_height <= height and left + box_width <= width
    np.testing.assert_allclose(image[expected], np.broadcast_to(fill, (expected.sum(), 3)))
    # The area before rounding is in area_range; rounding moves each side by <= 1/2.
    low, high = spec.area_range
    assert (np.sqrt(low * height * width) - 1) ** 2 <= box_height * box_width
    assert box_height * box_width <= (np.sqrt(high * height * width) + 1) ** 2
  # p = 0.5 (at 16 x 8 nearly every image finds a fitting box within the attempts).
  assert 150 < erased < 250


def test_random_erasing_rejects_an_unknown_variant():
  with pytest.raises(ValueError, match="random_erasing"):
    augment.random_erasing(tf.zeros((1, 4, 4, 3)), SEED, "zhong")


# --- Channel ops on normalised tensors (CAJ, DJANet) --------------------------------------------


def outcome_counts(out, outcomes):
  """How many images equal each of `outcomes` ([3] channel values of a constant image)."""
  counts = []
  for outcome in outcomes:
    counts.append(int(np.all(np.isclose(out, outcome), axis=(1, 2, 3)).sum()))
  assert sum(counts) == len(out), "every image must be one of the outcomes"
  return counts


def test_channel_exchange_copies_one_of_r_g_b_into_all_channels():
  out = augment.channel_exchange(constant_channels(600), SEED).numpy()
  counts = outcome_counts(out, [(1, 1, 1), (2, 2, 2), (3, 3, 3)])
  assert all(160 < count < 240 for count in counts)  # 1/3 each, never grey


def test_channel_adaptive_grey_caj_probabilities():
  grey = 0.2989 * 1 + 0.5870 * 2 + 0.1140 * 3
  out = augment.channel_adaptive_grey(constant_channels(800), SEED, "caj").numpy()
  counts = outcome_counts(out, [(1, 1, 1), (2, 2, 2), (3, 3, 3), (grey,) * 3, (1, 2, 3)])
  # 1/4, 1/4, 1/4, 1/8, 1/8 of 800.
  assert all(150 < count < 250 for count in counts[:3])
  assert all(60 < count < 140 for count in counts[3:])


def test_channel_adaptive_grey_djanet_probabilities():
  grey = 0.2989 * 1 + 0.5870 * 2 + 0.1140 * 3
  out = augment.channel_adaptive_grey(constant_channels(800), SEED, "djanet").numpy()
  green, grey_count, unchanged = outcome_counts(out, [(2, 2, 2), (grey,) * 3, (1, 2, 3)])
  assert 340 < green < 460 and 150 < grey_count < 250 and 150 < unchanged < 250


def test_channel_scale_multiplies_each_channel_by_two_u_0_01_0_5():
  out = augment.channel_scale(constant_channels(400), SEED).numpy()
  scales = out[:, 0, 0, :] / np.array([1.0, 2.0, 3.0])
  np.testing.assert_allclose(out, np.broadcast_to(scales[:, None, None, :] * [1.0, 2.0, 3.0],
                                                 out.shape), rtol=1e-6)
  unchanged = np.all(np.isclose(scales, 1.0), axis=1)
  assert 150 < unchanged.sum() < 250
  scaled = scales[~unchanged]
  assert scaled.min() >= 0.02 - 1e-6 and scaled.max() <= 1.0 + 1e-6
  # Independent per channel.
  assert (np.abs(scaled[:, 0] - scaled[:, 1]) > 1e-3).mean() > 0.9


# --- PIL arithmetic on uint8 images --------------------------------------------------------------


def test_pil_grey_matches_pil_convert_l():
  images = random_uint8((4, 9, 7, 3))
  expected = np.stack([np.asarray(Image.fromarray(image).convert("L")) for image in images])
  np.testing.assert_array_equal(augment.pil_grey(tf.constant(images)).numpy(), expected)


def test_random_grayscale_is_pil_grey_in_half_the_images():
  images = random_uint8((300, 4, 3, 3), seed=1)
  out = augment.random_grayscale(tf.constant(images), SEED).numpy()
  grey = np.stack([np.asarray(Image.fromarray(image).convert("L")) for image in images])
  converted = np.all(out == grey[..., None], axis=(1, 2, 3))
  unchanged = np.all(out == images, axis=(1, 2, 3))
  assert (converted | unchanged).all()
  assert 110 < converted.sum() < 190


def test_pil_blend_matches_pil_brightness_and_blend():
  images = random_uint8((5, 6, 4, 3), seed=2)
  factors = np.array([0.5, 0.73, 1.0, 1.31, 1.5], np.float32)
  out = augment.pil_blend(tf.zeros_like(images), tf.constant(images), tf.constant(factors))
  expected = np.stack([np.asarray(ImageEnhance.Brightness(Image.fromarray(image))
                                  .enhance(float(factor)))
                       for image, factor in zip(images, factors)])
  np.testing.assert_array_equal(out.numpy(), expected)
  degenerate = np.repeat(images[..., 1:2], 3, axis=-1)
  alphas = np.array([0.0, 0.2, 0.5, 0.77, 1.0], np.float32)
  out = augment.pil_blend(tf.constant(degenerate), tf.constant(images), tf.constant(alphas))
  expected = np.stack([np.asarray(Image.blend(Image.fromarray(first), Image.fromarray(second),
                                              float(alpha)))
                       for first, second, alpha in zip(degenerate, images, alphas)])
  np.testing.assert_array_equal(out.numpy(), expected)


def test_random_brightness_scales_by_a_factor_in_half_to_three_halves():
  images = np.full((300, 2, 2, 3), 100, np.uint8)
  out = augment.random_brightness(tf.constant(images), SEED).numpy()
  values = out[:, 0, 0, 0]
  assert np.all(out == values[:, None, None, None])  # one factor per image
  assert values.min() >= 50 and values.max() <= 150
  assert np.sum(values < 100) > 100 and np.sum(values > 100) > 100


def torchvision_adjust_hue(image, shift):
  """torchvision 0.9's PIL path: hue byte + shift (mod 256) through PIL's HSV."""
  hue, saturation, value = Image.fromarray(image).convert("HSV").split()
  hue = Image.fromarray(((np.asarray(hue).astype(np.int32) + shift) % 256).astype(np.uint8), "L")
  return np.asarray(Image.merge("HSV", (hue, saturation, value)).convert("RGB"))


def test_adjust_hue_matches_pil_hsv_round_trip():
  images = random_uint8((6, 12, 10, 3), seed=3)
  images[0, :4] = 90  # grey pixels: saturation 0
  shifts = np.array([0, 10, 51, 200, 255, 128], np.int32)
  out = augment.adjust_hue(tf.constant(images), tf.constant(shifts)).numpy()
  for image, shift, got in zip(images, shifts, out):
    np.testing.assert_array_equal(got, torchvision_adjust_hue(image, shift))


def test_weighted_grayscale_truncates_the_weighted_sum():
  images = np.array([[[[10, 20, 30], [255, 255, 255]]]], np.uint8)
  out = augment.weighted_grayscale(tf.constant(images), tf.constant([[0.25, 0.25, 0.5]]))
  # 2.5 + 5 + 15 = 22.5 -> 22; 255 -> 255.
  np.testing.assert_array_equal(out.numpy(), [[[[22] * 3, [255] * 3]]])


def test_channel_cutmix_pastes_the_foreground_channel_inside_the_box():
  image = np.zeros((1, 4, 3, 3), np.uint8)
  image[..., 0], image[..., 1], image[..., 2] = 10, 20, 30
  out = augment.channel_cutmix(tf.constant(image), tf.constant([0]), tf.constant([2]),
                               boxes([1], [1], [2], [5])).numpy()
  expected = np.full((4, 3), 10, np.uint8)
  expected[1:3, 1:3] = 30  # width 5 from column 1 is clipped at the image edge
  np.testing.assert_array_equal(out[0], np.repeat(expected[..., None], 3, axis=-1))


def cutmix_box_arrays(hw_swap, count=3000, height=384, width=192):
  drawn = augment.channel_cutmix_boxes(SEED, augment.Rows(0, count, count), height, width,
                                       hw_swap=hw_swap)
  return [d.numpy() for d in drawn]


def test_channel_cutmix_box_reference_bug_top_half_and_a_quarter_empty():
  top, left, box_height, box_width = cutmix_box_arrays(hw_swap=True)
  # Acceptance and placement in the swapped frame: rows within the top W = 192.
  assert np.all(top + box_height <= 192) and np.all(box_width < 384)
  # Columns are clipped at the true width: empty when left >= 192 (spec: about 26 %).
  pasted_width = np.clip(np.minimum(left + box_width, 192) - left, 0, None)
  empty = (pasted_width == 0) | (box_height == 0)
  assert 0.22 < empty.mean() < 0.30
  area = box_height * pasted_width / (384 * 192)
  assert 0.06 < area.mean() < 0.10  # spec: mean pasted area about 8 %


def test_channel_cutmix_box_corrected_lies_inside_the_image():
  top, left, box_height, box_width = cutmix_box_arrays(hw_swap=False)
  assert np.all(top + box_height <= 384) and np.all(left + box_width <= 192)
  assert np.all(box_height > 0) and np.all(box_width > 0)
  # Uses the whole height, not only the top half.
  assert np.mean(top + box_height > 192) > 0.3


def test_spectrum_jitter_is_pil_blend_of_a_channel_towards_the_image():
  images = random_uint8((3, 5, 4, 3), seed=4)
  channels, factors = np.array([0, 1, 2], np.int32), np.array([0.0, 0.4, 0.9], np.float32)
  out = augment.spectrum_jitter(tf.constant(images), tf.constant(channels),
                                tf.constant(factors)).numpy()
  for image, channel, factor, got in zip(images, channels, factors, out):
    degenerate = Image.fromarray(np.repeat(image[..., channel:channel + 1], 3, axis=-1))
    np.testing.assert_array_equal(got, np.asarray(Image.blend(degenerate, Image.fromarray(image),
                                                              float(factor))))


def test_vimc_changes_half_the_visible_images_and_no_infrared_one():
  count = 400
  images = random_uint8((count, 6, 4, 3), seed=5)
  visible = np.arange(count) % 4 != 0
  out = augment.vimc(tf.constant(images), SEED, visible=tf.constant(visible)).numpy()
  changed = np.any(out != images, axis=(1, 2, 3))
  assert not changed[~visible].any()
  # Each branch applies with p = 1/2; a hue shift of 0 or an empty CutMix box may leave an
  # image as it was, so slightly under half change.
  assert 0.38 < changed[visible].mean() < 0.56
  # WG, CC and SJ give grey images (equal channels) or blends towards one; hue keeps colour:
  # both kinds occur among the changed images.
  grey = np.all(out[..., :1] == out, axis=(1, 2, 3))
  assert 0 < (grey & changed).sum() < changed.sum()


def test_a_switched_off_vimc_branch_is_the_identity_and_keeps_its_quarter_share():
  count = 400
  images = random_uint8((count, 6, 4, 3), seed=5)
  visible = tf.constant(np.ones(count, bool))
  everything = augment.vimc(tf.constant(images), SEED, visible=visible).numpy()
  changed_by = {}
  for off, name in enumerate(augment.VIMC_BRANCHES):
    switches = augment.vimc_branch_switches({name: False})
    assert switches == tuple(index != off for index in range(4))
    out = augment.vimc(tf.constant(images), SEED, visible=visible, switches=switches).numpy()
    # The other branches' draws are untouched: the images they change are changed alike, the
    # images of the switched-off branch come out as they went in.
    differs = np.any(out != everything, axis=(1, 2, 3))
    np.testing.assert_array_equal(out[differs], images[differs])
    changed_by[name] = differs.mean()
  # Each branch held its 1/4 share of the choice (applied with p = 1/2: about 1/8 of the images).
  for name, share in changed_by.items():
    assert 0.06 < share < 0.19, (name, share)
  all_off = augment.vimc_branch_switches({name: False for name in augment.VIMC_BRANCHES})
  np.testing.assert_array_equal(
      augment.vimc(tf.constant(images), SEED, visible=visible, switches=all_off).numpy(), images)
  with pytest.raises(ValueError, match="vimc_branches.*cutmix"):
    augment.vimc_branch_switches({"cutmix": False})


# --- Whole views --------------------------------------------------------------------------------


def test_train_view_agw_is_agw_train_augment():
  images = tf.constant(random_uint8((6, 8, 4, 3), seed=6))
  np.testing.assert_array_equal(augment.train_view(images, SEED, "agw", pad=2).numpy(),
                                augment.agw_train_augment(images, SEED, 2).numpy())


def test_caj_exchange_view_has_equal_channels_and_visible_view_does_not():
  images = tf.constant(random_uint8((16, 8, 4, 3), seed=7))
  exchanged = augment.train_view(images, SEED, "caj_visible_exchange", pad=1).numpy()
  np.testing.assert_array_equal(exchanged[..., :1] == exchanged, True)
  plain = augment.train_view(images, SEED, "caj_visible", pad=1).numpy()
  assert not np.all(plain[..., :1] == plain)


def test_unknown_recipe_is_an_error():
  with pytest.raises(ValueError, match="recipe"):
    augment.train_view(tf.zeros((1, 4, 4, 3), tf.uint8), SEED, "cutout", pad=1)


def test_rows_give_the_draws_of_those_rows_of_the_global_batch():
  images = random_uint8((8, 6, 4, 3), seed=8)
  visible = tf.constant(np.arange(8) % 2 == 0)
  for recipe in augment.RECIPES:
    whole = augment.train_view(tf.constant(images), SEED, recipe, pad=1, visible=visible,
                               random_erasing_variant="llcm").numpy()
    parts = [augment.train_view(tf.constant(images[start:start + 4]), SEED, recipe, pad=1,
                                visible=visible[start:start + 4],
                                random_erasing_variant="llcm",
                                rows=augment.Rows(start, start + 4, 8)).numpy()
             for start in (0, 4)]
    np.testing.assert_array_equal(np.concatenate(parts), whole, err_msg=recipe)


# --- DAN's synthetic target domains ----------------------------------------------------------


def test_synthetic_domain_seed_is_sha256_of_the_image_key():
  import hashlib
  expected = int.from_bytes(hashlib.sha256(b"sysu/noise/cam1/0001/0001.jpg").digest()[:8],
                            "big")
  assert target_domains.synthetic_domain_seed("sysu", "noise", "cam1/0001/0001.jpg") == expected


def test_noise_domain_adds_gaussian_noise_of_sigma_10_to_30():
  image = np.full((64, 32, 3), 128, np.uint8)
  sigmas = []
  for seed in range(20):
    out = target_domains.synthetic_domain_image(image, "noise", infrared=False, seed=seed)
    noise = out.astype(float) - 128
    assert abs(noise.mean()) < 1.5
    sigmas.append(noise.std())
    # RGB noise is independent per channel.
    assert not np.array_equal(out[..., 0], out[..., 1])
  assert 9 < min(sigmas) and max(sigmas) < 31 and max(sigmas) - min(sigmas) > 5
  infrared = target_domains.synthetic_domain_image(image, "noise", infrared=True, seed=0)
  np.testing.assert_array_equal(infrared[..., :1] == infrared, True)  # one grey map


def test_lighting_domain_gamma_and_gain_ranges():
  image = np.zeros((2, 2, 3), np.uint8)
  image[0], image[1] = 255, 128
  for seed in range(20):
    out = target_domains.synthetic_domain_image(image, "lighting", infrared=False, seed=seed)
    gain = out[0, 0, 0] / 255
    gamma = np.log(out[1, 0, 0] / out[0, 0, 0]) / np.log(128 / 255)
    assert 0.6 - 0.01 <= gain <= 0.9 + 0.01
    assert 1.5 - 0.1 <= gamma <= 2.5 + 0.1
    infrared = target_domains.synthetic_domain_image(image, "lighting", infrared=True, seed=seed)
    # IR: one gain on the grey image, between 0.7 and 0.9, same for every pixel.
    ratio = infrared[0, 0, 0] / 255
    assert 0.7 - 0.01 <= ratio <= 0.9 + 0.01
    # Both values are rounded: |106 - 128 a| <= 0.5 + 128 * 0.5 / 255.
    assert abs(int(infrared[1, 0, 0]) - ratio * 128) <= 0.5 + 128 * 0.5 / 255


def test_synthetic_domain_depends_on_the_image_key_not_the_order():
  images = random_uint8((3, 6, 4, 3), seed=9)
  split = splits.SplitArrays(images, np.zeros(3, np.int32), np.zeros(3, np.int32),
                               np.ones(3, np.int32), np.array([0, 1, 0], np.int32),
                               np.array(["a.jpg", "b.jpg", "c.jpg"]))
  forward = target_domains.synthetic_target_domain(split, "noise", "regdb")
  backward = target_domains.synthetic_target_domain(split.select([2, 1, 0]), "noise", "regdb")
  np.testing.assert_array_equal(forward.images, backward.images[::-1])
  for index, path in enumerate(split.relative_paths):
    expected = target_domains.synthetic_domain_image(
        images[index], "noise", infrared=index == 1,
        seed=target_domains.synthetic_domain_seed("regdb", "noise", path))
    np.testing.assert_array_equal(forward.images[index], expected)
  with pytest.raises(ValueError, match="fog"):
    target_domains.synthetic_target_domain(split, "fog", "regdb")
