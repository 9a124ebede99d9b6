"""Images per second of the training input pipeline on a SYSU-MM01-sized set at 288 x 144.

  python benchmarks/input_pipeline.py [--images=640] [--distinct_images=256]

The training split has SYSU-MM01's structure (22,258 visible + 11,909 infrared images of 395
identities, labels as the reference builds them) but only `--distinct_images` different random
images, reused cyclically: the 4.2 GB of real pixels would not fit beside other work, and the
pipeline's cost does not depend on which pixels it reads (the sampler still draws positions
over all 34,167 images). The output says so.

What it measures, each as images per second (total, and per core of this host):
  1. The pipeline as the loop uses it (`pipeline.train_dataset`): AGW (64 images a batch),
     CAJ (96: three views), MCJA (128, VIMC), DJANet (384: four views of P = 24).
  2. The design choices behind it, on the AGW transform:
     - decoded-image cache (the pipeline's: uint8 arrays in memory, gathered per batch) versus
       decoding each image's PNG at every step (what reading the TFRecords per epoch costs);
     - vectorised augmentation (one op per batch, the pipeline's) versus per-image tf.data
       maps batched afterwards;
     - on-device augmentation: the pipeline ships uint8 crops' sources and a jnp function does
       pad-crop-flip-normalise inside the jitted step. On this host the "device" is the CPU;
       the number shows its cost per image, which on an accelerator is a negligible slice of
       a ResNet-50 step.
The rate needed is about 5,000 images/s (one H100 training AGW); the summary says which paths
reach it on 16 cores, extrapolating this host's per-core rate linearly (tf.data parallelises
batches over cores; the extrapolation is stated as such).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top

# SYSU-MM01's training split used by every reference (spec baseline §1.1.3).
SYSU_VISIBLE, SYSU_INFRARED, SYSU_IDS = 22258, 11909, 395
HEIGHT, WIDTH, PAD = 288, 144, 10
TARGET_RATE = 5000
TARGET_CORES = 16


class CyclicImages:
  """Stands in for an [N, H, W, 3] uint8 array whose image i is `distinct[i % D]`."""

  def __init__(self, distinct: np.ndarray, count: int):
    self.distinct = distinct
    self.shape = (count, *distinct.shape[1:])
    self.dtype = distinct.dtype

  def __len__(self) -> int:
    return self.shape[0]

  def __getitem__(self, positions):
    return self.distinct[np.asarray(positions) % len(self.distinct)]


def sysu_sized_split(distinct_images: int):
  """A training split with SYSU-MM01's counts: labels 0..394, each id in both modalities."""
  from vireid_jax.data import splits
  rng = np.random.default_rng(0)
  def per_id_counts(total):
    # Uneven, as in the real data: Dirichlet shares, at least 1 image per id.
    shares = rng.dirichlet(np.full(SYSU_IDS, 5.0))
    counts = np.maximum(1, np.floor(shares * total)).astype(int)
    counts[np.argmax(counts)] += total - counts.sum()
    return counts
  labels = np.concatenate([np.repeat(np.arange(SYSU_IDS), per_id_counts(SYSU_VISIBLE)),
                           np.repeat(np.arange(SYSU_IDS), per_id_counts(SYSU_INFRARED))])
  modalities = np.repeat([splits.VISIBLE, splits.INFRARED], [SYSU_VISIBLE, SYSU_INFRARED])
  count = len(labels)
  # Photo-like pixels (smooth blocks plus noise) rather than white noise, so that PNG decoding
  # costs what it costs on real crops (white noise is stored uncompressed and decodes as fast
  # as a copy).
  coarse = rng.integers(0, 256, (distinct_images, HEIGHT // 16, WIDTH // 16, 3))
  smooth = np.repeat(np.repeat(coarse, 16, axis=1), 16, axis=2)
  distinct = np.clip(smooth + rng.integers(-8, 9, smooth.shape), 0, 255).astype(np.uint8)
  split = splits.SplitArrays(
      images=CyclicImages(distinct, count), labels=labels.astype(np.int32),
      person_ids=labels.astype(np.int32), cameras=np.ones(count, np.int32),
      modalities=modalities.astype(np.int32), relative_paths=np.array([""] * count))
  return split, distinct


def images_per_batch(batch: dict) -> int:
  return sum(len(value) for value in batch.values() if getattr(value, "ndim", 0) == 4)


def rate(dataset, min_images: int) -> tuple[float, float]:
  """(images per wall-clock second, images per CPU-second of this process) over the batches
  holding `min_images` images, after one warm-up batch (tracing, thread-pool start-up).

  The CPU-second rate is the per-core rate, and it holds however busy the host is with other
  work; the wall-clock rate is what this host delivered while the benchmark ran.
  """
  iterator = dataset.as_numpy_iterator()
  next(iterator)
  start, cpu_start, images = time.perf_counter(), time.process_time(), 0
  while images < min_images:
    images += images_per_batch(next(iterator))
  return (images / (time.perf_counter() - start),
          images / (time.process_time() - cpu_start))


def method_configs():
  import ml_collections
  base = dict(pad=PAD, random_erasing="none", vimc_cutmix_hw_swap=True,
              target_sampler="independent", redraw_source_plan=False)
  return {
      "AGW  (P8 K4, pad-crop-flip)": dict(sampler="agw", augmentation="agw", ids_per_batch=8,
                                          images_per_id=4),
      "CAJ  (3 views, erasing, channel ops)": dict(sampler="agw", augmentation="caj",
                                                   ids_per_batch=8, images_per_id=4),
      "MCJA (P8 K16, VIMC, erasing)": dict(sampler="mcja", augmentation="mcja",
                                           ids_per_batch=8, images_per_id=16),
      "DJANet (P24 K4, 4 views)": dict(sampler="djanet", augmentation="djanet",
                                       ids_per_batch=24, images_per_id=4),
  }, lambda fields: ml_collections.ConfigDict({**base, **fields})


def agw_epoch_positions(train, seed: int):
  """Epoch 0 of the AGW sampler (P=8, K=4) as split positions.

  Returns:
    (plan, positions [2 modalities, num_batches * P*K] into `train`).
  """
  from vireid_jax.data import splits
  from vireid_jax.data import sampling
  visible = np.flatnonzero(train.modalities == splits.VISIBLE)
  infrared = np.flatnonzero(train.modalities == splits.INFRARED)
  plan = sampling.agw_cross_modality_epoch(train.labels[visible], train.labels[infrared],
                                           ids_per_batch=8, images_per_id=4, seed=seed,
                                           epoch=0)
  return plan, np.stack([visible[plan.visible_indices], infrared[plan.infrared_indices]])


def png_decode_dataset(train, distinct, seed: int):
  """AGW batches that decode every image's PNG at each step instead of reading a cache."""
  import tensorflow as tf
  from PIL import Image
  from vireid_jax.data import augment
  from vireid_jax.data import pipeline
  encoded = []
  for image in distinct:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    encoded.append(buffer.getvalue())
  encoded = np.array(encoded, dtype=object)
  plan, positions = agw_epoch_positions(train, seed)
  positions = positions.reshape(2, plan.num_batches, plan.batch_size)
  seeds = tf.constant(pipeline.augmentation_seeds(seed, 0, plan.num_batches))

  def load(batch_index):
    views = {}
    for modality, name in enumerate(("visible", "infrared")):
      png = tf.numpy_function(lambda b, m=modality: encoded[positions[m, b] % len(encoded)],
                              [batch_index], tf.string, stateful=False)
      images = tf.map_fn(lambda data: tf.io.decode_png(data, channels=3), png,
                         fn_output_signature=tf.TensorSpec((None, None, 3), tf.uint8))
      images = tf.ensure_shape(images, (plan.batch_size, HEIGHT, WIDTH, 3))
      views[name] = augment.agw_train_augment(images, tf.gather(seeds, batch_index)[modality],
                                              PAD)
    return views
  return tf.data.Dataset.range(plan.num_batches).map(
      tf.autograph.experimental.do_not_convert(load), num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True).prefetch(2)


def per_image_dataset(train, seed: int):
  """AGW batches augmented image by image (a tf.data map per image), batched afterwards."""
  import tensorflow as tf
  from vireid_jax.data import augment
  plan, positions = agw_epoch_positions(train, seed)
  pairs = positions.T

  def load(index):
    images = tf.numpy_function(lambda i: train.images[pairs[i]], [index], tf.uint8,
                               stateful=False)
    images = tf.ensure_shape(images, (2, HEIGHT, WIDTH, 3))
    seed_pair = tf.stack([tf.cast(index, tf.int32), 7])
    return {"visible": augment.agw_train_augment(images[:1], seed_pair, PAD)[0],
            "infrared": augment.agw_train_augment(images[1:], seed_pair + 1, PAD)[0]}
  dataset = tf.data.Dataset.range(len(pairs)).map(
      tf.autograph.experimental.do_not_convert(load), num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True)
  return dataset.batch(plan.batch_size).prefetch(2)


def gathered_dataset(train, seed: int, augment_fn=None):
  """AGW batches gathered from the decoded cache, then `augment_fn(images, seed)` or, with
  None, left uint8 (what an on-device augmentation needs from the host)."""
  import tensorflow as tf
  from vireid_jax.data import pipeline
  plan, positions = agw_epoch_positions(train, seed)
  positions = positions.reshape(2, plan.num_batches, plan.batch_size)
  seeds = tf.constant(pipeline.augmentation_seeds(seed, 0, plan.num_batches))

  def load(batch_index):
    images = tf.numpy_function(lambda b: train.images[positions[:, b].reshape(-1)],
                               [batch_index], tf.uint8, stateful=False)
    images = tf.ensure_shape(images, (2 * plan.batch_size, HEIGHT, WIDTH, 3))
    views = {"visible": images[:plan.batch_size], "infrared": images[plan.batch_size:]}
    if augment_fn is not None:
      batch_seeds = tf.gather(seeds, batch_index)
      views = {name: augment_fn(views[name], batch_seeds[modality])
               for modality, name in enumerate(("visible", "infrared"))}
    return views
  return tf.data.Dataset.range(plan.num_batches).map(
      tf.autograph.experimental.do_not_convert(load), num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True).prefetch(2)


def xla_agw_augment():
  """The pipeline's AGW transform compiled with XLA (`jit_compile`), as a tf.data map calls it.

  XLA fuses the crop, flip and normalisation into one pass. Its float draws differ from the
  TF kernels' for the same seed (integer draws agree), so adopting it would change which crops
  a seed gives, deterministically.
  """
  import tensorflow as tf
  from vireid_jax.data import augment
  return tf.function(lambda images, seed: augment.agw_train_augment(images, seed, PAD),
                     jit_compile=True)


def jnp_pad_crop_flip_normalize():
  """The AGW transform in jnp, vectorised over the batch and jitted (on-device variant)."""
  import jax
  import jax.numpy as jnp
  from vireid_jax.data.normalization import IMAGENET_MEAN
  from vireid_jax.data.normalization import IMAGENET_STD

  @jax.jit
  def augment(images, key):
    batch = images.shape[0]
    top_key, left_key, flip_key = jax.random.split(key, 3)
    tops = jax.random.randint(top_key, (batch,), 0, 2 * PAD + 1)
    lefts = jax.random.randint(left_key, (batch,), 0, 2 * PAD + 1)
    flips = jax.random.bernoulli(flip_key, 0.5, (batch,))
    padded = jnp.pad(images, ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0)))
    def crop(image, top, left, flip):
      window = jax.lax.dynamic_slice(image, (top, left, 0), (HEIGHT, WIDTH, 3))
      return jnp.where(flip, window[:, ::-1], window)
    cropped = jax.vmap(crop)(padded, tops, lefts, flips)
    pixels = cropped.astype(jnp.float32) / 255.0
    return (pixels - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
  return augment


def jnp_rate(distinct: np.ndarray, min_images: int) -> tuple[float, float]:
  import jax
  augment = jnp_pad_crop_flip_normalize()
  images = jax.device_put(distinct[np.arange(64) % len(distinct)])
  key = jax.random.key(0)
  augment(images, key).block_until_ready()
  num_batches = -(-min_images // 64)
  start, cpu_start = time.perf_counter(), time.process_time()
  for step in range(num_batches):
    augment(images, jax.random.fold_in(key, step)).block_until_ready()
  images_done = 64 * num_batches
  return (images_done / (time.perf_counter() - start),
          images_done / (time.process_time() - cpu_start))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--images", type=int, default=640,
                      help="images timed per measurement (after one warm-up batch)")
  parser.add_argument("--distinct_images", type=int, default=256,
                      help="different random images behind the 34,167 positions")
  args = parser.parse_args()

  from vireid_jax.data import pipeline
  cores = len(os.sched_getaffinity(0))
  train, distinct = sysu_sized_split(args.distinct_images)
  print(f"Training split: {SYSU_VISIBLE:,} visible + {SYSU_INFRARED:,} infrared positions of "
        f"{SYSU_IDS} identities at {HEIGHT}x{WIDTH} (SYSU-MM01's structure), backed by "
        f"{args.distinct_images} distinct random photo-like images reused cyclically. Host: {cores} "
        f"cores, load average {os.getloadavg()[0]:.1f} at the start (other work on the "
        f"host lowers every figure). At least {args.images} images timed per row.\n")
  rows = []
  print(f"{'':<62}{'img/s':>8}{'img/CPU-s':>11}{'16 cores':>10}")
  def report(name, rates):
    wall_rate, per_core = rates
    rows.append((name, wall_rate, per_core))
    print(f"{name:<62}{wall_rate:8.0f}{per_core:11.0f}{per_core * TARGET_CORES:10.0f}",
          flush=True)

  print("1. train_dataset as the loop uses it (augmented float32 batches):")
  configs, make_config = method_configs()
  for name, fields in configs.items():
    dataset = pipeline.train_dataset(train, make_config(fields), seed=0, epoch=0)
    report("  " + name, rate(dataset, args.images))

  print("2. Design choices on the AGW transform (64 images a batch):")
  report("  decoded-image cache, vectorised (= the pipeline)", rows[0][1:])
  report("  PNG decoded per image at every step, vectorised",
         rate(png_decode_dataset(train, distinct, seed=0), args.images))
  report("  decoded-image cache, per-image map then batch",
         rate(per_image_dataset(train, seed=0), args.images))
  report("  decoded-image cache, vectorised, XLA-compiled (jit_compile)",
         rate(gathered_dataset(train, 0, xla_agw_augment()), args.images))
  report("  decoded-image cache, uint8 batches (augment on device)",
         rate(gathered_dataset(train, 0), args.images))
  report("  on-device augmentation: jnp, jitted, on this CPU",
         jnp_rate(distinct, args.images))

  print(f"\nimg/s: wall-clock on this host; img/CPU-s: images per CPU-second of this process "
        f"(per core, independent of other load); 16 cores: img/CPU-s x {TARGET_CORES}, a "
        "linear extrapolation.")
  print(f"Goal: {TARGET_RATE:,} img/s on a {TARGET_CORES}-core host (one H100 training AGW):")
  for name, _, per_core in rows:
    verdict = "reaches it" if per_core * TARGET_CORES >= TARGET_RATE else "falls short"
    print(f"  {name.strip():<62} {verdict}")


if __name__ == "__main__":
  main()
