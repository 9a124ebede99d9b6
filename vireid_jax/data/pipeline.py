"""tf.data pipelines: training batches from the sampler, evaluation batches for features.

Training images are decoded once into memory (the reference also trains from in-memory
arrays); the sampler decides which images form each batch, and tf.data gathers, augments and
prefetches them in parallel with the train step. The pipeline yields NumPy batch dicts: what
follows is JAX only.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

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


def augmentation_seeds(seed: int, epoch: int, num_batches: int) -> np.ndarray:
  """[num_batches, 2 modalities, 2] int32 stateless seeds, a function of (seed, epoch)."""
  rng = sampling.epoch_rng(seed, epoch, "augmentation")
  return rng.integers(0, 2**31 - 1, size=(num_batches, 2, 2), dtype=np.int64).astype(np.int32)


def agw_train_dataset(train: SplitArrays, *, ids_per_batch: int, images_per_id: int, pad: int,
                      seed: int, epoch: int, start_batch: int = 0) -> tf.data.Dataset:
  """One epoch of AGW training batches, starting at batch `start_batch` (for resuming).

  Each element is a dict: "visible", "infrared" [P*K, H, W, 3] float32 normalised;
  "visible_labels", "infrared_labels" [P*K] int32, identity-aligned slot by slot.
  """
  visible = train.select(train.modalities == VISIBLE)
  infrared = train.select(train.modalities == INFRARED)
  plan = sampling.agw_cross_modality_epoch(
      visible.labels, infrared.labels, ids_per_batch=ids_per_batch,
      images_per_id=images_per_id, seed=seed, epoch=epoch)
  batch_size = plan.batch_size
  visible_batches = plan.visible_indices.reshape(plan.num_batches, batch_size)
  infrared_batches = plan.infrared_indices.reshape(plan.num_batches, batch_size)
  seeds = augmentation_seeds(seed, epoch, plan.num_batches)
  image_shape = visible.images.shape[1:]

  def gather(batch_index):
    # NumPy fancy indexing: the decoded images never enter the TF graph as a constant, which
    # would hit the 2 GB graph limit on the real dataset.
    visible_index, infrared_index = visible_batches[batch_index], infrared_batches[batch_index]
    return (visible.images[visible_index], infrared.images[infrared_index],
            visible.labels[visible_index], infrared.labels[infrared_index])

  def load(batch_index):
    visible_images, infrared_images, visible_labels, infrared_labels = tf.numpy_function(
        gather, [batch_index], [tf.uint8, tf.uint8, tf.int32, tf.int32], stateful=False)
    visible_images.set_shape((batch_size, *image_shape))
    infrared_images.set_shape((batch_size, *image_shape))
    visible_labels.set_shape((batch_size,))
    infrared_labels.set_shape((batch_size,))
    batch_seeds = tf.gather(tf.constant(seeds), batch_index)
    return {
        "visible": augment.agw_train_augment(visible_images, batch_seeds[VISIBLE], pad),
        "infrared": augment.agw_train_augment(infrared_images, batch_seeds[INFRARED], pad),
        "visible_labels": visible_labels,
        "infrared_labels": infrared_labels,
    }

  dataset = tf.data.Dataset.range(start_batch, plan.num_batches)
  dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.prefetch(2)


def eval_batches(images: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
  """Test-time batches: [b, H, W, 3] float32 normalised, no augmentation (spec §3.1), in order."""
  dataset = tf.data.Dataset.from_tensor_slices(np.arange(len(images)))
  dataset = dataset.batch(batch_size)
  dataset = dataset.map(
      lambda index: augment.normalize(tf.numpy_function(
          lambda i: images[i], [index], tf.uint8, stateful=False)),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.prefetch(2).as_numpy_iterator()


def steps_per_epoch(train: SplitArrays, ids_per_batch: int, images_per_id: int) -> int:
  """The reference epoch length for the AGW sampler on this training split."""
  num_visible = int(np.sum(train.modalities == VISIBLE))
  return sampling.agw_num_batches(num_visible, len(train) - num_visible, ids_per_batch,
                                  images_per_id)
