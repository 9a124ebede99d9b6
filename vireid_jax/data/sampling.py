"""Index samplers: which images make up each training batch (NumPy only).

A sampler turns per-image labels into index arrays for one epoch. It is a pure function of
(labels, config, seed, epoch): a resumed run rebuilds exactly the epoch it was killed in and
skips the batches it had already taken.
"""

from __future__ import annotations

import dataclasses

import numpy as np


def epoch_rng(seed: int, epoch: int, stream: str) -> np.random.Generator:
  """A NumPy generator that depends only on (seed, epoch, stream name).

  Different streams (sampler, augmentation, ...) of one epoch are independent, and an epoch's
  stream does not depend on how many numbers earlier epochs drew.
  """
  stream_key = int.from_bytes(stream.encode("utf-8"), "little") % (2**32)
  return np.random.default_rng([seed, epoch, stream_key])


def indices_by_label(labels: np.ndarray, num_classes: int) -> list[np.ndarray]:
  """Positions of each label value 0..num_classes-1 (the reference's `GenIdx`)."""
  labels = np.asarray(labels)
  order = np.argsort(labels, kind="stable")
  boundaries = np.searchsorted(labels[order], np.arange(num_classes + 1))
  return [order[boundaries[c]:boundaries[c + 1]] for c in range(num_classes)]


@dataclasses.dataclass(frozen=True)
class CrossModalEpoch:
  """One epoch of the AGW cross-modality sampler.

  Attributes:
    visible_indices: [num_batches * ids_per_batch * images_per_id] positions into the visible
      training images.
    infrared_indices: same length; position i has the same identity as `visible_indices[i]`.
    ids_per_batch: P, identities per batch.
    images_per_id: K, images per identity and modality.
  """

  visible_indices: np.ndarray
  infrared_indices: np.ndarray
  ids_per_batch: int
  images_per_id: int

  @property
  def batch_size(self) -> int:
    """Images per modality in one batch (P * K)."""
    return self.ids_per_batch * self.images_per_id

  @property
  def num_batches(self) -> int:
    return len(self.visible_indices) // self.batch_size


def agw_num_batches(num_visible: int, num_infrared: int, ids_per_batch: int,
                    images_per_id: int) -> int:
  """Batches per epoch as the reference defines it: floor(max(Nv, Ni) / (P*K)) + 1.

  696 on SYSU-MM01 (22,258 visible images, P=8, K=4), 65 on RegDB (spec §2.3).
  """
  return max(num_visible, num_infrared) // (ids_per_batch * images_per_id) + 1


def agw_cross_modality_epoch(visible_labels: np.ndarray, infrared_labels: np.ndarray, *,
                             ids_per_batch: int, images_per_id: int, seed: int,
                             epoch: int) -> CrossModalEpoch:
  """The AGW identity-balanced cross-modality sampler (spec §2; `utils.py:60-95`).

  Per batch: P distinct identities drawn uniformly without replacement from the visible label
  set; for each, K visible and K infrared positions drawn uniformly WITH replacement from that
  identity's images. Batches are independent (no per-epoch permutation of identities).

  Args:
    visible_labels: [Nv] training labels 0..C-1 of the visible images.
    infrared_labels: [Ni] training labels of the infrared images; every label must occur in
      both modalities.
    ids_per_batch: P (8 in AGW).
    images_per_id: K (4 in AGW).
    seed: the config seed.
    epoch: 0-based epoch; with `seed` it fixes every draw.

  Returns:
    The epoch's index arrays, batches laid out [id_1 x K, id_2 x K, ...].
  """
  visible_labels = np.asarray(visible_labels)
  infrared_labels = np.asarray(infrared_labels)
  class_ids = np.unique(visible_labels)
  num_classes = int(class_ids.max()) + 1
  missing = np.setdiff1d(class_ids, np.unique(infrared_labels))
  if missing.size:
    raise ValueError(
        f"Labels {missing[:10].tolist()} have visible but no infrared training images; the "
        "cross-modality sampler needs every identity in both modalities.")
  if len(class_ids) < ids_per_batch:
    raise ValueError(f"ids_per_batch={ids_per_batch} exceeds the {len(class_ids)} training "
                     "identities; lower config.data.ids_per_batch.")
  visible_by_label = indices_by_label(visible_labels, num_classes)
  infrared_by_label = indices_by_label(infrared_labels, num_classes)

  num_batches = agw_num_batches(len(visible_labels), len(infrared_labels), ids_per_batch,
                                images_per_id)
  rng = epoch_rng(seed, epoch, "agw_sampler")
  visible_indices = np.empty((num_batches, ids_per_batch, images_per_id), np.int64)
  infrared_indices = np.empty_like(visible_indices)
  for batch in range(num_batches):
    batch_ids = rng.choice(class_ids, size=ids_per_batch, replace=False)
    for slot, label in enumerate(batch_ids):
      visible_indices[batch, slot] = rng.choice(visible_by_label[label], size=images_per_id)
      infrared_indices[batch, slot] = rng.choice(infrared_by_label[label], size=images_per_id)
  return CrossModalEpoch(visible_indices.reshape(-1), infrared_indices.reshape(-1),
                         ids_per_batch, images_per_id)
