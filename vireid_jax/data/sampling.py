"""Index samplers: which images make up each training batch (NumPy only).

A sampler turns per-image labels into index arrays for one epoch. It is a pure function of
(labels, config, seed, epoch): a resumed run rebuilds exactly the epoch it was killed in and
skips the batches it had already taken.

`SAMPLERS` is the registry `config.data.sampler` names: each entry turns the splits (and the
method's epoch inputs) into the streams of batch rows the input pipeline gathers. Adding a
sampler adds an entry (`register_sampler`); nothing else changes.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from vireid_jax.data.splits import INFRARED
from vireid_jax.data.splits import SplitArrays
from vireid_jax.data.splits import VISIBLE


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
    * `aligned=False` (the released code; `config.data.target_sampler="independent"`): P
      pseudo-labels drawn without replacement among those present in the visible images and,
      independently, P among those of the infrared images; K images with replacement of each.
      Slot i of the two modalities then rarely shares a pseudo-label.
    * `aligned=True` (dan.md's proposed resolution [P]; "aligned", the default): P
      pseudo-labels present in both modalities, K visible and K infrared images of each at
      aligned slots (as the AGW sampler); when fewer than P such labels exist the remaining
      slots are filled independently per modality, as in the code.
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


# --- The sampler registry: config.data.sampler → the streams of each batch ---------------------

@dataclasses.dataclass(frozen=True)
class Stream:
  """One group of rows of every training batch: which images of which split fill it.

  Attributes:
    name: key of its images in the batch dict ("visible", "target_infrared", "images").
    split: the split the images come from.
    modality: VISIBLE, INFRARED, or "mixed" (MCJA's stream of both).
    indices: [num_batches, batch_size] positions into `split`.
    labels_key: key of its labels in the batch dict.
    indices_key: key of its positions in the batch dict, or None to leave them out.
    row_fields: the config fields that set its rows (batch_size), for messages.
  """

  name: str
  split: SplitArrays
  modality: int | str
  indices: np.ndarray
  labels_key: str
  indices_key: str | None = None
  row_fields: tuple[str, ...] = ("config.data.ids_per_batch", "config.data.images_per_id")


# streams(train, data_config, *, seed, epoch, target, epoch_inputs) -> list[Stream]: the epoch's
# plan; num_batches(train, data_config, target) -> the reference's batches per epoch.
StreamsFn = Callable[..., list[Stream]]
NumBatchesFn = Callable[..., int]


@dataclasses.dataclass(frozen=True)
class Sampler:
  streams: StreamsFn
  num_batches: NumBatchesFn


SAMPLERS: dict[str, Sampler] = {}


def register_sampler(name: str, num_batches: NumBatchesFn) -> Callable[[StreamsFn], StreamsFn]:
  """Decorator: adds a streams function to `SAMPLERS` under `name` (config.data.sampler)."""
  def register(streams: StreamsFn) -> StreamsFn:
    if name in SAMPLERS:
      raise ValueError(f"A sampler named {name!r} is registered already.")
    SAMPLERS[name] = Sampler(streams, num_batches)
    return streams
  return register


def get_sampler(name: str) -> Sampler:
  if name not in SAMPLERS:
    raise ValueError(f"config.data.sampler={name!r} is not a registered sampler; available: "
                     f"{', '.join(sorted(SAMPLERS))} (vireid_jax.data.sampling.SAMPLERS).")
  return SAMPLERS[name]


def _positions(split: SplitArrays, modality: int) -> np.ndarray:
  return np.flatnonzero(split.modalities == modality)


def _cross_modal_streams(split: SplitArrays, plan: CrossModalEpoch, prefix: str = "",
                         with_indices: bool = False) -> list[Stream]:
  streams = []
  for modality, name, indices in ((VISIBLE, "visible", plan.visible_indices),
                                  (INFRARED, "infrared", plan.infrared_indices)):
    positions = _positions(split, modality)[indices].reshape(plan.num_batches, -1)
    streams.append(Stream(prefix + name, split, modality, positions,
                          f"{prefix}{name}_labels",
                          f"{prefix}{name}_indices" if with_indices else None))
  return streams


def _agw_plan(split: SplitArrays, data_config, seed: int, epoch: int) -> CrossModalEpoch:
  return agw_cross_modality_epoch(
      split.labels[_positions(split, VISIBLE)], split.labels[_positions(split, INFRARED)],
      ids_per_batch=data_config.ids_per_batch, images_per_id=data_config.images_per_id,
      seed=seed, epoch=epoch)


def _agw_num_batches(train: SplitArrays, data_config, target=None) -> int:
  """floor(max(Nv, Ni) / (P*K)) + 1 on the (source) training split."""
  del target  # DAN's epoch is its source plan.
  return agw_num_batches(train.count(VISIBLE), train.count(INFRARED), data_config.ids_per_batch,
                         data_config.images_per_id)


@register_sampler("agw", num_batches=_agw_num_batches)
def agw_streams(train: SplitArrays, data_config, *, seed: int, epoch: int, target=None,
                epoch_inputs=None) -> list[Stream]:
  """The AGW cross-modality identity sampler (`agw_cross_modality_epoch`): streams "visible"
  and "infrared", P*K rows each, slot i of both of one identity; 696 batches per epoch on
  SYSU-MM01 at P = 8, K = 4."""
  del target, epoch_inputs
  return _cross_modal_streams(train, _agw_plan(train, data_config, seed, epoch))


# DJANet uses AGW's sampler with P = 24 (spec djanet §3); its name keeps configs readable.
register_sampler("djanet", num_batches=_agw_num_batches)(agw_streams)


def _mcja_num_batches(train: SplitArrays, data_config, target=None) -> int:
  del target
  return mcja_num_batches(train.labels, data_config.ids_per_batch, data_config.images_per_id)


@register_sampler("mcja", num_batches=_mcja_num_batches)
def mcja_streams(train: SplitArrays, data_config, *, seed: int, epoch: int, target=None,
                 epoch_inputs=None) -> list[Stream]:
  """MCJA's modality-agnostic P x K sampler (`mcja_identity_epoch`): one stream "images" of
  P*K rows of both modalities (with "modalities" in the batch)."""
  del target, epoch_inputs
  plan = mcja_identity_epoch(train.labels, ids_per_batch=data_config.ids_per_batch,
                             images_per_id=data_config.images_per_id, seed=seed, epoch=epoch)
  return [Stream("images", train, "mixed", plan.indices.reshape(plan.num_batches, -1), "labels")]


# `config.data.target_sampler`: the target stream's identity draw (`target_epoch`'s `aligned`).
TARGET_SAMPLERS = ("aligned", "independent")
DEFAULT_TARGET_SAMPLER = "aligned"


@register_sampler("domain_adaptation", num_batches=_agw_num_batches)
def domain_adaptation_streams(train: SplitArrays, data_config, *, seed: int, epoch: int,
                              target: SplitArrays | None = None,
                              epoch_inputs: dict | None = None) -> list[Stream]:
  """DAN's two streams (dan.md §5–6).

  The labelled source `train` through the AGW sampler ("visible", "infrared"; drawn once, at
  epoch 0, and reused unless `data_config.redraw_source_plan`), and the unlabelled `target`
  through `target_epoch` ("target_visible", "target_infrared", with "target_*_indices":
  positions into `target`; identities drawn as `data_config.target_sampler` says: "aligned",
  the default, or "independent"). The target's labels are `epoch_inputs["target_labels"]`
  ([len(target)] int32 pseudo-labels, -1 for none; the method's `epoch_inputs`), else the
  split's own (all -1). Target batch b is batch b % the target's own epoch length.
  """
  if target is None:
    raise ValueError("config.data.sampler='domain_adaptation' needs the unlabelled target "
                     "split: set config.data.target and use a method with uses_target.")
  labels = (epoch_inputs or {}).get("target_labels")
  if labels is not None:
    labels = np.asarray(labels, np.int32)
    if labels.shape != (len(target),):
      raise ValueError(f"epoch_inputs['target_labels'] has shape {labels.shape}; the target "
                       f"split has {len(target)} images: one label (or -1) per image, in split "
                       "order.")
    target = dataclasses.replace(target, labels=labels)
  # configs/default.py carries both fields; a config without them gets the same defaults.
  target_sampler = data_config.get("target_sampler", DEFAULT_TARGET_SAMPLER)
  if target_sampler not in TARGET_SAMPLERS:
    raise ValueError(f"config.data.target_sampler={target_sampler!r}: expected one of "
                     f"{TARGET_SAMPLERS}.")
  source_epoch = epoch if data_config.get("redraw_source_plan", False) else 0
  source = _cross_modal_streams(train, _agw_plan(train, data_config, seed, source_epoch))
  target_plan = target_epoch(
      target.labels[_positions(target, VISIBLE)], target.labels[_positions(target, INFRARED)],
      ids_per_batch=data_config.ids_per_batch, images_per_id=data_config.images_per_id,
      aligned=target_sampler == "aligned", seed=seed, epoch=epoch)
  target_streams = _cross_modal_streams(target, target_plan, "target_", with_indices=True)
  num_batches = len(source[0].indices)
  wrapped = np.arange(num_batches) % len(target_streams[0].indices)
  return source + [dataclasses.replace(stream, indices=stream.indices[wrapped])
                   for stream in target_streams]


# --- AlignGAN's uniform identity sampler, two batch kinds (aligngan.md §1.3) ------------------

# The batch kinds of the "aligngan" sampler: (kind, batch key prefix, config.data fields of its
# P and K).
ALIGNGAN_KINDS = (
    ("ide", "", ("ids_per_batch", "images_per_id")),
    ("gan", "gan_", ("gan_ids_per_batch", "gan_images_per_id")),
)


def aligngan_sampler_epoch(visible_labels: np.ndarray, infrared_labels: np.ndarray, *,
                           ids_per_batch: int, images_per_id: int, seed: int,
                           sampler_epoch: int, stream: str) -> CrossModalEpoch:
  """One pass of AlignGAN's `UniformSampler` over every training identity, both modalities.

  The sorted identities are permuted once (one permutation for both modalities, which keeps
  slot i of the visible and the infrared batch one identity, as the reference's lockstep
  loaders do); each identity in that order gives K positions per modality, drawn without
  replacement when the identity has at least K images of that modality, with replacement
  otherwise, independently per modality. The concatenation is cut into batches of P*K and the
  last incomplete batch dropped: floor(C / P) batches for C identities (21 at P=18 and 98 at
  P=4 on SYSU-MM01's 395).

  Args:
    visible_labels: [Nv] training labels of the visible images.
    infrared_labels: [Ni] training labels of the infrared images; both modalities must hold
      the same identities.
    ids_per_batch: P (18 for AlignGAN's IDE batches, 4 for its GAN batches).
    images_per_id: K (4 for both).
    seed: the config seed.
    sampler_epoch: 0-based pass of this sampler (not the training loop's epoch).
    stream: the random stream's name; batch kinds whose names differ in their first four
      characters (all `epoch_rng` reads) are independent.

  Returns:
    Positions into the visible and the infrared images, [floor(C / P) * P * K] each, laid out
    [id_1 x K, id_2 x K, ...].
  """
  visible_labels = np.asarray(visible_labels)
  infrared_labels = np.asarray(infrared_labels)
  class_ids = np.unique(visible_labels)
  unpaired = np.setxor1d(class_ids, np.unique(infrared_labels))
  if unpaired.size:
    raise ValueError(
        f"Labels {unpaired[:10].tolist()} have training images in one modality only; the "
        "aligngan sampler pairs every identity across the modalities.")
  num_batches = len(class_ids) // ids_per_batch
  num_classes = int(class_ids.max()) + 1
  by_label = [indices_by_label(labels, num_classes) for labels in
              (visible_labels, infrared_labels)]
  rng = epoch_rng(seed, sampler_epoch, stream)
  order = rng.permutation(class_ids)[:num_batches * ids_per_batch]
  plans = np.empty((2, len(order), images_per_id), np.int64)
  for slot, label in enumerate(order):
    for modality in range(2):
      positions = by_label[modality][label]
      plans[modality, slot] = rng.choice(positions, size=images_per_id,
                                         replace=len(positions) < images_per_id)
  return CrossModalEpoch(plans[0].reshape(-1), plans[1].reshape(-1), ids_per_batch,
                         images_per_id)


def aligngan_kind_batches(visible_labels: np.ndarray, infrared_labels: np.ndarray, *,
                          ids_per_batch: int, images_per_id: int, seed: int, stream: str,
                          first_iteration: int, num_iterations: int) -> CrossModalEpoch:
  """Batches `first_iteration` .. + `num_iterations` - 1 of one endless AlignGAN stream.

  The stream is `aligngan_sampler_epoch` pass after pass: its batch at global iteration t is
  batch t mod n of pass t // n (n = the batches of one pass), as the reference's loaders
  restart their sampler when it runs out.

  Args:
    visible_labels, infrared_labels, ids_per_batch, images_per_id, seed, stream: see
      `aligngan_sampler_epoch`.
    first_iteration: the global iteration of the first batch.
    num_iterations: how many consecutive batches.

  Returns:
    [num_iterations * P * K] positions per modality, batch by batch.
  """
  per_pass = len(np.unique(visible_labels)) // ids_per_batch
  if per_pass == 0:
    raise ValueError(f"ids_per_batch={ids_per_batch} exceeds the "
                     f"{len(np.unique(visible_labels))} training identities.")
  iterations = np.arange(first_iteration, first_iteration + num_iterations)
  passes = {}
  visible, infrared = [], []
  batch_size = ids_per_batch * images_per_id
  for iteration in iterations:
    sampler_epoch, batch = divmod(int(iteration), per_pass)
    if sampler_epoch not in passes:
      passes[sampler_epoch] = aligngan_sampler_epoch(
          visible_labels, infrared_labels, ids_per_batch=ids_per_batch,
          images_per_id=images_per_id, seed=seed, sampler_epoch=sampler_epoch, stream=stream)
    rows = slice(batch * batch_size, (batch + 1) * batch_size)
    visible.append(passes[sampler_epoch].visible_indices[rows])
    infrared.append(passes[sampler_epoch].infrared_indices[rows])
  return CrossModalEpoch(np.concatenate(visible), np.concatenate(infrared), ids_per_batch,
                         images_per_id)


def _aligngan_num_batches(train: SplitArrays, data_config, target=None) -> int:
  """`config.data.batches_per_epoch`: AlignGAN's "step" of 100 iterations (aligngan.md)."""
  del train, target
  batches = data_config.get("batches_per_epoch")
  if isinstance(batches, bool) or not isinstance(batches, (int, np.integer)) or batches < 1:
    raise ValueError(f"config.data.batches_per_epoch={batches!r}: the aligngan sampler needs "
                     "a positive number of batches per epoch (AlignGAN: 100).")
  return int(batches)


@register_sampler("aligngan", num_batches=_aligngan_num_batches)
def aligngan_streams(train: SplitArrays, data_config, *, seed: int, epoch: int, target=None,
                     epoch_inputs=None) -> list[Stream]:
  """AlignGAN's four loaders (aligngan.md §1.3; `tools/data_loader/loader.py`, UniformSampler).

  Two batch kinds, each an endless stream of `aligngan_sampler_epoch` passes with its own
  random stream, so the kinds are independent:
    * "ide": "visible", "infrared", P = `ids_per_batch`, K = `images_per_id` (18 x 4);
    * "gan": "gan_visible", "gan_infrared", P = `gan_ids_per_batch`, K = `gan_images_per_id`
      (4 x 4).
  Loop epoch e has B = `batches_per_epoch` batches; its batch b is global iteration
  t = e * B + b of both kinds, whatever a kind's pass length, so a pass may end inside an epoch
  and a resumed run sees exactly the batches of an uninterrupted one.
  """
  del target, epoch_inputs
  num_batches = _aligngan_num_batches(train, data_config)
  visible_labels = train.labels[_positions(train, VISIBLE)]
  infrared_labels = train.labels[_positions(train, INFRARED)]
  num_ids = len(np.unique(visible_labels))
  streams = []
  for kind, prefix, (ids_field, images_field) in ALIGNGAN_KINDS:
    ids_per_batch, images_per_id = data_config.get(ids_field), data_config.get(images_field)
    if not all(isinstance(value, (int, np.integer)) and not isinstance(value, bool)
               and value >= 1 for value in (ids_per_batch, images_per_id)):
      raise ValueError(f"config.data.{ids_field}={ids_per_batch!r} and config.data."
                       f"{images_field}={images_per_id!r}: the aligngan sampler's {kind} "
                       "batches need both, positive (AlignGAN: ide 18 x 4, gan 4 x 4).")
    if ids_per_batch > num_ids:
      raise ValueError(f"config.data.{ids_field}={ids_per_batch} exceeds the {num_ids} "
                       f"training identities; lower config.data.{ids_field}.")
    # The kind leads the stream's name: `epoch_rng` keys a stream on the first four bytes of
    # its name only, so "aligngan_ide..." and "aligngan_gan..." would be one random stream.
    plan = aligngan_kind_batches(
        visible_labels, infrared_labels, ids_per_batch=ids_per_batch,
        images_per_id=images_per_id, seed=seed, stream=f"{kind}_aligngan_sampler",
        first_iteration=epoch * num_batches, num_iterations=num_batches)
    streams += [dataclasses.replace(stream, row_fields=(f"config.data.{ids_field}",
                                                        f"config.data.{images_field}"))
                for stream in _cross_modal_streams(train, plan, prefix)]
  return streams
