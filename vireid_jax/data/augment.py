"""Image augmentations in TensorFlow, vectorised over a batch (tf.data side).

Every random draw is stateless and keyed by an explicit seed, which the pipeline derives from
(config seed, epoch, batch index): a resumed run augments each batch exactly as an
uninterrupted run does.
"""

from __future__ import annotations

import tensorflow as tf

from vireid_jax.data.normalization import IMAGENET_MEAN
from vireid_jax.data.normalization import IMAGENET_STD


def normalize(images: tf.Tensor) -> tf.Tensor:
  """uint8 [..., H, W, 3] → float32 ImageNet-normalised (÷255, minus mean, over std)."""
  images = tf.cast(images, tf.float32) / 255.0
  return (images - tf.constant(IMAGENET_MEAN)) / tf.constant(IMAGENET_STD)


def pad_crop_flip(images: tf.Tensor, seed: tf.Tensor, pad: int) -> tf.Tensor:
  """AGW's geometric augmentation on uint8 images (spec §3.1 steps 1–3).

  Zero-pad `pad` pixels on every side, crop back to H x W at a uniform offset in
  {0..2*pad} per axis, then flip horizontally with probability 0.5; each image draws its own.

  Args:
    images: [B, H, W, C] uint8.
    seed: [2] int32 stateless seed for this batch.
    pad: padding in pixels (10 at 288 x 144).

  Returns:
    [B, H, W, C] uint8.
  """
  batch_size = tf.shape(images)[0]
  height, width = images.shape[1], images.shape[2]
  seeds = tf.random.experimental.stateless_split(seed, num=3)
  tops = tf.random.stateless_uniform([batch_size], seeds[0], 0, 2 * pad + 1, dtype=tf.int32)
  lefts = tf.random.stateless_uniform([batch_size], seeds[1], 0, 2 * pad + 1, dtype=tf.int32)
  flips = tf.random.stateless_uniform([batch_size], seeds[2]) < 0.5

  padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
  rows = tops[:, None] + tf.range(height)[None, :]
  cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
  columns = lefts[:, None] + tf.range(width)[None, :]
  # Flipping a crop = reading its columns right to left.
  columns = tf.where(flips[:, None], tf.reverse(columns, axis=[1]), columns)
  return tf.gather(cropped, columns, axis=2, batch_dims=1)


def agw_train_augment(images: tf.Tensor, seed: tf.Tensor, pad: int) -> tf.Tensor:
  """The AGW train transform: pad, random crop, flip, normalise. uint8 → float32 [B,H,W,3]."""
  return normalize(pad_crop_flip(images, seed, pad))
