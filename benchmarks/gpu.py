"""One GPU benchmark: our AGW train step against the reference's PyTorch step, evaluation and
input, in one table.

  bash benchmarks/gpu.sh                          # the full run on one GPU (sized for < 8 min)
  bash benchmarks/gpu.sh --write_results          # ... and replace its section of RESULTS.md
  bash benchmarks/gpu.sh --profile /tmp/trace     # ... plus a jax.profiler trace of 3 steps
  bash benchmarks/gpu.sh --smoke                  # tiny sizes on any CPU: the command works

Rows, all in one process on one device, each from its existing benchmark:
  * ours: the loop's jitted AGW step (`train_step.compile_step`, ResNet-50, 288x144, batch
    64 and 128 = B/2 visible + B/2 infrared, `config.model.dtype` float32 and bfloat16) on a
    random in-memory batch; TFLOP/s from XLA's cost analysis of the compiled step.
  * reference: the AGW reference's training step in plain PyTorch on the same device and batch
    shapes: `EmbedNet` (tests/models/torch_reference.py), CE on the logits + the weighted
    regularised triplet on the pooled features (`TripletLossADP` with alpha = gamma = 1,
    square = 0, which is the WRT; tests/losses/torch_caj_reference.py, spec baseline §5.3,
    §5.5), SGD (momentum 0.9, Nesterov, weight decay 5e-4, head at 10x the backbone's rate),
    `loss.item()` every step as the reference's meters do, `cudnn.benchmark = True` as its
    train.py sets; float32 as it trains, and under `torch.autocast(bfloat16)`. Its TFLOP/s use
    our step's FLOP count (same network and batch). "vs reference" = our images/s over its
    images/s at the same batch and dtype; bfloat16 rows also give the ratio over its float32.
  * evaluation at SYSU-MM01 size (3,803 queries x 301 gallery x 10 trials, D = 2048):
    `benchmarks/evaluation.py`'s `run_size("sysu")` on the device, both its rows (ten
    `rank_metrics` calls on given distance matrices; `rank_metrics_from_features` for all
    trials) against its reference-style NumPy loop, same inputs, compilation apart.
  * input, per recipe (AGW, CAJ's 3 views, MCJA's VIMC, DJANet's 4 views at P = 24:
    `benchmarks/input_pipeline.py`'s RECIPES): the host side of `config.data.augment_on =
    "device"` (the sampler's positions gathered from a decoded uint8 cache of that file's
    SYSU-sized split, in NumPy on all host cores, as `train_dataset` ships them), then the same
    batches through `device_put` and the jitted `device_augment.DeviceAugmentation` (the jnp
    views `loop.jit_train_step` fuses into the step) on the device; images are the views the
    step sees. The tf.data side needs TensorFlow, which the GPU machines lack: its row says
    so (`benchmarks/input_pipeline.py` measures both modes where TensorFlow is installed).

Imports nothing that imports TensorFlow (tests/test_gpu_benchmark.py runs it with TensorFlow
blocked). `--write_results` replaces the block between the markers of the "One GPU benchmark"
section of benchmarks/RESULTS.md (a temporary file renamed over it); without it nothing is
written. Rows that would start after `--time_budget_s` are skipped and say so.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import gzip
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
import traceback

# JAX takes 75 % of the GPU's memory at start by default; the PyTorch rows need their share.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

import numpy as np  # noqa: E402

RESULTS_PATH = os.path.join(REPO_ROOT, "benchmarks", "RESULTS.md")
BEGIN_MARKER = "<!-- gpu.py: begin (replaced by `benchmarks/gpu.sh --write_results`) -->"
END_MARKER = "<!-- gpu.py: end -->"
COLUMNS = ("what", "setting", "ms", "images/s", "TFLOP/s", "vs reference", "notes")

# Full run (the sizes) and --smoke (seconds on a CPU; same code paths).
FULL = dict(batch_sizes=(64, 128), depth=50, width=64, non_local=True, height=288,
            image_width=144, num_classes=395, warmup_steps=3, steps=20, trials=10, dim=2048,
            eval_repeats=3, distinct_images=256, input_images=4096)
# The smoke network is a ResNet-18 without non-local blocks (the reference's EmbedNet places
# them for bottleneck ResNets only): a third of ResNet-50's compile time on a CPU.
SMOKE = dict(batch_sizes=(16,), depth=18, width=8, non_local=False, height=32, image_width=16,
             num_classes=8, warmup_steps=1, steps=2, trials=1, dim=16, eval_repeats=1,
             distinct_images=8, input_images=64)
PROFILE_STEPS = 3


def load_module(relative_path: str):
  """A module of this repository by file path (tests/ is no package; a stray `tests` package
  on the GPU image's site-packages would shadow a dotted import)."""
  path = os.path.join(REPO_ROOT, relative_path)
  name = "gpu_benchmark_" + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def row(what, setting, ms=None, images_per_s=None, tflops=None, versus=None, notes=""):
  return {"what": what, "setting": setting, "ms": ms, "images/s": images_per_s,
          "TFLOP/s": tflops, "vs reference": versus, "notes": notes}


def failed_row(what, setting, error):
  """The row of a measurement that raised: the run goes on with the others (one GPU lease)."""
  traceback.print_exc()
  message = " ".join(str(error).split())[:200].replace("|", "/")
  return row(what, setting, notes=f"failed: {type(error).__name__}: {message}")


# ------------------------------------------------------------------------------ train steps


def ours_train_step(dtype, batch_size, sizes, profile_dir=None):
  """Times our step; with `profile_dir`, then traces PROFILE_STEPS more of it.

  Returns:
    (result dict as train_step.benchmark's, the trace summary lines or None).
  """
  import jax
  from benchmarks import train_step
  built = train_step.compile_step(
      dtype, batch_size, depth=sizes["depth"], width=sizes["width"], height=sizes["height"],
      image_width=sizes["image_width"], num_classes=sizes["num_classes"],
      non_local=sizes["non_local"])
  state, seconds, metrics = train_step.time_steps(
      built["compiled"], built["state"], built["batch"], warmup_steps=sizes["warmup_steps"],
      steps=sizes["steps"])
  if not np.isfinite(float(metrics["loss"])):
    raise FloatingPointError(f"Non-finite loss in our {dtype} batch-{batch_size} step.")
  summary = None
  if profile_dir is not None:
    try:   # a profiler that fails (no CUPTI, say) must not cost the run's other rows
      start = time.perf_counter()
      with jax.profiler.trace(profile_dir, create_perfetto_trace=True):
        for _ in range(PROFILE_STEPS):
          state, metrics = built["compiled"](state, built["batch"])
        jax.block_until_ready((state, metrics))
      wall = time.perf_counter() - start
      summary = summarize_trace(profile_dir, PROFILE_STEPS, seconds)
      summary.insert(0, f"Trace of {PROFILE_STEPS} steps of our {dtype} batch-{batch_size} "
                        f"step (traced wall {wall:.2f} s) in {profile_dir}.")
    except Exception as error:  # pylint: disable=broad-except
      summary = [f"Profiling our {dtype} batch-{batch_size} step failed: "
                 f"{type(error).__name__}: {error}"]
  flops = built["flops"]
  return {"step_s": seconds, "images_per_s": batch_size / seconds,
          "tflops": flops / seconds / 1e12, "flops": flops,
          "compile_s": built["compile_s"]}, summary


def reference_train_step(dtype, batch_size, sizes):
  """Times the reference's PyTorch step (module docstring); returns seconds per step."""
  import torch
  torch_reference = load_module("tests/models/torch_reference.py")
  torch_losses = load_module("tests/losses/torch_caj_reference.py")
  torch.backends.cudnn.benchmark = True   # as the reference's train.py
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  torch.manual_seed(0)
  net = torch_reference.EmbedNet(sizes["num_classes"], depth=sizes["depth"], width=sizes["width"],
                                 non_local=sizes["non_local"]).to(device).train()
  head = [*net.bottleneck.parameters(), *net.classifier.parameters()]
  head_ids = set(map(id, head))
  backbone = [p for p in net.parameters() if id(p) not in head_ids]
  optimizer = torch.optim.SGD([{"params": backbone, "lr": 0.01},
                               {"params": list(net.bottleneck.parameters()), "lr": 0.1},
                               {"params": list(net.classifier.parameters()), "lr": 0.1}],
                              weight_decay=5e-4, momentum=0.9, nesterov=True)
  identity_loss = torch.nn.CrossEntropyLoss()
  # alpha = gamma = 1, square = 0 is AGW's TripletLoss_WRT (spec baseline §5.5).
  triplet_loss = torch_losses.TripletLossADP(alpha=1, gamma=1, square=0)
  per_modality = batch_size // 2
  generator = torch.Generator().manual_seed(0)
  shape = (per_modality, 3, sizes["height"], sizes["image_width"])
  visible = torch.randn(shape, generator=generator).to(device)
  infrared = torch.randn(shape, generator=generator).to(device)
  labels = torch.arange(per_modality // 4).repeat_interleave(4).to(device)
  labels = torch.cat([labels, labels])
  autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if dtype == "bfloat16"
              else contextlib.nullcontext())

  def step():
    with autocast:
      pooled, logits = net(visible, infrared)
      loss = identity_loss(logits, labels) + triplet_loss(pooled, labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()   # the reference reads the loss into its meters every step

  def synchronize():
    if device.type == "cuda":
      torch.cuda.synchronize()

  # cudnn.benchmark searches algorithms at each new shape: two more untimed steps on a GPU.
  for _ in range(sizes["warmup_steps"] + (2 if device.type == "cuda" else 0)):
    step()
  synchronize()
  start = time.perf_counter()
  for _ in range(sizes["steps"]):
    loss = step()
  synchronize()
  seconds = (time.perf_counter() - start) / sizes["steps"]
  if not np.isfinite(loss):
    raise FloatingPointError(f"Non-finite loss in the reference's {dtype} batch-{batch_size} "
                             "step.")
  return seconds


# --------------------------------------------------------------------------- trace summary

# Kernel name / HLO op fragments -> what the time goes to (first match wins).
KERNEL_CATEGORIES = (
    ("convolutions", ("conv", "cudnn", "xmma", "implicit_gemm", "fprop", "dgrad", "wgrad")),
    ("matrix products (non-local affinities, classifier)", ("gemm", "dot", "cublas",
                                                           "cutlass", "matmul")),
    ("reductions (BatchNorm statistics, GeM, losses)", ("reduce",)),
    ("copies and transposes", ("memcpy", "memset", "copy", "transpose")),
    ("other fusions (BatchNorm apply, ReLU, optimiser update)", ("fusion", "loop", "input")),
)


def summarize_trace(profile_dir, steps, step_seconds):
  """Device time by kind of kernel in the newest perfetto trace under `profile_dir`.

  Device events are those of the "Stream ..." threads of trace processes named "/device:..."
  (a GPU's kernels and copies); their union over the traced steps against the timed step says
  how busy the device was (the rest is waiting on the host). Categories are matched on the HLO op or kernel name, a heuristic: the
  top kernels are listed so that a reader can check it.
  """
  traces = sorted((os.path.join(folder, name) for folder, _, names in os.walk(profile_dir)
                   for name in names if name == "perfetto_trace.json.gz"),
                  key=os.path.getmtime)
  if not traces:
    return [f"No perfetto_trace.json.gz under {profile_dir}."]
  with gzip.open(traces[-1], "rt") as file:
    events = json.load(file)["traceEvents"]
  device_pids = {event["pid"] for event in events
                 if event.get("ph") == "M" and event.get("name") == "process_name"
                 and str(event.get("args", {}).get("name", "")).startswith("/device:")}
  thread_names = {(event["pid"], event.get("tid")): str(event.get("args", {}).get("name", ""))
                  for event in events
                  if event.get("ph") == "M" and event.get("name") == "thread_name"}
  # A GPU's plane holds its streams' kernels ("Stream #7(...)") beside derived lines ("XLA
  # Modules", "XLA Ops", "Steps", ...) that span the same time again: only streams count.
  streams = {key for key, name in thread_names.items()
             if key[0] in device_pids and name.startswith("Stream")}
  derived = {key for key, name in thread_names.items()
             if name.startswith(("XLA Modules", "XLA Ops", "Steps", "Framework", "Source"))}

  def on_a_stream(event):
    key = (event["pid"], event.get("tid"))
    return key in streams if streams else key not in derived

  kernels = [event for event in events
             if event.get("ph") == "X" and event.get("pid") in device_pids and event.get("dur")
             and on_a_stream(event)]
  if not kernels:
    return [f"The trace ({traces[-1]}) holds no device events (a CPU backend runs the step "
            "on host threads); read it in Perfetto or TensorBoard."]
  by_name, by_category = {}, {}
  for kernel in kernels:
    args = kernel.get("args", {})
    name = str(args.get("hlo_op") or kernel["name"])
    by_name[name] = by_name.get(name, 0.0) + kernel["dur"]
    text = (name + " " + kernel["name"]).lower()
    category = next((label for label, fragments in KERNEL_CATEGORIES
                     if any(fragment in text for fragment in fragments)), "other")
    by_category[category] = by_category.get(category, 0.0) + kernel["dur"]
  intervals = sorted((kernel["ts"], kernel["ts"] + kernel["dur"]) for kernel in kernels)
  busy, end = 0.0, -np.inf
  for start, stop in intervals:   # union of the kernels' time on the device, in microseconds
    if stop > end:
      busy += stop - max(start, end)
      end = stop
  total = sum(by_category.values())
  busy_share = busy / steps / 1e6 / step_seconds
  lines = [f"Device busy {busy / steps / 1e3:.1f} ms per step (union of its kernels) of the "
           f"{step_seconds * 1e3:.1f} ms timed per step: {100 * busy_share:.0f} %; the rest the "
           "device waits (for the host, launches or transfers)."]
  lines += [f"  {label}: {100 * micros / total:.0f} % of kernel time"
            for label, micros in sorted(by_category.items(), key=lambda item: -item[1])]
  lines.append("  top kernels (HLO op or kernel name, ms per step):")
  lines += [f"    {name[:90]}: {micros / steps / 1e3:.2f}"
            for name, micros in sorted(by_name.items(), key=lambda item: -item[1])[:12]]
  return lines


# ------------------------------------------------------------------------- evaluation, input


def evaluation_rows(sizes):
  """Our evaluation on the device against the NumPy loop at SYSU-MM01 size
  (`benchmarks/evaluation.py`'s `run_size("sysu", ...)`: 3,803 queries x 301 gallery)."""
  from benchmarks import evaluation
  result = evaluation.run_size("sysu", argparse.Namespace(
      trials=sizes["trials"], dim=sizes["dim"], repeats=sizes["eval_repeats"],
      reference_repeats=1))
  setting = f"{result['shape']} trials, D = {sizes['dim']}"
  return [
      row("evaluation: rank_metrics per distance matrix", setting, ms=1e3 * result["ours"],
          versus=result["reference"] / result["ours"],
          notes=f"reference loop {result['reference']:.2f} s; compile "
                f"{result['compile_distances']:.2f} s; max abs difference "
                f"{result['difference']:.1e}"),
      row("evaluation: rank_metrics_from_features, all trials", setting,
          ms=1e3 * result["features"],
          versus=result["reference_features"] / result["features"],
          notes=f"reference float64 matmul + loop {result['reference_features']:.2f} s; "
                f"compile {result['compile_features']:.2f} s"),
  ]


MIXED = "mixed"   # MCJA's stream of both modalities (`sampling.Stream.modality`)
# Names in `benchmarks/input_pipeline.py`'s RECIPES: their samplers and `config.data` fields.
INPUT_RECIPES = ("AGW", "CAJ", "MCJA", "DJANet")


def shipped_batches(train, data_config, num_images: int, seed: int = 0):
  """What `pipeline.train_dataset` ships with augment_on="device" (one process), gathered
  with NumPy; the streams' index keys (domain adaptation's) are left out.

  Returns:
    (the `DeviceAugmentation` of the recipe's views, gather(index) -> host batch dict of
     uint8 images, modalities and labels per stream and the seeds, the number of batches
     that hold at least `num_images` views).
  """
  from vireid_jax.data import device_augment
  from vireid_jax.data import sampling
  from vireid_jax.data import views
  streams = sampling.get_sampler(data_config.sampler).streams(
      train, data_config, seed=seed, epoch=0, target=None, epoch_inputs=None)
  augmentation = device_augment.DeviceAugmentation(
      views=views.view_plan(streams, data_config),
      options=device_augment.view_options(data_config))
  available = streams[0].indices.shape[0]
  seeds = views.augmentation_seeds(seed, 0, available, len(augmentation.views))

  def gather(index):
    batch = {}
    for stream in streams:
      positions = stream.indices[index]
      batch[device_augment.images_key(stream.name)] = stream.split.images[positions]
      batch[device_augment.modalities_key(stream.name)] = stream.split.modalities[positions]
      batch[stream.labels_key] = stream.split.labels[positions]
      if stream.modality == MIXED:
        batch["modalities"] = stream.split.modalities[positions]
    rows = len(streams[0].indices[index])
    batch[device_augment.SEEDS_KEY] = np.ascontiguousarray(
        np.broadcast_to(seeds[index], (rows, *seeds.shape[1:])))
    return batch

  views_per_batch = augmentation.count_images(gather(0))
  return augmentation, gather, min(available, -(-num_images // views_per_batch))


def input_rows(sizes):
  """Per recipe: the host gather of device mode's uint8 batches on all cores, then
  `device_put` and the jitted `DeviceAugmentation` on the device (module docstring)."""
  import jax
  from benchmarks import input_pipeline
  height, width = sizes["height"], sizes["image_width"]
  train, _ = input_pipeline.sysu_sized_split(sizes["distinct_images"], height, width)
  cores = len(os.sched_getaffinity(0))
  rows = []
  for name in INPUT_RECIPES:
    description, fields = input_pipeline.RECIPES[name]
    data_config = input_pipeline.data_config(fields, "device")
    augmentation, gather, num_batches = shipped_batches(train, data_config,
                                                        sizes["input_images"])
    with concurrent.futures.ThreadPoolExecutor(cores) as pool:
      list(pool.map(gather, range(min(cores, num_batches))))   # thread start-up
      start, cpu_start = time.perf_counter(), time.process_time()
      batches = list(pool.map(gather, range(num_batches)))
      wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    views_per_batch = augmentation.count_images(batches[0])
    images = num_batches * views_per_batch
    setting = f"{description}; {views_per_batch} views a batch, {height}x{width}"
    rows.append(row(f"input: uint8 gather (host), {name}", f"{setting}, {cores} threads",
                    ms=1e3 * wall / num_batches, images_per_s=images / wall,
                    notes=f"{images / max(cpu, 1e-9):,.0f} views per CPU-second"))

    step = jax.jit(augmentation)
    start = time.perf_counter()
    jax.block_until_ready(step(jax.device_put(batches[0])))
    compile_s = time.perf_counter() - start
    start, cpu_start = time.perf_counter(), time.process_time()
    jax.block_until_ready([step(jax.device_put(batch)) for batch in batches])
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    rows.append(row(f"input: device_put + DeviceAugmentation (device), {name}", setting,
                    ms=1e3 * wall / num_batches, images_per_s=images / wall,
                    notes=f"compile {compile_s:.1f} s; {images / max(cpu, 1e-9):,.0f} views "
                          "per host CPU-second"))
    del batches
  rows.append(row("input: tf.data recipes (both augment_on modes)", "train_dataset",
                  notes="needs TensorFlow: `python benchmarks/input_pipeline.py` where it "
                        "is installed"))
  return rows


# ------------------------------------------------------------------------------- the table


def format_cell(value, column):
  if value is None:
    return "–"
  if isinstance(value, str):
    return value
  if column == "vs reference":
    return f"{value:.2f}x"
  if column == "TFLOP/s":
    return f"{value:.1f}" if value >= 1 else f"{value:.4f}"
  return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def format_table(rows) -> str:
  lines = ["| " + " | ".join(COLUMNS) + " |",
           "|---|---|--:|--:|--:|--:|---|"]
  for entry in rows:
    lines.append("| " + " | ".join(format_cell(entry[column], column) for column in COLUMNS)
                 + " |")
  return "\n".join(lines)


def replace_section(text: str, block: str, path: str = RESULTS_PATH) -> str:
  """`text` with everything between BEGIN_MARKER and END_MARKER replaced by `block`."""
  begin, end = text.find(BEGIN_MARKER), text.find(END_MARKER)
  if begin < 0 or end < begin:
    raise ValueError(f"{path} has no block between {BEGIN_MARKER!r} and {END_MARKER!r}: put "
                     "both lines back in its 'One GPU benchmark' section, then run again.")
  return text[:begin + len(BEGIN_MARKER)] + "\n" + block.strip("\n") + "\n" + text[end:]


def write_results(block: str, path: str = RESULTS_PATH) -> None:
  """Replaces the marked block of `path`; the file is replaced whole, by a rename."""
  with open(path, encoding="utf-8") as file:
    text = replace_section(file.read(), block, path)
  folder = os.path.dirname(os.path.abspath(path))
  handle, temporary = tempfile.mkstemp(dir=folder, prefix=".RESULTS.", suffix=".tmp")
  try:
    with os.fdopen(handle, "w", encoding="utf-8") as file:
      file.write(text)
    os.chmod(temporary, os.stat(path).st_mode & 0o777)
    os.replace(temporary, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(temporary)
    raise


def parse_args(argv):
  parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
  parser.add_argument("--smoke", action="store_true",
                      help="tiny sizes (ResNet-18 width 8, 32x16, batch 16): seconds on a CPU")
  parser.add_argument("--batch_sizes", type=lambda text: [int(b) for b in text.split(",")],
                      default=None, help="images per step, comma-separated (default 64,128)")
  parser.add_argument("--dtypes", type=lambda text: text.split(","),
                      default=["float32", "bfloat16"], help="float32 and/or bfloat16")
  parser.add_argument("--steps", type=int, default=None, help="timed steps per row")
  parser.add_argument("--parts", type=lambda text: text.split(","),
                      default=["ours", "reference", "evaluation", "input"],
                      help="which rows: ours, reference, evaluation, input")
  parser.add_argument("--profile", metavar="DIR", default=None,
                      help="write a jax.profiler trace of a few steps of our step (bfloat16 "
                           "if measured, the first batch size) to DIR and summarise it")
  parser.add_argument("--write_results", action="store_true",
                      help="replace the GPU section of --results with this run's table")
  parser.add_argument("--results", default=RESULTS_PATH, help="the RESULTS.md to write")
  parser.add_argument("--time_budget_s", type=float, default=400.0,
                      help="rows that would start after this many seconds are skipped")
  args = parser.parse_args(argv)
  for dtype in args.dtypes:
    if dtype not in ("float32", "bfloat16"):
      parser.error(f"--dtypes: {dtype!r} is neither float32 nor bfloat16")
  unknown = set(args.parts) - {"ours", "reference", "evaluation", "input"}
  if unknown:
    parser.error(f"--parts: unknown {sorted(unknown)}; choose from ours, reference, "
                 "evaluation, input")
  if args.batch_sizes and any(b <= 0 or b % 8 for b in args.batch_sizes):
    parser.error("--batch_sizes: each must be a positive multiple of 8 (P x K = 4 images per "
                 "identity in each half)")
  return args


def train_step_rows(args, sizes, in_budget):
  """Ours and the reference's step for each batch size and dtype, with their ratios.

  Returns:
    (rows, the trace summary lines of `--profile` or None, the PyTorch note).
  """
  rows, profile_summary, reference_seconds = [], None, {}
  profile_target = (("bfloat16" if "bfloat16" in args.dtypes else args.dtypes[0]),
                    sizes["batch_sizes"][0])
  model_name = (f"ResNet-{sizes['depth']}" + ("" if sizes["width"] == 64 else
                                               f" width {sizes['width']}")
                + ("" if sizes["non_local"] else " without non-local"))
  torch_note = ""
  if "reference" in args.parts:
    try:
      import torch
      if args.smoke:
        # PyTorch's CPU threads spin-wait for busy cores: 40x slower on a shared 2-core host.
        torch.set_num_threads(1)
      torch_note = (f"PyTorch {torch.__version__} on "
                    f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'}"
                    # PyTorch's defaults, which the reference keeps: say what float32 means.
                    f", cudnn TF32 {'on' if torch.backends.cudnn.allow_tf32 else 'off'}, "
                    f"matmul TF32 {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}")
    except ImportError as error:
      torch_note = f"PyTorch missing ({error})"

  def report(entry):
    rows.append(entry)
    print(format_table([entry]).splitlines()[-1], flush=True)

  for batch_size in sizes["batch_sizes"]:
    setting = f"AGW {model_name}, {sizes['height']}x{sizes['image_width']}, batch {batch_size}"
    ours_flops = {}
    for dtype in args.dtypes:
      label = f"ours: jitted train step, {dtype}"
      if "ours" not in args.parts or not in_budget(label, rows):
        continue
      profile_dir = args.profile if (dtype, batch_size) == profile_target else None
      try:
        result, summary = ours_train_step(dtype, batch_size, sizes, profile_dir)
      except Exception as error:  # pylint: disable=broad-except
        report(failed_row(label, setting, error))
        continue
      profile_summary = summary or profile_summary
      ours_flops[dtype] = result["flops"]
      report(row(label, setting, ms=1e3 * result["step_s"],
                 images_per_s=result["images_per_s"], tflops=result["tflops"],
                 notes=f"compile {result['compile_s']:.0f} s; "
                       f"{result['flops'] / 1e9:,.3g} GFLOP per step (XLA)"))
    for dtype in args.dtypes:
      label = f"reference: PyTorch step, {dtype}" + (" autocast" if dtype == "bfloat16" else "")
      if "reference" not in args.parts or not in_budget(label, rows):
        continue
      if torch_note.startswith("PyTorch missing"):
        report(row(label, setting, notes=torch_note))
        continue
      try:
        seconds = reference_train_step(dtype, batch_size, sizes)
      except Exception as error:  # pylint: disable=broad-except
        report(failed_row(label, setting, error))
        continue
      finally:
        if torch.cuda.is_available():
          torch.cuda.empty_cache()   # PyTorch's cached blocks back for the next JAX step
      reference_seconds[(dtype, batch_size)] = seconds
      flops = ours_flops.get(dtype, float("nan"))
      report(row(label, setting, ms=1e3 * seconds, images_per_s=batch_size / seconds,
                 tflops=None if np.isnan(flops) else flops / seconds / 1e12, notes=torch_note))

  for entry in rows:   # ratios, now that both sides of each batch size are in
    if not entry["what"].startswith("ours:") or entry["images/s"] is None:
      continue
    dtype = entry["what"].rsplit(" ", 1)[-1]
    batch_size = int(entry["setting"].rsplit(" ", 1)[-1])
    same = reference_seconds.get((dtype, batch_size))
    if same:
      entry["vs reference"] = entry["images/s"] * same / batch_size
    fp32 = reference_seconds.get(("float32", batch_size))
    if fp32 and dtype != "float32":
      entry["notes"] += f"; {entry['images/s'] * fp32 / batch_size:.2f}x the reference's float32"
  return rows, profile_summary, torch_note


def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  args = parse_args(argv)
  started = time.perf_counter()
  sizes = dict(SMOKE if args.smoke else FULL)
  if args.batch_sizes:
    sizes["batch_sizes"] = tuple(args.batch_sizes)
  if args.steps:
    sizes["steps"] = args.steps

  import jax
  import flax
  if args.smoke:
    # Smoke runs check the code paths, not the speed: XLA's optimisations cost most of a tiny
    # program's compile time.
    jax.config.update("jax_disable_most_optimizations", True)
  device = jax.devices()[0]
  device_name = f"{jax.device_count()} x {device.device_kind} ({device.platform})"
  cores = len(os.sched_getaffinity(0))
  header = (f"{'Smoke run (tiny sizes, timings meaningless)' if args.smoke else 'Full run'} on "
            f"{device_name}; host {platform.node()} with {cores} cores; JAX {jax.__version__}, "
            f"Flax {flax.__version__}.")
  print(header, flush=True)
  skipped = []

  def in_budget(label, rows):
    if time.perf_counter() - started > args.time_budget_s:
      skipped.append(label)
      rows.append(row(label, "skipped", notes=f"over --time_budget_s={args.time_budget_s:.0f}"))
      return False
    return True

  # The short, predictable parts first; the train steps (compilation) may meet the budget.
  other_rows = []
  for part, measure in (("evaluation", evaluation_rows), ("input", input_rows)):
    if part in args.parts and in_budget(part, other_rows):
      try:
        new_rows = measure(sizes)
      except Exception as error:  # pylint: disable=broad-except
        new_rows = [failed_row(part, "", error)]
      other_rows += new_rows
      print("\n".join(format_table(new_rows).splitlines()[2:]), flush=True)
  train_rows, profile_summary, torch_note = train_step_rows(args, sizes, in_budget)

  elapsed = time.perf_counter() - started
  table = format_table(train_rows + other_rows)
  print(f"\n{header}\n\n{table}\n\nWhole run: {elapsed:.0f} s"
        + (f"; skipped over the time budget: {', '.join(skipped)}" if skipped else "") + ".")
  if profile_summary:
    print("\nWhat the trace shows:\n" + "\n".join(profile_summary))
  if args.write_results:
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = [f"Taken {date} on {device_name}, a host with {cores} cores; JAX {jax.__version__}, "
             f"Flax {flax.__version__}; {torch_note or 'no reference rows'}. Command: "
             f"`bash benchmarks/gpu.sh {' '.join(argv)}`; whole run {elapsed:.0f} s.", "", table]
    if profile_summary:
      block += ["", "Trace summary (`--profile`):", "", "```", *profile_summary, "```"]
    write_results("\n".join(block), args.results)
    print(f"Wrote the table into {args.results}.")
  return train_rows + other_rows


if __name__ == "__main__":
  sys.exit(1 if any(entry["notes"].startswith("failed:") for entry in main()) else 0)
