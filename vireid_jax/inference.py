"""Evaluation-mode features of a re-id model, for any number of images.

``extract_features(model, images, modality)`` is what the reference's ``test.py`` computes
with ``net(input, input, modal)`` under ``net.eval()``: the L2-normalised pooled ("POOL")
and BNNeck ("FC") features of each image through its modality's stem (spec baseline §4.5,
§7.1). It works on an evaluation *view* of the model, so a model in training mode stays in
training mode and its BatchNorm statistics are never touched.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

MODALITIES = ('visible', 'infrared')


@nnx.jit(static_argnames=('modality',))
def _features(model: nnx.Module, images: jax.Array, modality: str) -> dict[str, jax.Array]:
  return model(**{modality: images})


def extract_features(
    model: nnx.Module,
    images: Any,
    modality: str,
    *,
    batch_size: int = 128,
) -> dict[str, jax.Array]:
  """Evaluation-mode features ``{"pool": [N, D], "bn": [N, D]}`` of ``images``.

  Images are processed in chunks of at most ``batch_size``; the last chunk is padded with
  zero images to the chunk size, so one compiled program serves every chunk. In evaluation
  mode BatchNorm uses running statistics, so every image's features are independent of the
  rest of its chunk and the padding changes nothing.

  Args:
    model: a model whose evaluation mode returns ``{"pool", "bn"}`` from
      ``model(visible=…)`` / ``model(infrared=…)`` (e.g. :class:`~vireid_jax.models.AGW`),
      in either mode; it is not modified.
    images: ``[N, H, W, 3]`` float32 images, normalised as in training (ImageNet mean/std).
    modality: ``"visible"`` or ``"infrared"``: the stem the images go through.
    batch_size: the most images per forward pass.

  Returns:
    ``{"pool": [N, D], "bn": [N, D]}`` float32 (L2-normalised for AGW).

  Raises:
    ValueError: unknown modality, images not ``[N, H, W, 3]``, or a non-positive batch size.
  """
  if modality not in MODALITIES:
    raise ValueError(f'modality must be one of {MODALITIES}, got {modality!r}.')
  images = np.asarray(images, np.float32)
  if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
    raise ValueError(f'images must be NHWC [N, H, W, 3] with N > 0, got shape {images.shape}.')
  if batch_size < 1:
    raise ValueError(f'batch_size must be positive, got {batch_size}.')

  view = nnx.view(model, deterministic=True, use_running_average=True)
  count = images.shape[0]
  chunk = min(batch_size, count)
  outputs = []
  for start in range(0, count, chunk):
    batch = images[start:start + chunk]
    valid = batch.shape[0]
    if valid < chunk:
      batch = np.concatenate([batch, np.zeros((chunk - valid, *batch.shape[1:]), np.float32)])
    features = _features(view, jnp.asarray(batch), modality)
    outputs.append({name: value[:valid] for name, value in features.items()})
  return {
      name: jnp.concatenate([output[name] for output in outputs]).astype(jnp.float32)
      for name in outputs[0]
  }
