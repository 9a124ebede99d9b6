"""MCJA's cross-modality retrieval (CMR) loss: soft ranks of the cross-modal gallery regressed
onto target ranks (spec mcja.md §4, reference `losses/cm_retrieval_loss.py`).

For each modality a present in the batch (visible, then infrared), the images of a are queries
and the images of the other modality the gallery (G images). A query with no positive in the
gallery, or only positives, is dropped; a direction without a kept query does not count. For a
kept query i, θ_ij = (1 − cos(e_i, e_j)) / 2 over its G gallery images, r_i = soft_rank(θ_i)
(L2, ε = 0.5, ascending 1..G, torchsort's convention: `vireid_jax.ops.soft_rank`), the target is
1 for a positive and G for a negative, and the direction's loss is the mean L1 distance over
its kept queries × G. The loss is the mean over the valid directions, 0 when none is valid.

Quirks of the reference, kept: the ranks are not normalised by G (the value is about (G − 1) / 2,
20–40 on SYSU-MM01 batches), and positives and negatives are not re-weighted. Departure: a batch
without a valid direction (one modality only, or no cross-modal positive) gives 0 with a zero
gradient; the reference crashes there.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vireid_jax import ops

# torch.nn.functional.cosine_similarity's default eps.
COSINE_EPS = 1e-8


def cross_modality_retrieval(embeddings: jax.Array, labels: jax.Array, modalities: jax.Array,
                             *, regularization_strength: float = 0.5,
                             regularization: str = "l2") -> jax.Array:
  """The CMR loss of a mixed batch.

  Args:
    embeddings: [B, D] features (MCJA: the post-BNNeck embeddings); computed in float32.
    labels: [B] int identity labels.
    modalities: [B] int, 0 visible, 1 infrared.
    regularization_strength: ε of the soft rank (0.5 in MCJA).
    regularization: "l2" (MCJA) or "kl".

  Returns:
    The float32 scalar loss, pure and jittable at fixed shapes.

  Raises:
    ValueError: `labels` or `modalities` is not [B] for `embeddings` [B, D].
  """
  embeddings = jnp.asarray(embeddings)
  labels, modalities = jnp.asarray(labels), jnp.asarray(modalities)
  if embeddings.ndim != 2:
    raise ValueError(f"embeddings must be [B, D], got shape {embeddings.shape}.")
  batch = embeddings.shape[0]
  for name, value in (("labels", labels), ("modalities", modalities)):
    if value.shape != (batch,):
      raise ValueError(f"{name} must be [B] = [{batch}] for embeddings {embeddings.shape}, "
                       f"got shape {value.shape}.")
  embeddings = embeddings.astype(jnp.float32)
  squared_norms = jnp.sum(embeddings * embeddings, axis=-1)
  products = jnp.matmul(embeddings, embeddings.T, precision=jax.lax.Precision.HIGHEST)
  # torch's cosine_similarity: the dot product over max(|x1| |x2|, eps).
  norm_products = jnp.sqrt(jnp.maximum(squared_norms[:, None] * squared_norms[None, :],
                                       COSINE_EPS ** 2))
  distances = (1.0 - products / norm_products) / 2.0          # θ, [B, B]

  # Row i's gallery is every image of the other modality: both directions in one [B, B] rank.
  gallery = modalities[None, :] != modalities[:, None]        # [B, B]
  gallery_size = jnp.sum(gallery, axis=1)                     # G of row i's direction
  positives = gallery & (labels[None, :] == labels[:, None])
  num_positives = jnp.sum(positives, axis=1)
  kept = (num_positives > 0) & (num_positives < gallery_size)
  # Columns outside the gallery get a value far above every θ / ε ≤ 2 / ε: they sort after the
  # gallery, pool only among themselves, and leave the gallery its ranks 1..G (and gradients).
  outside = regularization_strength * (batch + 4)
  ranks = ops.soft_rank(jnp.where(gallery, distances, outside), regularization_strength,
                        regularization)
  targets = jnp.where(positives, 1.0, gallery_size[:, None].astype(jnp.float32))
  row_errors = jnp.sum(jnp.where(gallery, jnp.abs(ranks - targets), 0.0), axis=1)   # [B]

  total, directions = jnp.float32(0.0), jnp.float32(0.0)
  for modality in (0, 1):
    rows = kept & (modalities == modality)
    count = jnp.sum(rows)
    size = jnp.max(jnp.where(modalities == modality, gallery_size, 0))
    denominator = jnp.maximum(count * size, 1).astype(jnp.float32)
    direction_loss = jnp.sum(jnp.where(rows, row_errors, 0.0)) / denominator
    valid = count > 0
    total = total + jnp.where(valid, direction_loss, 0.0)
    directions = directions + valid.astype(jnp.float32)
  return total / jnp.maximum(directions, 1.0)
