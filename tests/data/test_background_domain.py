"""DAN's "background" synthetic target domain (dan.md §8.4) against hand-computed expectations.

The test images are small synthetic persons: a bright elliptical blob on a dark, slightly noisy
uniform background, so the true foreground is known. Recolouring is checked by replaying the
generator's draws in the order `synthetic_domain_image` documents.
"""

import colorsys

import numpy as np
import pytest

from vireid_jax.data import splits
from vireid_jax.data import target_domains

HEIGHT, WIDTH = 96, 48
# Soft edges at H = 96: sigma = max(1, 0.96) = 1 px; OpenCV's float kernel is 9 wide
# (radius 4), so pixels more than 4 px from the mask's edge keep M exactly 0 or 1.
BLUR_RADIUS = 4


def person_image(seed=0, person=(200, 170, 150), background=(40, 70, 55)):
  """[H, W, 3] uint8 blob (centre (24, 48), semi-axes 10 x 38) and its [H, W] bool mask."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[:HEIGHT, :WIDTH] + 0.5
  inside = ((x - 24) / 10) ** 2 + ((y - 48) / 38) ** 2 <= 1
  image = np.where(inside[..., None], person, background)
  image = image + rng.integers(-8, 9, (HEIGHT, WIDTH, 3))
  return np.clip(image, 0, 255).astype(np.uint8), inside


def infrared_person_image(seed=0):
  """The blob image in grey (three equal channels), as the datasets store infrared images."""
  image, inside = person_image(seed, person=(190, 190, 190), background=(60, 60, 60))
  return np.repeat(image[..., :1], 3, axis=-1), inside


def shrink(mask, radius):
  """Pixels whose whole (2 radius + 1)^2 neighbourhood lies in `mask` (outside = False)."""
  padded = np.pad(mask, radius)
  windows = np.lib.stride_tricks.sliding_window_view(padded, (2 * radius + 1,) * 2)
  return windows.all(axis=(-1, -2))


def deep_inside_and_outside(inside):
  radius = BLUR_RADIUS + 1
  return shrink(inside, radius), shrink(~inside, radius)


def test_kernel_size_is_odd_3_percent_of_the_short_side_at_least_3():
  assert target_domains.morphology_kernel_size(64, 32) == 3  # round(0.96) = 1 → 3
  assert target_domains.morphology_kernel_size(288, 144) == 5  # round(4.32) = 4 → odd 5
  assert target_domains.morphology_kernel_size(384, 192) == 7  # round(5.76) = 6 → odd 7
  assert target_domains.morphology_kernel_size(170, 200) == 5  # round(5.1) = 5


def test_person_rectangle_spans_10_to_90_percent_of_w_and_3_to_97_percent_of_h():
  # x: round(4.8) = 5 .. round(43.2) = 43; y: round(2.88) = 3 .. round(93.12) = 93.
  assert target_domains.person_rectangle(HEIGHT, WIDTH) == (5, 3, 38, 90)


def test_elliptical_prior_semi_axes_on_pixel_centres():
  prior = target_domains.elliptical_prior(HEIGHT, WIDTH)
  # Middle row: |x + 0.5 - 24| <= ~0.32 * 48 = 15.36 → x in 9..38.
  assert np.flatnonzero(prior[48]).tolist() == list(range(9, 39))
  # Middle column: |y + 0.5 - 48| <= ~0.47 * 96 = 45.1 → y in 3..92.
  assert np.flatnonzero(prior[:, 24]).tolist() == list(range(3, 93))
  assert not prior[0, 0] and not prior[-1, -1] and not prior[0, 24] and not prior[48, 0]


@pytest.mark.parametrize("infrared", [False, True])
def test_mask_covers_the_person_and_not_the_corners(infrared):
  image, inside = infrared_person_image() if infrared else person_image()
  binary, used_fallback = target_domains.binary_foreground_mask(image, infrared=infrared,
                                                                grabcut_seed=3)
  assert not used_fallback
  # The blob's edge may move by a pixel at most in a few places; the interior and the
  # background are exact.
  assert (binary ^ inside).sum() <= 0.02 * inside.sum()
  deep_in, deep_out = deep_inside_and_outside(inside)
  assert binary[deep_in].all() and not binary[deep_out].any()
  soft, soft_fallback = target_domains.foreground_mask(image, infrared=infrared, grabcut_seed=3)
  assert not soft_fallback and soft.shape == (HEIGHT, WIDTH)
  assert soft.min() >= 0.0 and soft.max() <= 1.0
  np.testing.assert_allclose(soft[deep_in], 1.0, atol=1e-6)
  np.testing.assert_allclose(soft[deep_out], 0.0, atol=1e-6)
  for corner in (soft[0, 0], soft[0, -1], soft[-1, 0], soft[-1, -1]):
    assert corner == 0.0
  # Soft edges: some pixels between 0 and 1, all within the blur radius of the edge.
  fractional = (soft > 1e-3) & (soft < 1 - 1e-3)
  assert fractional.any()
  assert not (fractional & (deep_in | deep_out)).any()


@pytest.mark.parametrize("infrared", [False, True])
def test_no_separable_foreground_falls_back_to_the_elliptical_prior(infrared):
  uniform_noise = np.random.default_rng(1).integers(0, 256, (HEIGHT, WIDTH, 3)).astype(np.uint8)
  flat = np.full((HEIGHT, WIDTH, 3), 100, np.uint8)
  for image in (uniform_noise, flat):
    if infrared:
      image = np.repeat(image[..., :1], 3, axis=-1)
    binary, used_fallback = target_domains.binary_foreground_mask(image, infrared=infrared)
    assert used_fallback
    np.testing.assert_array_equal(binary, target_domains.elliptical_prior(HEIGHT, WIDTH))
    assert abs(binary.mean() - np.pi * 0.32 * 0.47) < 0.02
    soft, _ = target_domains.foreground_mask(image, infrared=infrared)
    assert soft[HEIGHT // 2, WIDTH // 2] == pytest.approx(1.0)
    assert soft[0, 0] == 0.0 and soft[-1, -1] == 0.0


def test_image_too_small_for_grabcut_falls_back_instead_of_failing():
  image = np.random.default_rng(0).integers(0, 256, (6, 4, 3)).astype(np.uint8)
  _, used_fallback = target_domains.binary_foreground_mask(image, infrared=False)
  assert used_fallback
  out = target_domains.synthetic_domain_image(image, "background", infrared=False, seed=0)
  assert out.shape == (6, 4, 3) and out.dtype == np.uint8


def test_rgb_background_is_blended_towards_the_replayed_hsv_colour():
  image, inside = person_image()
  deep_in, deep_out = deep_inside_and_outside(inside)
  pixels = image.astype(np.float64)
  for seed in range(5):
    out = target_domains.synthetic_domain_image(image, "background", infrared=False, seed=seed)
    rng = np.random.default_rng(seed)
    rng.integers(0, 2**31 - 1)  # GrabCut's seed
    hue, saturation, value = rng.uniform(0, 360), rng.uniform(0.5, 1), rng.uniform(0.4, 0.9)
    beta = rng.uniform(0.5, 0.8)
    assert 0 <= hue < 360 and 0.5 <= saturation <= 1 and 0.4 <= value <= 0.9
    assert 0.5 <= beta <= 0.8
    colour = 255 * np.array(colorsys.hsv_to_rgb(hue / 360, saturation, value))
    expected = np.clip(np.rint((1 - beta) * pixels + beta * colour), 0, 255)
    np.testing.assert_array_equal(out[deep_out], expected[deep_out])
    np.testing.assert_array_equal(out[deep_in], image[deep_in])
    # The background did change (beta >= 0.5 towards a colour unlike the dark green).
    assert np.abs(out[deep_out].astype(int) - image[deep_out]).max() > 20


def test_infrared_background_grey_is_at_least_60_from_the_background_mean():
  image, inside = infrared_person_image()
  deep_in, deep_out = deep_inside_and_outside(inside)
  grey = image[..., 0].astype(np.float64)
  redrawn = 0
  for seed in range(30):
    out = target_domains.synthetic_domain_image(image, "background", infrared=True, seed=seed)
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    rng = np.random.default_rng(seed)
    grabcut_seed = int(rng.integers(0, 2**31 - 1))
    beta = rng.uniform(0.5, 0.8)
    binary, _ = target_domains.binary_foreground_mask(image, infrared=True,
                                                      grabcut_seed=grabcut_seed)
    background_mean = grey[~binary].mean()
    assert abs(background_mean - 60) < 1  # the background is grey 60 ± 8 noise
    draws = [rng.uniform(0, 255) for _ in range(11)]
    chosen = next(g for g in draws if abs(g - background_mean) >= 60)
    redrawn += chosen != draws[0]
    expected = np.clip(np.rint((1 - beta) * grey + beta * chosen), 0, 255)
    np.testing.assert_array_equal(out[..., 0][deep_out], expected[deep_out])
    np.testing.assert_array_equal(out[..., 0][deep_in], grey[deep_in])
  # Grey levels within 60 of ~60, i.e. below ~120, are rejected: about 47 % of first draws.
  assert 3 <= redrawn <= 27


@pytest.mark.parametrize("infrared", [False, True])
def test_same_seed_same_output_whatever_ran_in_between(infrared):
  image = (infrared_person_image if infrared else person_image)(seed=4)[0]
  first = target_domains.synthetic_domain_image(image, "background", infrared=infrared, seed=11)
  target_domains.synthetic_domain_image(image, "background", infrared=infrared, seed=12)
  again = target_domains.synthetic_domain_image(image, "background", infrared=infrared, seed=11)
  np.testing.assert_array_equal(first, again)
  other = target_domains.synthetic_domain_image(image, "background", infrared=infrared, seed=12)
  assert not np.array_equal(first, other)


def test_pipeline_synthetic_target_domain_background():
  assert "background" in target_domains.SYNTHETIC_DOMAINS
  images = np.stack([person_image(0)[0], infrared_person_image(1)[0], person_image(2)[0]])
  split = splits.SplitArrays(images, np.zeros(3, np.int32), np.zeros(3, np.int32),
                               np.ones(3, np.int32), np.array([0, 1, 0], np.int32),
                               np.array(["a.jpg", "b.jpg", "c.jpg"]))
  forward = target_domains.synthetic_target_domain(split, "background", "sysu")
  backward = target_domains.synthetic_target_domain(split.select([2, 1, 0]), "background", "sysu")
  np.testing.assert_array_equal(forward.images, backward.images[::-1])
  for index, path in enumerate(split.relative_paths):
    expected = target_domains.synthetic_domain_image(
        images[index], "background", infrared=index == 1,
        seed=target_domains.synthetic_domain_seed("sysu", "background", path))
    np.testing.assert_array_equal(forward.images[index], expected)
  assert forward.images.shape == images.shape and forward.images.dtype == np.uint8
  assert not np.array_equal(forward.images, images)
