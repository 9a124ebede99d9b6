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

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from vireid_jax.data import augment
from vireid_jax.data import device_augment
from vireid_jax.data import sampling
from vireid_jax.data.views import augmentation_seeds
from vireid_jax.data.views import view_plan
from vireid_jax.data.splits import SplitArrays
from vireid_jax.data.splits import VISIBLE


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


def device_augmentation(train: SplitArrays, data_config, *, seed: int,
                        target: SplitArrays | None = None
                        ) -> device_augment.DeviceAugmentation | None:
  """What the train step runs on the batches of `train_dataset` before the method's step.

  None with `config.data.augment_on` "host" (the batches are the views already); with
  "device", the `DeviceAugmentation` of the configured views. The views are the same every
  epoch (the sampler's streams are), so epoch 0's plan serves the run.
  """
  if device_augment.resolve_augment_on(data_config) != "device":
    return None
  streams = sampling.get_sampler(data_config.sampler).streams(
      train, data_config, seed=seed, epoch=0, target=target, epoch_inputs=None)
  return device_augment.DeviceAugmentation(views=view_plan(streams, data_config),
                                           options=device_augment.view_options(data_config))


def train_dataset(train: SplitArrays, data_config, *, seed: int, epoch: int,
                  start_batch: int = 0, process_index: int = 0, process_count: int = 1,
                  target: SplitArrays | None = None,
                  epoch_inputs: dict | None = None) -> tf.data.Dataset:
  """One epoch of training batches, from batch `start_batch` on (for resuming).

  The sampler (`data_config.sampler`, an entry of `sampling.SAMPLERS`) fixes which images
  form each batch; the augmentation (`data_config.augmentation`, an entry of
  `views.AUGMENTATIONS`) fixes the views of each. Batch b of epoch e is a function of
  (seed, e, b, epoch_inputs) only: the same whether the epoch started at 0 or at
  `start_batch`, and whatever the number of processes.

  Multi-host: with `process_count` n > 1 the process `process_index` p yields rows
  [p * R / n, (p + 1) * R / n) of every array below, R = the global rows of that array's
  stream (P*K; streams may differ, e.g. AlignGAN's); concatenating the processes' arrays in
  process order gives the single-process batch exactly, augmentation included (random draws
  are made per global row of the stream). Every stream's R must be a multiple of n.

  Batch dict (R = P*K global rows of the array's stream, r = R / n local rows; images float32
  ImageNet-normalised [r, H, W, 3], labels int32 [r]):
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
    sampler "aligngan": the IDE kind "visible", "infrared", "visible_labels",
      "infrared_labels" (R = ids_per_batch * images_per_id, 72 in AlignGAN) and the GAN kind
      "gan_visible", "gan_infrared", "gan_visible_labels", "gan_infrared_labels"
      (R = gan_ids_per_batch * gan_images_per_id, 16); slot i of a kind's visible and infrared
      arrays is of one identity. Batch b of epoch e is global iteration
      e * batches_per_epoch + b of both kinds' endless streams.

  `config.data.augment_on` "device" (`device_augment.resolve_augment_on`): the batch carries
  the sampled images instead of their views, and the train step computes the views
  (`device_augmentation`): per stream `device_augment.images_key(name)` uint8 [r, H, W, 3]
  and `device_augment.modalities_key(name)` int32 [r], plus `device_augment.SEEDS_KEY` int32
  [r0, V, 2] (the V views' seeds in every row of the first stream's rows); the labels,
  modalities and indices keys above are unchanged.

  Args:
    train: the training split in memory (the labelled source for domain adaptation).
    data_config: `config.data`: sampler, augmentation, augment_on, ids_per_batch,
      images_per_id, pad, random_erasing, vimc_cutmix_hw_swap, vimc_branches,
      target_sampler, redraw_source_plan;
      "aligngan" also gan_ids_per_batch, gan_images_per_id, batches_per_epoch.
    seed: the config seed.
    epoch: 0-based epoch.
    start_batch: first batch to yield.
    process_index: this process (`jax.process_index()`).
    process_count: number of processes (`jax.process_count()`).
    target: the unlabelled target split, sampler "domain_adaptation" only.
    epoch_inputs: the method's `epoch_inputs` for this epoch (e.g. "target_labels"), read by
      the sampler.

  Returns:
    A dataset of batch dicts of NumPy-convertible tensors.
  """
  streams = sampling.get_sampler(data_config.sampler).streams(
      train, data_config, seed=seed, epoch=epoch, target=target, epoch_inputs=epoch_inputs)
  views = view_plan(streams, data_config)
  stream_position = {stream.name: index for index, stream in enumerate(streams)}
  on_device = device_augment.resolve_augment_on(data_config) == "device"

  num_batches = streams[0].indices.shape[0]
  if any(stream.indices.shape[0] != num_batches for stream in streams):
    lengths = {stream.name: stream.indices.shape[0] for stream in streams}
    raise ValueError(f"Sampler {data_config.sampler!r} gave streams of different epoch "
                     f"lengths {lengths}; every stream needs one row of batches per step.")
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(f"process_index={process_index} is not in [0, process_count="
                     f"{process_count}).")
  # Streams may differ in rows (AlignGAN: 72 IDE, 16 GAN rows); each is split by its own.
  stream_rows = []  # augment.Rows of this process, per stream
  for stream in streams:
    global_rows = stream.indices.shape[1]
    if global_rows % process_count:
      raise ValueError(f"Stream {stream.name!r} has {global_rows} rows per batch, not "
                       f"divisible by process_count={process_count}; change "
                       f"{' or '.join(stream.row_fields)}.")
    local_rows = global_rows // process_count
    stream_rows.append(augment.Rows(process_index * local_rows,
                                    (process_index + 1) * local_rows, global_rows))
  local_indices = [stream.indices[:, rows.start:rows.stop]
                   for stream, rows in zip(streams, stream_rows)]
  seeds = augmentation_seeds(seed, epoch, num_batches, len(views))
  options = device_augment.view_options(data_config)
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
      local_rows = stream_rows[stream_index].stop - stream_rows[stream_index].start
      stream_images.set_shape((local_rows, *image_shape))
      for array in (labels, modalities, positions):
        array.set_shape((local_rows,))
      images.append((stream_images, modalities))
      batch[stream.labels_key] = labels
      if stream.modality == "mixed":
        batch["modalities"] = modalities
      if stream.indices_key:
        batch[stream.indices_key] = positions
      if on_device:
        batch[device_augment.images_key(stream.name)] = stream_images
        batch[device_augment.modalities_key(stream.name)] = modalities
    batch_seeds = tf.gather(tf.constant(seeds), batch_index)
    if on_device:
      # The views are computed in the train step (`device_augment.DeviceAugmentation`); every
      # row carries the batch's seeds so that the batch stays one row-sharded pytree.
      first_rows = stream_rows[0].stop - stream_rows[0].start
      batch[device_augment.SEEDS_KEY] = tf.broadcast_to(batch_seeds[None],
                                                        (first_rows, *seeds.shape[1:]))
      return batch
    for view in views:
      stream_images, modalities = images[stream_position[view.stream]]
      batch[view.key] = augment.train_view(
          stream_images, batch_seeds[view.seed_index], view.recipe, pad=options.pad,
          random_erasing_variant=options.random_erasing,
          cutmix_hw_swap=options.cutmix_hw_swap, vimc_switches=options.vimc_switches,
          visible=tf.equal(modalities, VISIBLE), rows=stream_rows[stream_position[view.stream]])
    return batch

  dataset = tf.data.Dataset.range(start_batch, num_batches)
  # `load` is plain graph code; AutoGraph's conversion of it would only cost tracing time.
  dataset = dataset.map(tf.autograph.experimental.do_not_convert(load),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.prefetch(2)


def steps_per_epoch(train: SplitArrays, data_config, *,
                    target: SplitArrays | None = None) -> int:
  """The reference epoch length of the configured sampler on this training split.

  "agw", "djanet": floor(max(Nv, Ni) / (P*K)) + 1 (696 on SYSU-MM01 at P=8, K=4; 232 at
  P=24); "mcja": `sampling.mcja_num_batches`; "domain_adaptation": the AGW formula on the
  labelled source (DAN iterates over its source plan); "aligngan":
  `config.data.batches_per_epoch` (AlignGAN's "step" of 100 iterations; its streams run on
  across epochs, so the epoch length is a choice, not the length of a pass).

  Args:
    train: the training split (the source for domain adaptation).
    data_config: `config.data` (sampler, ids_per_batch P, images_per_id K,
      batches_per_epoch).
    target: the target split of domain adaptation.
  """
  return sampling.get_sampler(data_config.sampler).num_batches(train, data_config,
                                                               target=target)
