"""benchmarks/gpu.sh's Python entry: the smoke run with TensorFlow blocked, its table, the
RESULTS.md block it replaces, the trace summary of `--profile`, and its input rows' batches
and views against the pipeline's device mode."""

import gzip
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPU_PY = os.path.join(REPO_ROOT, "benchmarks", "gpu.py")
RESULTS = os.path.join(REPO_ROOT, "benchmarks", "RESULTS.md")


def load_gpu_module():
  spec = importlib.util.spec_from_file_location("benchmarks_gpu_under_test", GPU_PY)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def table_rows(output):
  """{what: {column: cell}} of the last markdown table in `output`."""
  lines = output.splitlines()
  header_index = max(i for i, line in enumerate(lines) if line.startswith("| what |"))
  columns = [cell.strip() for cell in lines[header_index].strip("|").split("|")]
  rows = {}
  for line in lines[header_index + 2:]:
    if not line.startswith("|"):
      break
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    rows[cells[0]] = dict(zip(columns, cells))
  return rows


def number(cell):
  return float(cell.replace(",", "").rstrip("x"))


def test_smoke_run_without_tensorflow_prints_every_row_and_writes_nothing(tmp_path):
  results_copy = tmp_path / "RESULTS.md"
  shutil.copy(RESULTS, results_copy)
  before = results_copy.read_bytes()
  trace_dir = tmp_path / "trace"
  # `import tensorflow` raises ImportError in this process: the GPU machines have none.
  code = ("import runpy, sys; sys.modules['tensorflow'] = None; "
          f"sys.argv = [{GPU_PY!r}, '--smoke', '--profile', {str(trace_dir)!r}, "
          f"'--results', {str(results_copy)!r}]; "
          f"runpy.run_path({GPU_PY!r}, run_name='__main__')")
  # Tiny programs: compiling dominates, and XLA's optimisations cost more than they save.
  env = dict(os.environ, JAX_DISABLE_MOST_OPTIMIZATIONS="true")
  completed = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=900, env=env)
  assert completed.returncode == 0, completed.stderr[-4000:]
  rows = table_rows(completed.stdout)

  train_rows = [f"ours: jitted train step, {dtype}" for dtype in ("float32", "bfloat16")] + [
      "reference: PyTorch step, float32", "reference: PyTorch step, bfloat16 autocast"]
  evaluation_rows = ["evaluation: rank_metrics per distance matrix",
                     "evaluation: rank_metrics_from_features, all trials"]
  input_rows = [what for recipe in ("AGW", "CAJ", "MCJA", "DJANet") for what in (
      f"input: uint8 gather (host), {recipe}",
      f"input: device_put + DeviceAugmentation (device), {recipe}")]
  measured_rows = train_rows + evaluation_rows + input_rows
  expected = measured_rows + ["input: tf.data recipes (both augment_on modes)"]
  assert list(rows) == expected, list(rows)   # every row, in order
  for what in measured_rows:
    assert number(rows[what]["ms"]) > 0, rows[what]
  for what in train_rows + input_rows:
    assert number(rows[what]["images/s"]) > 0, rows[what]
  for what in train_rows[:2] + evaluation_rows:
    assert number(rows[what]["vs reference"]) > 0, rows[what]   # both sides ran
  # Every view counts: CAJ ships 2 x 32 smoke images as 3 views of 32, DJANet 2 x 96 as 4 x 96.
  assert "96 views a batch" in rows["input: uint8 gather (host), CAJ"]["setting"]
  assert "384 views a batch" in rows["input: uint8 gather (host), DJANet"]["setting"]
  assert "needs TensorFlow" in rows[expected[-1]]["notes"]
  assert "the reference's float32" in rows["ours: jitted train step, bfloat16"]["notes"]
  assert "skipped" not in completed.stdout

  traces = [os.path.join(folder, name) for folder, _, names in os.walk(trace_dir)
            for name in names if name == "perfetto_trace.json.gz"]
  assert len(traces) == 1
  assert "What the trace shows:" in completed.stdout
  assert results_copy.read_bytes() == before   # no --write_results: nothing written


def test_write_results_replaces_only_the_marked_block(tmp_path):
  gpu = load_gpu_module()
  with open(RESULTS, encoding="utf-8") as file:
    original = file.read()
  assert original.count(gpu.BEGIN_MARKER) == 1 and original.count(gpu.END_MARKER) == 1
  path = tmp_path / "RESULTS.md"
  path.write_text(original, encoding="utf-8")

  table = gpu.format_table([gpu.row("ours: jitted train step, bfloat16", "batch 64", ms=12.5,
                                    images_per_s=5120.0, tflops=310.25, versus=3.5)])
  gpu.write_results("Taken on a test device.\n\n" + table, str(path))
  first = path.read_text(encoding="utf-8")
  begin, end = first.index(gpu.BEGIN_MARKER), first.index(gpu.END_MARKER)
  assert first[:begin] == original[:original.index(gpu.BEGIN_MARKER)]
  assert first[end:] == original[original.index(gpu.END_MARKER):]
  assert "| ours: jitted train step, bfloat16 | batch 64 | 12.5 | 5,120 | 310.2 | 3.50x |  |" \
      in first
  assert "to be measured" not in first[begin:end]

  gpu.write_results("Second run.", str(path))   # replaced, not appended
  second = path.read_text(encoding="utf-8")
  assert "Second run." in second and "Taken on a test device." not in second
  assert [name for name in os.listdir(tmp_path)] == ["RESULTS.md"]   # no temporary left


def test_write_results_without_markers_names_the_file_and_leaves_it(tmp_path):
  gpu = load_gpu_module()
  path = tmp_path / "RESULTS.md"
  path.write_text("# Benchmark results\n", encoding="utf-8")
  with pytest.raises(ValueError, match="RESULTS.md has no block between"):
    gpu.write_results("table", str(path))
  assert path.read_text(encoding="utf-8") == "# Benchmark results\n"


def test_trace_summary_counts_device_kernels_by_kind(tmp_path):
  """A perfetto trace laid out as JAX writes a GPU's: device processes named "/device:..."."""
  gpu = load_gpu_module()
  events = [
      {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/host:CPU"}},
      {"ph": "M", "pid": 2, "name": "process_name", "args": {"name": "/device:GPU:0"}},
      {"ph": "M", "pid": 2, "tid": 7, "name": "thread_name", "args": {"name": "Stream #7(...)"}},
      {"ph": "M", "pid": 2, "tid": 8, "name": "thread_name", "args": {"name": "Stream #8(...)"}},
      {"ph": "M", "pid": 2, "tid": 9, "name": "thread_name", "args": {"name": "XLA Modules"}},
      {"ph": "X", "pid": 1, "tid": 1, "ts": 0, "dur": 5000, "name": "PjitFunction(step)"},
      # Spans the whole step again: a derived line, not a kernel.
      {"ph": "X", "pid": 2, "tid": 9, "ts": 0, "dur": 20000, "name": "jit_train_step"},
      # Two steps of 10 ms; kernels overlap on two streams in the first (union 6 ms, not 8).
      {"ph": "X", "pid": 2, "tid": 7, "ts": 0, "dur": 4000,
       "name": "sm90_xmma_fprop_implicit_gemm", "args": {"hlo_op": "convolution.12"}},
      {"ph": "X", "pid": 2, "tid": 8, "ts": 2000, "dur": 4000, "name": "input_reduce_fusion",
       "args": {"hlo_op": "reduce_fusion.3"}},
      {"ph": "X", "pid": 2, "tid": 7, "ts": 10000, "dur": 2000, "name": "loop_multiply_fusion"},
  ]
  folder = tmp_path / "plugins" / "profile" / "run"
  folder.mkdir(parents=True)
  with gzip.open(folder / "perfetto_trace.json.gz", "wt") as file:
    json.dump({"traceEvents": events}, file)
  lines = gpu.summarize_trace(str(tmp_path), steps=2, step_seconds=0.010)
  assert lines[0].startswith("Device busy 4.0 ms per step")
  assert "40 %" in lines[0]
  shares = {line.split(":")[0].strip(): line for line in lines[1:4]}
  assert "40 % of kernel time" in shares["convolutions"]
  assert "40 % of kernel time" in shares["reductions (BatchNorm statistics, GeM, losses)"]
  assert "20 % of kernel time" in shares[
      "other fusions (BatchNorm apply, ReLU, optimiser update)"]
  assert any("convolution.12: 2.00" in line for line in lines)


@pytest.mark.parametrize("recipe", ["AGW", "CAJ", "MCJA", "DJANet"])
def test_input_rows_augment_what_the_pipeline_ships_in_device_mode(recipe):
  """gpu.py gathers device mode's batches with NumPy (the GPU machines have no TensorFlow):
  its batches and views are those of `train_dataset` and `device_augmentation`."""
  from benchmarks import input_pipeline
  from vireid_jax.data import pipeline
  gpu = load_gpu_module()
  train, _ = input_pipeline.sysu_sized_split(4, height=16, width=8)
  _, fields = input_pipeline.RECIPES[recipe]
  config = input_pipeline.data_config(fields, "device")
  augmentation, gather, num_batches = gpu.shipped_batches(train, config, num_images=1000,
                                                          seed=5)
  expected = pipeline.device_augmentation(train, config, seed=5)
  assert augmentation == expected   # the same views, seeds and options
  views_per_batch = augmentation.count_images(gather(0))
  assert num_batches == -(-1000 // views_per_batch)
  shipped = pipeline.train_dataset(train, config, seed=5, epoch=0).take(2).as_numpy_iterator()
  for index, batch in enumerate(shipped):
    ours = gather(index)
    assert ours.keys() == batch.keys()
    for key, value in batch.items():
      np.testing.assert_array_equal(ours[key], value, err_msg=key)
