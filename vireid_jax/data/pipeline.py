"""tf.data pipelines: training batches from the samplers, evaluation batches for features.

Training images are decoded once into memory (the reference also trains from in-memory
arrays); the configured sampler (`config.data.sampler`) decides which images form each batch,
and tf.data gathers them and computes the configured augmentation's views
(`config.data.augmentation`) in parallel with the train step. Everything is a function of
(seed, epoch, batch index), so a resumed run sees the batches an uninterrupted one would, and
each JAX process can read exactly its rows of every global batch. The pipeline yields NumPy
batch dicts: what follows is JAX only.
"""

from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from vireid_jax.data import augment
from vireid_jax.data import sampling

VISIBLE, INFRARED = 0, 1


@dataclasses.dataclass(frozen=True)
class SplitArrays:
  """One split decoded into memory.

  Attributes:
    images: [N, H, W, 3] uint8.
    labels: [N] int32 training labels (-1 in test splits).
    person_ids: [N] int32 dataset identities.
    cameras: [N] int32 1-based camera numbers.
    modalities: [N] int32, 0 = visible, 1 = infrared.
    relative_paths: [N] str, e.g. "cam3/0006/0001.jpg".
  """

  images: np.ndarray
  labels: np.ndarray
  person_ids: np.ndarray
  cameras: np.ndarray
  modalities: np.ndarray
  relative_paths: np.ndarray

  def __len__(self) -> int:
    return len(self.labels)

  def select(self, mask_or_indices) -> "SplitArrays":
    return SplitArrays(**{field.name: getattr(self, field.name)[mask_or_indices]
                          for field in dataclasses.fields(self)})


def load_split(builder: tfds.core.DatasetBuilder, split: str,
               chunk_size: int = 1024) -> SplitArrays:
  """Decodes a whole TFDS split into memory, in the builder's record order."""
  dataset = builder.as_dataset(split=split, shuffle_files=False, batch_size=chunk_size)
  chunks = list(tfds.as_numpy(dataset))
  if not chunks:
    raise ValueError(f"Split {split!r} of {builder.info.full_name} at {builder.data_dir} is "
                     "empty; delete that folder and rebuild.")
  def stack(key, dtype=None):
    values = np.concatenate([chunk[key] for chunk in chunks])
    return values.astype(dtype) if dtype else values
  return SplitArrays(
      images=stack("image"),
      labels=stack("label", np.int32),
      person_ids=stack("person_id", np.int32),
      cameras=stack("camera", np.int32),
      modalities=stack("modality", np.int32),
      relative_paths=np.array([path.decode("utf-8") for path in stack("relative_path")]),
  )


def augmentation_seeds(seed: int, epoch: int, num_batches: int,
                       num_views: int = 2) -> np.ndarray:
  """[num_batches, num_views, 2] int32 stateless seeds, a function of (seed, epoch).

  View v of batch b is augmented with seeds[b, v]; with two views (AGW: visible, infrared)
  these are the seeds the AGW pipeline has always used.
  """
  rng = sampling.epoch_rng(seed, epoch, "augmentation")
  return rng.integers(0, 2**31 - 1, size=(num_batches, num_views, 2),
                      dtype=np.int64).astype(np.int32)


# The samplers `train_dataset` offers (config.data.sampler).
SAMPLERS = ("agw", "djanet", "mcja", "domain_adaptation")

# Views of each augmentation (config.data.augmentation), per stream modality: (key suffix,
# `augment.train_view` recipe). "mixed" is MCJA's stream of both modalities together.
VIEWS = {
    "agw": {VISIBLE: (("", "agw"),), INFRARED: (("", "agw"),), "mixed": (("", "agw"),)},
    "caj": {VISIBLE: (("", "caj_visible"), ("_augmented", "caj_visible_exchange")),
            INFRARED: (("", "caj_infrared"),)},
    "djanet": {VISIBLE: (("", "djanet_visible"), ("_augmented", "caj_visible_exchange")),
               INFRARED: (("", "djanet_infrared"), ("_augmented", "djanet_infrared_scale"))},
    "mcja": {VISIBLE: (("", "mcja"),), INFRARED: (("", "mcja"),), "mixed": (("", "mcja"),)},
}


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
  """

  name: str
  split: SplitArrays
  modality: int | str
  indices: np.ndarray
  labels_key: str
  indices_key: str | None = None


def _positions(split: SplitArrays, modality: int) -> np.ndarray:
  return np.flatnonzero(split.modalities == modality)


def _cross_modal_streams(split: SplitArrays, plan: sampling.CrossModalEpoch,
                         prefix: str = "", with_indices: bool = False) -> list[Stream]:
  streams = []
  for modality, name, indices in ((VISIBLE, "visible", plan.visible_indices),
                                  (INFRARED, "infrared", plan.infrared_indices)):
    positions = _positions(split, modality)[indices].reshape(plan.num_batches, -1)
    streams.append(Stream(prefix + name, split, modality, positions,
                          f"{prefix}{name}_labels",
                          f"{prefix}{name}_indices" if with_indices else None))
  return streams


def _agw_plan(split: SplitArrays, ids_per_batch: int, images_per_id: int, seed: int,
              epoch: int) -> sampling.CrossModalEpoch:
  return sampling.agw_cross_modality_epoch(
      split.labels[_positions(split, VISIBLE)], split.labels[_positions(split, INFRARED)],
      ids_per_batch=ids_per_batch, images_per_id=images_per_id, seed=seed, epoch=epoch)


def sampler_streams(train: SplitArrays, data_config, *, seed: int, epoch: int,
                    target: SplitArrays | None = None) -> list[Stream]:
  """The epoch's index plan of `data_config.sampler`, as streams of batch rows.

  Samplers (P = `ids_per_batch`, K = `images_per_id`):
    "agw": the AGW cross-modality identity sampler (`sampling.agw_cross_modality_epoch`):
      streams "visible" and "infrared", P*K rows each, slot i of both of one identity.
    "djanet": the same sampler (DJANet uses AGW's, with P = 24; spec djanet §3).
    "mcja": MCJA's modality-agnostic P x K sampler (`sampling.mcja_identity_epoch`): one
      stream "images" of P*K rows of both modalities.
    "domain_adaptation": DAN's two streams (dan.md §5–6): the labelled source `train` through
      the AGW sampler ("visible", "infrared"; drawn once, at epoch 0, and reused unless
      `redraw_source_plan`), and the unlabelled `target` through `sampling.target_epoch`
      ("target_visible", "target_infrared"; `target.labels` are its pseudo-labels, -1 for
      none; target batch b % its own epoch length).
  """
  sampler = data_config.sampler
  ids_per_batch, images_per_id = data_config.ids_per_batch, data_config.images_per_id
  if sampler in ("agw", "djanet"):
    return _cross_modal_streams(train, _agw_plan(train, ids_per_batch, images_per_id, seed,
                                                 epoch))
  if sampler == "mcja":
    plan = sampling.mcja_identity_epoch(train.labels, ids_per_batch=ids_per_batch,
                                        images_per_id=images_per_id, seed=seed, epoch=epoch)
    return [Stream("images", train, "mixed", plan.indices.reshape(plan.num_batches, -1),
                   "labels")]
  if sampler == "domain_adaptation":
    if target is None:
      raise ValueError("config.data.sampler='domain_adaptation' needs the unlabelled target "
                       "split: pass target= to train_dataset and steps_per_epoch.")
    source_epoch = epoch if data_config.get("redraw_source_plan", False) else 0
    source = _cross_modal_streams(train, _agw_plan(train, ids_per_batch, images_per_id, seed,
                                                   source_epoch))
    target_plan = sampling.target_epoch(
        target.labels[_positions(target, VISIBLE)], target.labels[_positions(target, INFRARED)],
        ids_per_batch=ids_per_batch, images_per_id=images_per_id,
        aligned=data_config.get("target_sampler", "independent") == "aligned", seed=seed,
        epoch=epoch)
    target_streams = _cross_modal_streams(target, target_plan, "target_", with_indices=True)
    num_batches = len(source[0].indices)
    wrapped = np.arange(num_batches) % len(target_streams[0].indices)
    return source + [dataclasses.replace(stream, indices=stream.indices[wrapped])
                     for stream in target_streams]
  raise ValueError(f"config.data.sampler={sampler!r} is not one of {SAMPLERS}.")


def train_dataset(train: SplitArrays, data_config, *, seed: int, epoch: int,
                  start_batch: int = 0, process_index: int = 0, process_count: int = 1,
                  target: SplitArrays | None = None) -> tf.data.Dataset:
  """One epoch of training batches, from batch `start_batch` on (for resuming).

  The sampler (`data_config.sampler`, see `sampler_streams`) fixes which images form each
  batch; the augmentation (`data_config.augmentation`, see `VIEWS` and
  `augment.train_view`) fixes the views of each. Batch b of epoch e is a function of (seed,
  e, b) only: the same whether the epoch started at 0 or at `start_batch`, and whatever the
  number of processes.

  Multi-host: with `process_count` n > 1 the process `process_index` p yields rows
  [p * R / n, (p + 1) * R / n) of every array below, R = the global rows of that array (P*K);
  concatenating the processes' arrays in process order gives the single-process batch
  exactly, augmentation included (random draws are made per global row). R must be a
  multiple of n.

  Batch dict (R = P*K global rows, r = R / n local rows; images float32 ImageNet-normalised
  [r, H, W, 3], labels int32 [r]):
    sampler "agw" / "djanet": "visible", "infrared", "visible_labels", "infrared_labels";
      augmentation "caj" adds "visible_augmented" (channel-exchanged view B of the same visible
      images); "djanet" adds "visible_augmented" (V2) and "infrared_augmented" (T2).
      Slot i of every array is of one identity.
    sampler "mcja": "images" [r, H, W, 3] (both modalities), "labels", "modalities" int32 [r]
      (0 visible, 1 infrared), rows [id_1 x K, id_2 x K, ...].
    sampler "domain_adaptation": the "agw" keys for the labelled source, and
      "target_visible", "target_infrared" images, "target_visible_labels",
      "target_infrared_labels" (pseudo-labels, -1 = none), "target_visible_indices",
      "target_infrared_indices" int32 [r] (positions into `target`, for DAN's memory).

  Args:
    train: the training split in memory (the labelled source for domain adaptation).
    data_config: `config.data`: sampler, augmentation, ids_per_batch, images_per_id, pad,
      random_erasing, vimc_cutmix_hw_swap, target_sampler, redraw_source_plan.
    seed: the config seed.
    epoch: 0-based epoch.
    start_batch: first batch to yield.
    process_index: this process (`jax.process_index()`).
    process_count: number of processes (`jax.process_count()`).
    target: the unlabelled target split, sampler "domain_adaptation" only.

  Returns:
    A dataset of batch dicts of NumPy-convertible tensors.
  """
  streams = sampler_streams(train, data_config, seed=seed, epoch=epoch, target=target)
  augmentation = data_config.get("augmentation", "agw")
  if augmentation not in VIEWS:
    raise ValueError(f"config.data.augmentation={augmentation!r} is not one of "
                     f"{sorted(VIEWS)}.")
  views = []  # (output key, stream index, recipe)
  for stream_index, stream in enumerate(streams):
    if stream.modality not in VIEWS[augmentation]:
      raise ValueError(f"config.data.augmentation={augmentation!r} needs visible and infrared "
                       f"streams; sampler {data_config.sampler!r} mixes the modalities.")
    for suffix, recipe in VIEWS[augmentation][stream.modality]:
      views.append((stream.name + suffix, stream_index, recipe))

  num_batches, global_rows = streams[0].indices.shape
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(f"process_index={process_index} is not in [0, process_count="
                     f"{process_count}).")
  if global_rows % process_count:
    raise ValueError(f"The global batch has {global_rows} rows per stream, not divisible by "
                     f"process_count={process_count}; change config.data.ids_per_batch or "
                     "images_per_id.")
  local_rows = global_rows // process_count
  rows = augment.Rows(process_index * local_rows, (process_index + 1) * local_rows,
                      global_rows)
  local_indices = [stream.indices[:, rows.start:rows.stop] for stream in streams]
  seeds = augmentation_seeds(seed, epoch, num_batches, len(views))
  pad = data_config.pad
  erasing = data_config.get("random_erasing", "none")
  cutmix_hw_swap = data_config.get("vimc_cutmix_hw_swap", True)
  image_shape = train.images.shape[1:]

  def gather(batch_index):
    # NumPy fancy indexing: the decoded images never enter the TF graph as a constant, which
    # would hit the 2 GB graph limit on the real dataset.
    arrays = []
    for stream, indices in zip(streams, local_indices):
      positions = indices[batch_index]
      arrays += [stream.split.images[positions], stream.split.labels[positions],
                 stream.split.modalities[positions], positions.astype(np.int32)]
    return arrays

  def load(batch_index):
    arrays = tf.numpy_function(gather, [batch_index],
                               [tf.uint8, tf.int32, tf.int32, tf.int32] * len(streams),
                               stateful=False)
    batch = {}
    images = []
    for stream_index, stream in enumerate(streams):
      stream_images, labels, modalities, positions = arrays[4 * stream_index:
                                                            4 * stream_index + 4]
      stream_images.set_shape((local_rows, *image_shape))
      for array in (labels, modalities, positions):
        array.set_shape((local_rows,))
      images.append((stream_images, modalities))
      batch[stream.labels_key] = labels
      if stream.modality == "mixed":
        batch["modalities"] = modalities
      if stream.indices_key:
        batch[stream.indices_key] = positions
    batch_seeds = tf.gather(tf.constant(seeds), batch_index)
    for view_index, (key, stream_index, recipe) in enumerate(views):
      stream_images, modalities = images[stream_index]
      batch[key] = augment.train_view(
          stream_images, batch_seeds[view_index], recipe, pad=pad,
          random_erasing_variant=erasing, cutmix_hw_swap=cutmix_hw_swap,
          visible=tf.equal(modalities, VISIBLE), rows=rows)
    return batch

  dataset = tf.data.Dataset.range(start_batch, num_batches)
  # `load` is plain graph code; AutoGraph's conversion of it would only cost tracing time.
  dataset = dataset.map(tf.autograph.experimental.do_not_convert(load),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.prefetch(2)


def synthetic_target_domain(split: SplitArrays, variant: str, dataset: str) -> SplitArrays:
  """`split` with every image moved into DAN's synthetic domain `variant` (dan.md §8).

  Each image is transformed by `augment.synthetic_domain_image`, seeded by
  (dataset, variant, relative path), so the result does not depend on the split's order.
  dan.md applies the transform to the original-resolution images before resizing; here it
  runs on the decoded (already resized) arrays. Labels are kept: a domain-adaptation run
  replaces them by -1 or pseudo-labels for training and keeps them for evaluation.

  Args:
    split: decoded images and their metadata.
    variant: one of `augment.SYNTHETIC_DOMAINS` ("noise", "lighting", "background").
    dataset: dataset name in the seed ("sysu", "regdb", "llcm").
  """
  images = np.stack([
      augment.synthetic_domain_image(
          image, variant, infrared=modality == INFRARED,
          seed=augment.synthetic_domain_seed(dataset, variant, str(path)))
      for image, modality, path in zip(split.images, split.modalities, split.relative_paths)
  ]) if len(split) else split.images
  return dataclasses.replace(split, images=images)


def steps_per_epoch(train: SplitArrays, data_config, *,
                    target: SplitArrays | None = None) -> int:
  """The reference epoch length of the configured sampler on this training split.

  "agw", "djanet": floor(max(Nv, Ni) / (P*K)) + 1 (696 on SYSU-MM01 at P=8, K=4; 232 at
  P=24); "mcja": `sampling.mcja_num_batches`; "domain_adaptation": the AGW formula on the
  labelled source (DAN iterates over its source plan; `target` is not needed for the count).

  Args:
    train: the training split (the source for domain adaptation).
    data_config: `config.data` (sampler, ids_per_batch P, images_per_id K).
    target: the target split of domain adaptation (unused by the count, accepted for symmetry
      with `train_dataset`).
  """
  del target  # DAN's epoch is its source plan.
  sampler = data_config.sampler
  ids_per_batch, images_per_id = data_config.ids_per_batch, data_config.images_per_id
  if sampler == "mcja":
    return sampling.mcja_num_batches(train.labels, ids_per_batch, images_per_id)
  if sampler not in SAMPLERS:
    raise ValueError(f"config.data.sampler={sampler!r} is not one of {SAMPLERS}.")
  num_visible = int(np.sum(train.modalities == VISIBLE))
  return sampling.agw_num_batches(num_visible, len(train) - num_visible, ids_per_batch,
                                  images_per_id)
