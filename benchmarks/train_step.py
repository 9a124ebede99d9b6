"""Throughput of the AGW train step: images/s and achieved TFLOP/s, float32 vs bfloat16.

  python benchmarks/train_step.py                       # ResNet-50, 288x144, batch 64 and 128
  python benchmarks/train_step.py --batch_sizes=64,256 --dtypes=bfloat16

The step is the one the training loop runs (`loop.jit_train_step`: one jit over a mesh of all
local devices, state replicated, batch split by rows) on in-memory random batches, so the
figures are the model's alone, with no input pipeline. A batch of B images is B/2 visible +
B/2 infrared (AGW's P x K per modality). FLOPs come from XLA's cost analysis of the compiled
step. Needs no TensorFlow (the GPU machines have none).
"""

from __future__ import annotations

import os
import sys
import time

from absl import app
from absl import flags
import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import default  # noqa: E402
from vireid_jax.methods import agw  # noqa: E402
from vireid_jax.methods.base import DataInfo  # noqa: E402
from vireid_jax.training import loop  # noqa: E402
from vireid_jax.training import parallel  # noqa: E402

flags.DEFINE_list("batch_sizes", ["64", "128"], "Images per step (half per modality).")
flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "Compute dtypes.")
flags.DEFINE_integer("depth", 50, "ResNet depth.")
flags.DEFINE_integer("width", 64, "ResNet base width (64 = torchvision).")
flags.DEFINE_integer("height", 288, "Image height.")
flags.DEFINE_integer("image_width", 144, "Image width.")
flags.DEFINE_integer("num_classes", 395, "Identities (395 = SYSU-MM01 train).")
flags.DEFINE_integer("warmup_steps", 3, "Untimed steps after compiling.")
flags.DEFINE_integer("steps", 20, "Timed steps.")
FLAGS = flags.FLAGS


def compile_step(dtype: str, batch_size: int, *, depth: int = 50, width: int = 64,
                 height: int = 288, image_width: int = 144, num_classes: int = 395,
                 non_local: bool = True) -> dict:
  """The loop's jitted AGW step, compiled for one random in-memory batch.

  Returns a dict: "compiled" (state, batch) -> (state, metrics), "state", "batch" (B/2 visible
  + B/2 infrared [B/2, H, W, 3] and their labels, on the mesh), "compile_s" and "flops" (per
  step, XLA's cost analysis; NaN where the backend gives none).
  """
  config = default.get_config()
  config.model.depth = depth
  config.model.width = width
  config.model.non_local = non_local
  config.model.dtype = dtype
  config.model.pretrained = "none"   # timing needs no ImageNet weights
  mesh = parallel.make_mesh(jax.local_devices())
  per_modality = batch_size // 2
  rng = np.random.default_rng(0)
  shape = (per_modality, height, image_width, 3)
  labels = np.repeat(np.arange(per_modality // 4), 4).astype(np.int32)
  batch = parallel.global_batch({
      "visible": rng.normal(size=shape).astype(np.float32),
      "infrared": rng.normal(size=shape).astype(np.float32),
      "visible_labels": labels,
      "infrared_labels": labels,
  }, mesh)
  method = agw.AGWMethod(config)
  data_info = DataInfo(num_classes=num_classes, num_visible=batch_size,
                       num_infrared=batch_size, steps_per_epoch=1000)
  state = parallel.replicate(method.create_state(data_info), mesh)
  step = loop.jit_train_step(method, mesh)
  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_seconds = time.perf_counter() - start
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
  return {"compiled": compiled, "state": state, "batch": batch,
          "compile_s": compile_seconds, "flops": flops}


def time_steps(compiled, state, batch, *, warmup_steps: int, steps: int):
  """Runs `warmup_steps` untimed, then `steps` timed steps (wall clock, synchronised).

  Returns:
    (the state after them, seconds per timed step, the last step's metrics on the host).
  """
  metrics = None
  for _ in range(warmup_steps):
    state, metrics = compiled(state, batch)
  jax.block_until_ready((state, metrics))
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = compiled(state, batch)
  jax.block_until_ready((state, metrics))
  seconds = (time.perf_counter() - start) / steps
  return state, seconds, jax.device_get(metrics)


def benchmark(dtype: str, batch_size: int, *, warmup_steps: int = 3, steps: int = 20,
              **model_sizes) -> dict:
  """Compiles and times one step; `model_sizes` as `compile_step`'s keywords."""
  built = compile_step(dtype, batch_size, **model_sizes)
  _, seconds, metrics = time_steps(built["compiled"], built["state"], built["batch"],
                                   warmup_steps=warmup_steps, steps=steps)
  flops = built["flops"]
  return {"dtype": dtype, "batch": batch_size, "step_ms": 1e3 * seconds,
          "images_per_s": batch_size / seconds, "tflops": flops / seconds / 1e12,
          "gflop_per_step": flops / 1e9, "compile_s": built["compile_s"],
          "loss": float(metrics["loss"])}


def main(argv):
  del argv
  devices = jax.local_devices()
  print(f"AGW ResNet-{FLAGS.depth} (width {FLAGS.width}) train step at "
        f"{FLAGS.height}x{FLAGS.image_width} on {len(devices)} x {devices[0].device_kind} "
        f"({devices[0].platform}); {FLAGS.steps} timed steps after {FLAGS.warmup_steps} "
        "warm-up steps.")
  header = (f"| {'dtype':8} | {'batch':>5} | {'ms/step':>8} | {'images/s':>9} | "
            f"{'TFLOP/s':>8} | {'GFLOP/step':>10} | {'compile s':>9} |")
  print(header)
  print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
  for batch_size in map(int, FLAGS.batch_sizes):
    for dtype in FLAGS.dtypes:
      result = benchmark(dtype, batch_size, warmup_steps=FLAGS.warmup_steps,
                         steps=FLAGS.steps, depth=FLAGS.depth, width=FLAGS.width,
                         height=FLAGS.height, image_width=FLAGS.image_width,
                         num_classes=FLAGS.num_classes)
      if not np.isfinite(result["loss"]):
        raise FloatingPointError(f"Non-finite loss in the {dtype} batch-{batch_size} run.")
      print(f"| {dtype:8} | {batch_size:5d} | {result['step_ms']:8.1f} | "
            f"{result['images_per_s']:9.1f} | {result['tflops']:8.3f} | "
            f"{result['gflop_per_step']:10.1f} | {result['compile_s']:9.1f} |", flush=True)


if __name__ == "__main__":
  app.run(main)
