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


@dataclasses.dataclass(frozen=True)
class IdentityBatchEpoch:
  """One epoch of a modality-agnostic P x K sampler (MCJA's).

  Attributes:
    indices: [num_batches * ids_per_batch * images_per_id] positions into the training
      images (both modalities together).
    ids_per_batch: P, identities per batch.
    images_per_id: K, images per identity, whatever their modality.
  """

  indices: np.ndarray
  ids_per_batch: int
  images_per_id: int

  @property
  def batch_size(self) -> int:
    return self.ids_per_batch * self.images_per_id

  @property
  def num_batches(self) -> int:
    return len(self.indices) // self.batch_size


def _chunk_counts(labels: np.ndarray, images_per_id: int) -> np.ndarray:
  """Chunks of K images each identity yields: floor(n/K), and 1 when n < K (drawn with
  replacement)."""
  counts = np.bincount(np.asarray(labels)[np.asarray(labels) >= 0])
  counts = counts[counts > 0]
  return np.maximum(counts, images_per_id) // images_per_id


def mcja_num_batches(labels: np.ndarray, ids_per_batch: int, images_per_id: int) -> int:
  """Batches per epoch of the MCJA sampler: floor(sum over ids of its chunks / P).

  This is the reference sampler's own length (`NormTripletSampler.__len__` before its first
  pass, divided by the batch size), e.g. 51 on RegDB (206 ids, P=4, K=32 > 20 images: one chunk
  each; spec mcja §7).
  """
  return int(_chunk_counts(labels, images_per_id).sum()) // ids_per_batch


def mcja_identity_epoch(labels: np.ndarray, *, ids_per_batch: int, images_per_id: int,
                        seed: int, epoch: int) -> IdentityBatchEpoch:
  """MCJA's modality-agnostic P x K sampler, "norm_triplet" (spec mcja §7; `data/sampler.py`).

  One pass: every identity's images are shuffled (K drawn with replacement when it has fewer
  than K) and cut into consecutive chunks of K, the remainder dropped; then, while at least P
  identities still hold chunks, P distinct ones are drawn uniformly among them and each gives
  its next chunk. A batch is therefore P identities x K images, grouped by identity, with a
  random modality mix (an identity may have no image of one modality in a batch).

  The reference's pass ends when fewer than P identities have chunks left, a few batches short
  of `mcja_num_batches` that varies with the draws; here the epoch always has
  `mcja_num_batches` batches (fixed steps per epoch for the schedules and for resuming): when a
  pass ends early, a new pass (fresh shuffle, fresh chunks) continues it and the epoch is cut
  at that length.

  Args:
    labels: [N] training labels 0..C-1 of all training images.
    ids_per_batch: P (8 on SYSU-MM01, 4 on RegDB).
    images_per_id: K (16 on SYSU-MM01, 32 on RegDB).
    seed: the config seed.
    epoch: 0-based epoch.

  Returns:
    The epoch's positions, batches laid out [id_1 x K, id_2 x K, ...].
  """
  labels = np.asarray(labels)
  class_ids = np.unique(labels[labels >= 0])
  num_batches = mcja_num_batches(labels, ids_per_batch, images_per_id)
  if len(class_ids) < ids_per_batch or num_batches == 0:
    raise ValueError(f"ids_per_batch={ids_per_batch} exceeds the {len(class_ids)} training "
                     "identities; lower config.data.ids_per_batch.")
  by_label = indices_by_label(labels, int(class_ids.max()) + 1)
  rng = epoch_rng(seed, epoch, "mcja_sampler")
  batches = []
  while len(batches) < num_batches:
    chunks = {}
    for label in class_ids:
      positions = by_label[label]
      if len(positions) < images_per_id:
        positions = rng.choice(positions, size=images_per_id, replace=True)
      positions = rng.permutation(positions)
      count = len(positions) // images_per_id
      chunks[label] = list(positions[:count * images_per_id].reshape(count, images_per_id))
    available = list(class_ids)
    while len(available) >= ids_per_batch and len(batches) < num_batches:
      selected = rng.choice(len(available), size=ids_per_batch, replace=False)
      labels_selected = [available[i] for i in selected]
      batches.append(np.concatenate([chunks[label].pop(0) for label in labels_selected]))
      available = [label for label in available if chunks[label]]
  return IdentityBatchEpoch(np.concatenate(batches).astype(np.int64), ids_per_batch,
                            images_per_id)


def _draw_batch_labels(rng: np.random.Generator, candidates: np.ndarray,
                       count: int) -> np.ndarray:
  """`count` labels without replacement, or with it when fewer candidates exist."""
  return rng.choice(candidates, size=count, replace=len(candidates) < count)


def target_epoch(visible_labels: np.ndarray, infrared_labels: np.ndarray, *, ids_per_batch: int,
                 images_per_id: int, aligned: bool, seed: int, epoch: int) -> CrossModalEpoch:
  """The unlabelled target stream of domain adaptation (DAN's `IdentitySampler3`, dan.md §5.1).

  Labels are the target's pseudo-labels, -1 where an image has none. Batches per epoch follow
  the AGW formula on the target's counts; a source epoch longer than that reads target batches
  modulo this length (the reference wraps its target indices the same way).

  Per batch:
    * `aligned=False` (the released code, the default): P pseudo-labels drawn without
      replacement among those present in the visible images and, independently, P among those
      of the infrared images; K images with replacement of each. Slot i of the two modalities
      then rarely shares a pseudo-label.
    * `aligned=True` (dan.md's proposed resolution [P]): P pseudo-labels present in both
      modalities, K visible and K infrared images of each at aligned slots (as the AGW
      sampler); when fewer than P such labels exist the remaining slots are filled
      independently per modality, as in the code.
  A modality with no pseudo-label at all (before the first labelling) gets P*K distinct images
  drawn uniformly (with replacement only if it has fewer images than that).

  Args:
    visible_labels: [Nv] pseudo-labels of the target's visible images (-1: none).
    infrared_labels: [Ni] pseudo-labels of its infrared images.
    ids_per_batch: P (3 in DAN).
    images_per_id: K (4 in DAN).
    aligned: see above.
    seed: the config seed.
    epoch: 0-based epoch.

  Returns:
    Positions into the target's visible and infrared images, [num_batches * P * K] each.
  """
  visible_labels = np.asarray(visible_labels)
  infrared_labels = np.asarray(infrared_labels)
  batch_size = ids_per_batch * images_per_id
  num_batches = agw_num_batches(len(visible_labels), len(infrared_labels), ids_per_batch,
                                images_per_id)
  num_classes = int(max(visible_labels.max(initial=-1), infrared_labels.max(initial=-1))) + 1
  by_label = [indices_by_label(labels, num_classes) for labels in
              (visible_labels, infrared_labels)]
  present = [np.unique(labels[labels >= 0]) for labels in (visible_labels, infrared_labels)]
  shared = np.intersect1d(present[0], present[1])
  rng = epoch_rng(seed, epoch, "target_sampler")
  plans = np.empty((2, num_batches, batch_size), np.int64)
  for batch in range(num_batches):
    if aligned:
      common = _draw_batch_labels(rng, shared, min(ids_per_batch, len(shared)))
    for modality, labels in enumerate((visible_labels, infrared_labels)):
      if not len(present[modality]):
        plans[modality, batch] = rng.choice(len(labels), size=batch_size,
                                            replace=len(labels) < batch_size)
        continue
      if aligned:
        others = np.setdiff1d(present[modality], common)
        chosen = np.concatenate([common, _draw_batch_labels(
            rng, others if len(others) else present[modality], ids_per_batch - len(common))])
      else:
        chosen = _draw_batch_labels(rng, present[modality], ids_per_batch)
      plans[modality, batch] = np.concatenate(
          [rng.choice(by_label[modality][label], size=images_per_id) for label in chosen])
  return CrossModalEpoch(plans[0].reshape(-1), plans[1].reshape(-1), ids_per_batch,
                         images_per_id)
