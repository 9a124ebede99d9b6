"""AGW train augmentation: padding, crop offsets, flips, normalisation."""

import numpy as np
import tensorflow as tf

from vireid_jax.data import augment


def test_normalize_matches_imagenet_statistics():
  pixel = np.array([[[[255, 0, 128]]]], np.uint8)
  expected = (np.array([1.0, 0.0, 128 / 255]) - augment.IMAGENET_MEAN) / augment.IMAGENET_STD
  np.testing.assert_allclose(augment.normalize(pixel).numpy()[0, 0, 0], expected, rtol=1e-6)


def test_pad_crop_flip_is_a_shifted_window_of_the_zero_padded_image():
  rng = np.random.default_rng(0)
  images = rng.integers(1, 256, size=(64, 6, 5, 3)).astype(np.uint8)  # no zeros inside
  pad = 2
  out = augment.pad_crop_flip(tf.constant(images), tf.constant([3, 7], tf.int32), pad).numpy()
  padded = np.pad(images, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
  offsets, flips = [], []
  for image, padded_image in zip(out, padded):
    matches = [(top, left, flip)
               for top in range(2 * pad + 1) for left in range(2 * pad + 1)
               for flip in (False, True)
               if np.array_equal(image, (lambda w: w[:, ::-1] if flip else w)(
                   padded_image[top:top + 6, left:left + 5]))]
    assert matches, "every output must be a crop of the padded image, possibly flipped"
    offsets.append(matches[0][:2])
    flips.append(matches[0][2])
  # Over 64 images the draws cover several offsets and both flip states.
  assert len(set(offsets)) > 5
  assert 10 < sum(flips) < 54


def test_augmentation_is_a_function_of_the_seed():
  images = tf.constant(np.random.default_rng(1).integers(0, 256, (8, 6, 5, 3)), tf.uint8)
  first = augment.agw_train_augment(images, tf.constant([1, 2]), 2).numpy()
  again = augment.agw_train_augment(images, tf.constant([1, 2]), 2).numpy()
  other = augment.agw_train_augment(images, tf.constant([1, 3]), 2).numpy()
  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first, other)
  assert first.dtype == np.float32 and first.shape == (8, 6, 5, 3)
