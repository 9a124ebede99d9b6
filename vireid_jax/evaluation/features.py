"""Features of many images through a features function, in fixed-size batches.

`extract_features` is the one batching helper: the evaluation (`evaluator.split_features`),
the training loop and `vireid_jax.inference.extract_features` all go through it. It takes
raw uint8 images (normalised here, optionally mirrored or reduced to one channel) or float32
images already normalised, and calls `features_fn(images [batch_size, H, W, 3] float32,
modality)` on batches of exactly `batch_size` rows, so one compiled program serves every
batch (and a batch sharded over a mesh always divides evenly).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from vireid_jax.data.splits import MODALITY_NAMES
from vireid_jax.data.normalization import IMAGENET_MEAN
from vireid_jax.data.normalization import IMAGENET_STD
from vireid_jax.models.layers import l2_normalize


# features_fn(images [B, H, W, 3] float32 normalised, modality) -> {name: [B, D]}.
FeaturesFn = Callable[[jax.Array, str], Mapping[str, jax.Array]]


@functools.partial(jax.jit, static_argnames=("channel", "flip"))
def prepare_images(images: jax.Array, *, channel: int | None = None,
                   flip: bool = False) -> jax.Array:
  """uint8 [B, H, W, 3] → float32 ImageNet-normalised (÷255, minus mean, over std).

  Args:
    images: [B, H, W, 3] uint8.
    channel: None, or 0/1/2 to replace the image by that channel repeated three
      times before normalising (MSER's spectral views).
    flip: mirror horizontally (the W axis).

  Returns:
    [B, H, W, 3] float32.
  """
  images = images.astype(jnp.float32) / 255.0
  if channel is not None:
    images = jnp.repeat(images[..., channel:channel + 1], 3, axis=-1)
  if flip:
    images = images[:, :, ::-1]
  return (images - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)


def _normalised_input(images: jax.Array, *, flip: bool = False) -> jax.Array:
  """Already-normalised float32 images [B, H, W, 3], mirrored along W with `flip`."""
  return images[:, :, ::-1] if flip else images


def extract_features(
    features_fn: FeaturesFn,
    images: np.ndarray,
    modality: str,
    *,
    batch_size: int,
    flip: bool = False,
    channel: int | None = None,
) -> dict[str, jax.Array]:
  """Features of `images` [N, H, W, 3] through `modality`'s stem, in fixed batches.

  Every call of `features_fn` gets exactly `batch_size` rows (the last batch is
  zero-padded and the padding dropped), so one compiled program serves all.
  With `flip`, each feature is the L2-normalised sum of the image's and its
  mirror's features ([CAJ] `testa.py`).

  Args:
    features_fn: `features_fn(images [batch_size, H, W, 3] float32
      ImageNet-normalised, modality) -> {name: [batch_size, D]}`, jitted by the
      caller; rows must not depend on each other (evaluation-mode BatchNorm).
    images: [N, H, W, 3], N > 0, taken by dtype:
      * uint8: raw RGB pixels, normalised here (`prepare_images`: ÷255, minus
        the ImageNet mean, over its std), batch by batch on the device;
      * floating (float32, or cast to it): already ImageNet-normalised, passed
        on as they are.
    modality: "visible" or "infrared".
    batch_size: rows per `features_fn` call.
    flip: also run the horizontally mirrored images and average (see above).
    channel: uint8 images only: None, or 0/1/2 for MSER's spectral view that
      repeats that channel three times before normalising.

  Returns:
    {feature name: [N, D]} on the device.

  Raises:
    ValueError: unknown modality, images not [N, H, W, 3] with N > 0, neither
      uint8 nor floating, `channel` with float images, or batch_size < 1.
  """
  if modality not in MODALITY_NAMES:
    raise ValueError(f"modality must be one of {MODALITY_NAMES}, got {modality!r}.")
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
    raise ValueError(f"images must be NHWC [N, H, W, 3] with N > 0, got shape {images.shape}.")
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
  if images.dtype == np.uint8:
    prepare = functools.partial(prepare_images, channel=channel)
  elif np.issubdtype(images.dtype, np.floating):
    if channel is not None:
      raise ValueError(f"channel={channel} (a spectral view) needs uint8 images; float images"
                       " are taken as already normalised.")
    images = images.astype(np.float32, copy=False)
    prepare = _normalised_input
  else:
    raise ValueError(f"images must be uint8 (raw pixels) or floating (ImageNet-normalised),"
                     f" got {images.dtype}.")

  outputs: dict[str, list[jax.Array]] = {}
  for start in range(0, len(images), batch_size):
    batch = images[start:start + batch_size]
    count = len(batch)
    if count < batch_size:
      batch = np.concatenate([batch, np.zeros((batch_size - count, *batch.shape[1:]), batch.dtype)])
    batch = jnp.asarray(batch)
    features = dict(features_fn(prepare(batch), modality))
    if flip:
      mirrored = features_fn(prepare(batch, flip=True), modality)
      features = {name: l2_normalize(value + mirrored[name]) for name, value in features.items()}
    for name, value in features.items():
      outputs.setdefault(name, []).append(value[:count])
  return {name: jnp.concatenate(values) for name, values in outputs.items()}
