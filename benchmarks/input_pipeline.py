"""Images per second of every method's training input, in both `config.data.augment_on` modes,
on a SYSU-MM01-sized set at 288 x 144.

  python benchmarks/input_pipeline.py [--images=1280] [--min_seconds=3] [--device_images=640]
      [--recipes=AGW,CAJ,...] [--parts=host,device,design] [--distinct_images=256]

The training split has SYSU-MM01's structure (22,258 visible + 11,909 infrared images of 395
identities, labels as the reference builds them) but only `--distinct_images` different random
images, reused cyclically: the 4.2 GB of real pixels would not fit beside other work, and the
pipeline's cost does not depend on which pixels it reads (the sampler still draws positions
over all 34,167 images). The output says so.

Every recipe the configs use (`RECIPES`: AGW; AGW with the LLCM fork's random erasing, as MMN
and the LLCM config train; CAJ's three views; MCJA's sampler and VIMC; DJANet's four views at
P = 24), each in both modes:
  * host mode (`augment_on="host"`): `pipeline.train_dataset` computes the views in tf.data.
  * device mode (`augment_on="device"`), host side: `pipeline.train_dataset` ships the sampled
    uint8 images, their modalities and the views' seeds; images are counted as the views the
    step will see (`DeviceAugmentation.count_images`).
  * device mode, device side: the jitted `pipeline.device_augmentation` (the jnp function
    `loop.jit_train_step` fuses into the train step) on those shipped batches, `device_put`
    included. Here the "device" is this host's CPU (XLA's CPU backend): its figures say what
    the jnp code costs on a CPU, not what it costs on a GPU, where it is a sliver of a
    ResNet-50 step (`benchmarks/gpu.sh` measures that).
Each gives images per wall-clock second and images per CPU-second of this process (all its
threads: `time.process_time`) while it runs. Host work per image is what limits a GPU's step
rate, and images per CPU-second is that work's measure, which other work on the host moves
much less than the wall-clock rate; the criterion of the device mode is >= 1,000 images per
CPU-second of host work for every recipe.

The "design" part (`--parts`; all three parts run by default, about 2 minutes on 2 cores)
measures the choices behind the host mode on AGW, against its row above: decoding each
image's PNG at every step instead of a decoded uint8 cache, per-image tf.data maps instead of
one vectorised op per batch, and the TF transform XLA-compiled (`jit_compile`).
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top

# SYSU-MM01's training split used by every reference (spec baseline §1.1.3).
SYSU_VISIBLE, SYSU_INFRARED, SYSU_IDS = 22258, 11909, 395
HEIGHT, WIDTH, PAD = 288, 144, 10
# One H100 trains AGW at about 5,000 images/s; a GPU host has about 16 cores.
TARGET_RATE = 5000
TARGET_CORES = 16
# The device mode's criterion: host work per image, whatever the recipe.
HOST_CRITERION = 1000   # images per CPU-second

# name -> (what it is, its `config.data` fields besides `augment_on`). The fields are each
# method's config's (configs/*.py) at this benchmark's 288 x 144 and pad 10.
RECIPES = {
    "AGW": ("P8 K4, pad-crop-flip",
            dict(sampler="agw", augmentation="agw", ids_per_batch=8, images_per_id=4)),
    "AGW + llcm erasing": ("P8 K4, + random erasing (MMN, LLCM fork)",
                           dict(sampler="agw", augmentation="agw", random_erasing="llcm",
                                ids_per_batch=8, images_per_id=4)),
    "CAJ": ("P8 K4, 3 views: erasing, channel exchange, adaptive grey",
            dict(sampler="agw", augmentation="caj", ids_per_batch=8, images_per_id=4)),
    "MCJA": ("P8 K16, VIMC, fill-127 pad, mcja erasing",
             dict(sampler="mcja", augmentation="mcja", ids_per_batch=8, images_per_id=16,
                  vimc_cutmix_hw_swap=True,
                  vimc_branches=dict(hue=True, weighted_grey=True, channel_cutmix=True,
                                     spectrum_jitter=True))),
    "DJANet": ("P24 K4, 4 views",
               dict(sampler="djanet", augmentation="djanet", ids_per_batch=24,
                    images_per_id=4)),
}
PARTS = ("host", "device", "design")


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


def sysu_sized_split(distinct_images: int, height: int = HEIGHT, width: int = WIDTH):
  """A training split with SYSU-MM01's counts: labels 0..394, each id in both modalities.

  Returns:
    (the split, whose images [34167, height, width, 3] uint8 cycle through `distinct`;
     distinct [distinct_images, height, width, 3] uint8).
  """
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
  block = min(16, height, width)
  coarse = rng.integers(0, 256, (distinct_images, -(-height // block), -(-width // block), 3))
  smooth = np.repeat(np.repeat(coarse, block, axis=1), block, axis=2)[:, :height, :width]
  distinct = np.clip(smooth + rng.integers(-8, 9, smooth.shape), 0, 255).astype(np.uint8)
  split = splits.SplitArrays(
      images=CyclicImages(distinct, count), labels=labels.astype(np.int32),
      person_ids=labels.astype(np.int32), cameras=np.ones(count, np.int32),
      modalities=modalities.astype(np.int32), relative_paths=np.array([""] * count))
  return split, distinct


def data_config(fields: dict, augment_on: str = "host"):
  """`config.data` of a recipe: `fields` over the defaults the samplers and recipes read."""
  import ml_collections
  base = dict(pad=PAD, random_erasing="none", vimc_cutmix_hw_swap=True, vimc_branches={},
              target_sampler="independent", redraw_source_plan=False)
  return ml_collections.ConfigDict({**base, **fields, "augment_on": augment_on})


def images_per_batch(batch: dict) -> int:
  """Views in a host-mode batch: the rows of its [B, H, W, C] arrays (`loop.count_images`)."""
  return sum(len(value) for value in batch.values() if getattr(value, "ndim", 0) == 4)


def rate(dataset, min_images: int, min_seconds: float = 0.0, warmup_batches: int = 3,
         count=images_per_batch, keep_batches: int = 0):
  """Images per wall-clock second and per CPU-second of this process while iterating.

  The first `warmup_batches` are not timed: tracing and thread-pool start-up, and the batches
  tf.data computed beside the first (timing from the first batch would count them as free).
  From there the consumer, which does nothing else, waits on the producer: the window counts
  the work of the batches it receives, give or take the batches in flight at either end.
  Timing stops once it has `min_images` images and `min_seconds` seconds.

  The CPU-second rate is the per-core cost: other work on the host moves it much less than
  the wall-clock rate, which is what this host delivered while the benchmark ran (less, not
  nothing: a shared core's caches still slow it).

  Returns:
    (images / wall second, images / CPU-second, the first `keep_batches` timed batches).
  """
  # The uint8 batches of a whole epoch take seconds: measure over repeats of it.
  iterator = dataset.repeat().as_numpy_iterator()
  for _ in range(warmup_batches):
    next(iterator)
  kept = []
  start, cpu_start, images = time.perf_counter(), time.process_time(), 0
  while images < min_images or time.perf_counter() - start < min_seconds:
    batch = next(iterator)
    images += count(batch)
    if len(kept) < keep_batches:
      kept.append(batch)
  wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
  del iterator   # stops its background threads before the next measurement
  gc.collect()
  return images / wall, images / cpu, kept


def device_rate(augmentation, batches, min_images: int):
  """The jitted `augmentation` on host batches (cycled), `device_put` included.

  Returns:
    (views / wall second, views / CPU-second of this process, compile seconds).
  """
  import jax
  step = jax.jit(augmentation)
  start = time.perf_counter()
  jax.block_until_ready(step(jax.device_put(batches[0])))
  compile_seconds = time.perf_counter() - start
  start, cpu_start, images, index = time.perf_counter(), time.process_time(), 0, 0
  while images < min_images:
    batch = batches[index % len(batches)]
    jax.block_until_ready(step(jax.device_put(batch)))
    images += augmentation.count_images(batch)
    index += 1
  wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
  return images / wall, images / cpu, compile_seconds


# ----------------------------------------------------- design choices (AGW transform, host)


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


def xla_compiled_dataset(train, seed: int):
  """AGW batches gathered from the decoded cache, augmented by the pipeline's AGW transform
  compiled with XLA (`jit_compile`), as a tf.data map calls it.

  XLA fuses the crop, flip and normalisation into one pass. Its float draws differ from the
  TF kernels' for the same seed (integer draws agree), so adopting it would change which crops
  a seed gives, deterministically.
  """
  import tensorflow as tf
  from vireid_jax.data import augment
  from vireid_jax.data import pipeline
  plan, positions = agw_epoch_positions(train, seed)
  positions = positions.reshape(2, plan.num_batches, plan.batch_size)
  seeds = tf.constant(pipeline.augmentation_seeds(seed, 0, plan.num_batches))
  compiled = tf.function(lambda images, seed: augment.agw_train_augment(images, seed, PAD),
                         jit_compile=True)

  def load(batch_index):
    images = tf.numpy_function(lambda b: train.images[positions[:, b].reshape(-1)],
                               [batch_index], tf.uint8, stateful=False)
    images = tf.ensure_shape(images, (2 * plan.batch_size, HEIGHT, WIDTH, 3))
    batch_seeds = tf.gather(seeds, batch_index)
    return {"visible": compiled(images[:plan.batch_size], batch_seeds[0]),
            "infrared": compiled(images[plan.batch_size:], batch_seeds[1])}
  return tf.data.Dataset.range(plan.num_batches).map(
      tf.autograph.experimental.do_not_convert(load), num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True).prefetch(2)


# ------------------------------------------------------------------------------------ main


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
  parser.add_argument("--images", type=int, default=1280,
                      help="images (views) timed at least per tf.data row, after the warm-up")
  parser.add_argument("--min_seconds", type=float, default=3.0,
                      help="seconds timed at least per tf.data row (the uint8 rows are fast)")
  parser.add_argument("--warmup_batches", type=int, default=3,
                      help="batches read before timing each tf.data row")
  parser.add_argument("--device_images", type=int, default=640,
                      help="views timed per device-side row (after compilation)")
  parser.add_argument("--device_batches", type=int, default=4,
                      help="shipped batches kept for the device side (cycled)")
  parser.add_argument("--distinct_images", type=int, default=256,
                      help="different random images behind the 34,167 positions")
  parser.add_argument("--recipes", type=lambda text: text.split(","), default=list(RECIPES),
                      help=f"comma-separated, of: {', '.join(RECIPES)}")
  parser.add_argument("--parts", type=lambda text: text.split(","), default=list(PARTS),
                      help="host (host mode), device (device mode, both sides), design (AGW "
                           "design choices)")
  args = parser.parse_args(argv)
  unknown = (set(args.recipes) - set(RECIPES)) | (set(args.parts) - set(PARTS))
  if unknown:
    parser.error(f"unknown recipes or parts {sorted(unknown)}; recipes: {list(RECIPES)}, "
                 f"parts: {list(PARTS)}")
  return args


def format_number(value) -> str:
  return "–" if value is None else f"{value:,.0f}"


def main(argv=None):
  args = parse_args(argv)
  started = time.perf_counter()
  import jax
  from vireid_jax.data import pipeline
  cores = len(os.sched_getaffinity(0))
  device = jax.devices()[0]
  train, distinct = sysu_sized_split(args.distinct_images)
  print(f"Training split: {SYSU_VISIBLE:,} visible + {SYSU_INFRARED:,} infrared positions of "
        f"{SYSU_IDS} identities at {HEIGHT}x{WIDTH} (SYSU-MM01's structure), backed by "
        f"{args.distinct_images} distinct random photo-like images reused cyclically. Host: "
        f"{cores} cores, load average {os.getloadavg()[0]:.1f} at the start (other work on "
        f"the host lowers the img/s figures, the img/CPU-s ones much less). The device side "
        f"runs on {device.device_kind} ({device.platform})"
        + (": the \"device\" is this host's CPU.\n" if device.platform == "cpu" else ".\n"),
        flush=True)

  print(f"{'':<44}{'img/s':>9}{'img/CPU-s':>11}{'x16 cores':>11}")
  def show(name, wall, per_cpu, note=""):
    print(f"{name:<44}{wall:9.0f}{per_cpu:11.0f}{per_cpu * TARGET_CORES:11.0f}  {note}",
          flush=True)

  results = {}   # recipe -> {column: value}
  for name in args.recipes:
    description, fields = RECIPES[name]
    result = results.setdefault(name, {"description": description})
    print(f"{name} ({description}):", flush=True)
    if "host" in args.parts:
      dataset = pipeline.train_dataset(train, data_config(fields, "host"), seed=0, epoch=0)
      result["host"], result["host_cpu"], _ = rate(
          dataset, args.images, args.min_seconds, args.warmup_batches)
      show("  host mode: tf.data computes the views", result["host"], result["host_cpu"])
    if "device" in args.parts:
      config = data_config(fields, "device")
      augmentation = pipeline.device_augmentation(train, config, seed=0)
      dataset = pipeline.train_dataset(train, config, seed=0, epoch=0)
      result["shipped"], result["shipped_cpu"], batches = rate(
          dataset, args.images, args.min_seconds, args.warmup_batches,
          count=augmentation.count_images, keep_batches=args.device_batches)
      verdict = "meets" if result["shipped_cpu"] >= HOST_CRITERION else "misses"
      show("  device mode, host: uint8 batches", result["shipped"], result["shipped_cpu"],
           f"{verdict} >= {HOST_CRITERION:,} img/CPU-s")
      result["device"], result["device_cpu"], result["compile"] = device_rate(
          augmentation, batches, args.device_images)
      show(f"  device mode, device ({device.platform}): jitted jnp", result["device"],
           result["device_cpu"], f"compile {result['compile']:.1f} s")
      del batches
      gc.collect()

  design = []
  if "design" in args.parts:
    print("Design choices on the AGW transform (host mode, 64 images a batch):", flush=True)
    for label, make in (
        ("PNG decoded per image at every step", lambda: png_decode_dataset(train, distinct, 0)),
        ("per-image map, then batch", lambda: per_image_dataset(train, 0)),
        ("XLA-compiled (`jit_compile`) TF transform", lambda: xla_compiled_dataset(train, 0))):
      wall, per_cpu, _ = rate(make(), args.images, args.min_seconds, args.warmup_batches)
      design.append((label, wall, per_cpu))
      show("  " + label, wall, per_cpu)

  elapsed = time.perf_counter() - started
  print(f"\nimg/s: wall-clock on this host; img/CPU-s: images (views) per CPU-second of this "
        f"process, all threads (per core; other load moves it much less than img/s); x16 "
        f"cores: img/CPU-s x {TARGET_CORES}, a linear extrapolation to a GPU host (tf.data "
        f"parallelises batches over cores). Device side: XLA on {device.platform.upper()}, "
        f"device_put included, compilation apart. Whole run {elapsed:.0f} s.\n")
  print("| recipe | host mode img/s | host mode img/CPU-s | device mode, host img/s | "
        f"device mode, host img/CPU-s | device side ({device.platform}) img/s | device side "
        "img/CPU-s |")
  print("|---|--:|--:|--:|--:|--:|--:|")
  for name, result in results.items():
    cells = [format_number(result.get(key)) for key in (
        "host", "host_cpu", "shipped", "shipped_cpu", "device", "device_cpu")]
    print(f"| {name} ({result['description']}) | " + " | ".join(cells) + " |")
  for label, wall, per_cpu in design:
    print(f"| AGW, {label} | {wall:,.0f} | {per_cpu:,.0f} | | | | |")

  print(f"\nCriterion: every recipe's device augmentation path >= {HOST_CRITERION:,} images "
        f"per CPU-second of host work at {HEIGHT}x{WIDTH}. Goal: {TARGET_RATE:,} img/s on a "
        f"{TARGET_CORES}-core host (one H100 training AGW), extrapolated:")
  for name, result in results.items():
    for mode, key in (("host mode", "host_cpu"), ("device mode", "shipped_cpu")):
      if key in result:
        criterion = ""
        if key == "shipped_cpu":
          criterion = ("meets the criterion; " if result[key] >= HOST_CRITERION
                       else "misses the criterion; ")
        goal = "reaches" if result[key] * TARGET_CORES >= TARGET_RATE else "falls short of"
        print(f"  {name + ', ' + mode:<32} {criterion}{goal} the goal")
  return results


if __name__ == "__main__":
  # Set here, not at import: benchmarks/gpu.py imports this module and needs its GPU. Here TF
  # stays off any GPU, and JAX's "device" is this host's CPU unless CUDA_VISIBLE_DEVICES says.
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
  main()
