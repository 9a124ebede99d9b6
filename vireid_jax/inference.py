"""Evaluation-mode features of a re-id model, for any number of images.

``extract_features(model, images, modality)`` is what the reference's ``test.py`` computes
with ``net(input, input, modal)`` under ``net.eval()``: the L2-normalised pooled ("POOL")
and BNNeck ("FC") features of each image through its modality's stem (spec baseline §4.5,
§7.1). It works on an evaluation *view* of the model, so a model in training mode stays in
training mode and its BatchNorm statistics are never touched. Batching and padding are
:func:`vireid_jax.evaluation.extract_features`'s, the same as in evaluation.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vireid_jax import evaluation


@nnx.jit(static_argnames=('modality',))
def _features(model: nnx.Module, images: jax.Array, modality: str) -> dict[str, jax.Array]:
  return model(**{modality: images}).features()


def extract_features(
    model: nnx.Module,
    images: Any,
    modality: str,
    *,
    batch_size: int = 128,
) -> dict[str, jax.Array]:
  """Evaluation-mode features ``{"pool": [N, D], "bn": [N, D]}`` of ``images``.

  Images are processed in chunks of ``min(batch_size, N)``; the last chunk is padded with
  zero images to the chunk size, so one compiled program serves every chunk. In evaluation
  mode BatchNorm uses running statistics, so every image's features are independent of the
  rest of its chunk and the padding changes nothing.

  Args:
    model: a model whose forward ``model(visible=…)`` / ``model(infrared=…)`` returns
      :class:`~vireid_jax.models.ReidOutputs` (or anything with a ``features()`` method),
      e.g. :class:`~vireid_jax.models.AGW`, in either mode; it is not modified.
    images: ``[N, H, W, 3]``, by dtype: float32 (any floating dtype) images normalised as
      in training (ImageNet mean/std), or uint8 raw pixels, normalised here.
    modality: ``"visible"`` or ``"infrared"``: the stem the images go through.
    batch_size: the most images per forward pass.

  Returns:
    ``{"pool": [N, D], "bn": [N, D]}`` float32 (L2-normalised for AGW).

  Raises:
    ValueError: unknown modality, images not ``[N, H, W, 3]``, or a non-positive batch size.
  """
  images = np.asarray(images)
  count = images.shape[0] if images.ndim else 0
  view = nnx.view(model, use_running_average=True)
  features = evaluation.extract_features(
      functools.partial(_features, view), images, modality,
      batch_size=min(batch_size, count) if count else batch_size)
  return {name: value.astype(jnp.float32) for name, value in features.items()}
