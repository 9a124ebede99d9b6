"""The main job as a subprocess, for the end-to-end tests: a tiny synthetic experiment, the
command line, a shared compilation cache, and readers of what a run leaves in its workdir.

Not collected by pytest (no `test_` prefix); the test modules import what they use, the
`compilation_cache` fixture included (it is autouse within each importing module).
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The tiny synthetic dataset in SYSU-MM01's layout every end-to-end test trains on, as the body
# lines of a `get_config()`: `tiny_data(folder)` fills in where it is generated.
TINY_DATA = """
config.data.root = {root!r}
config.data.tfds_dir = {tfds_dir!r}
config.data.synthetic = dict(seed=1, num_train_ids=8, num_val_ids=2, num_test_ids=4,
                             images_per_camera=(1, 2), image_height=48, image_width=24)
config.data.image_height = 48
config.data.image_width = 24
config.data.eval_batch_size = 16
config.model.width = 8
config.eval.num_trials = 2
"""


def tiny_data(folder) -> str:
  """The `TINY_DATA` lines for data generated under `folder` (raw/ and tfds/)."""
  return TINY_DATA.format(root=str(folder / "raw"), tfds_dir=str(folder / "tfds"))


def method_config(folder, name, module, dataset, body):
  """A config file `folder/name`: `module.get_config(dataset)` on the tiny data, then `body`."""
  path = folder / name
  lines = tiny_data(folder) + textwrap.dedent(body)
  path.write_text(f"from configs import {module}\nimport ml_collections\n\n\n"
                  f"def get_config():\n  config = {module}.get_config({dataset!r})\n"
                  + textwrap.indent(lines.strip("\n"), "  ") + "\n  return config\n")
  return path


# A tiny but complete AGW experiment (configs/synthetic.py): a narrow ResNet-18, three short
# epochs, two evaluation trials; `extra` adds lines (another method, its options).
TINY_AGW = """
config.data.ids_per_batch = 4
config.data.images_per_id = 2
config.train.num_epochs = 3
config.train.steps_per_epoch = 3
config.train.log_every_steps = 1
config.optim.warmup_epochs = 1
config.optim.milestones = (2,)
"""


def write_config(folder, name, extra=""):
  """The tiny AGW experiment (plus `extra`) as the config file `folder/name`."""
  path = folder / name
  lines = tiny_data(folder) + TINY_AGW + textwrap.dedent(extra)
  path.write_text("from configs import synthetic\nimport ml_collections\n\n\n"
                  "def get_config():\n  config = synthetic.get_config()\n"
                  + textwrap.indent(lines.strip("\n"), "  ") + "\n  return config\n")
  return path


COMPILATION_CACHE = {"directory": ""}


@pytest.fixture(autouse=True, scope="module")
def compilation_cache(tmp_path_factory):
  COMPILATION_CACHE["directory"] = str(tmp_path_factory.mktemp("xla_cache"))


def run_main(config_path, workdir, *extra, background=False, devices=1, cwd=REPO_ROOT):
  command = [sys.executable, "-m", "vireid_jax.main", f"--config={config_path}",
             f"--workdir={workdir}", *extra]
  # Compiling dominates these tiny runs: XLA's optimisations cost more than they save, and the
  # runs share a persistent compilation cache (the same programs recur from run to run).
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
             PYTHONPATH=os.pathsep.join([REPO_ROOT, os.environ.get("PYTHONPATH", "")]),
             JAX_DISABLE_MOST_OPTIMIZATIONS="true",
             JAX_COMPILATION_CACHE_DIR=COMPILATION_CACHE["directory"],
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  if devices > 1:
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  if background:
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
  return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                        timeout=600)


def final_arrays(workdir, step=9):
  """The arrays of one checkpoint as a flat {path: NumPy array}, placed on one device whatever
  mesh wrote them (the target is built from the checkpoint's own metadata)."""
  import jax
  import orbax.checkpoint as ocp
  path = os.path.abspath(workdir / "checkpoints" / str(step) / "default")
  checkpointer = ocp.StandardCheckpointer()
  metadata = checkpointer.metadata(path).item_metadata
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype,
                                                          sharding=device),
                        metadata.tree if hasattr(metadata, "tree") else metadata)
  restored = checkpointer.restore(path, target)
  return {jax.tree_util.keystr(path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(restored)}


def kill_mid_epoch_and_resume(config_path, workdir, *extra, kill_after_step=4):
  """Starts a run, SIGKILLs it once step `kill_after_step` (4: the middle of the second epoch)
  is saved, and runs it again to the end in the same workdir."""
  every_step = "--config.train.checkpoint_every_steps=1"
  process = run_main(config_path, workdir, every_step, *extra, background=True)
  mid_epoch_checkpoint = workdir / "checkpoints" / str(kill_after_step)
  deadline = time.time() + 300
  while (not mid_epoch_checkpoint.exists() and process.poll() is None
         and time.time() < deadline):
    time.sleep(0.02)
  process.send_signal(signal.SIGKILL)
  output, _ = process.communicate()
  assert process.returncode == -signal.SIGKILL, output
  assert not (workdir / "results.json").exists()
  steps_left = sorted(int(name) for name in os.listdir(workdir / "checkpoints")
                      if name.isdigit())
  assert kill_after_step <= max(steps_left) < 9
  resumed = run_main(config_path, workdir, every_step, *extra)
  assert resumed.returncode == 0, resumed.stdout + resumed.stderr
  return resumed


def assert_same_run(uninterrupted, resumed, min_arrays=1):
  """Same results.json and byte-identical arrays in the final checkpoint."""
  assert json.loads((resumed / "results.json").read_text()) == json.loads(
      (uninterrupted / "results.json").read_text())
  expected, actual = final_arrays(uninterrupted), final_arrays(resumed)
  assert expected.keys() == actual.keys() and len(expected) >= min_arrays
  for name, value in expected.items():
    assert value.dtype == actual[name].dtype
    assert value.tobytes() == actual[name].tobytes(), name


def tensorboard_scalars(folder):
  """{tag: [(step, value), ...]} of every event file in `folder` (read with TensorFlow)."""
  import tensorflow as tf
  scalars = {}
  for name in sorted(os.listdir(folder)):
    for event in tf.compat.v1.train.summary_iterator(str(folder / name)):
      for value in event.summary.value:
        scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
  return scalars


def console_lines(completed):
  """What a person sees, without the progress bar's redrawn line."""
  lines = (completed.stdout + completed.stderr).replace("\r", "\n").splitlines()
  return [line for line in lines if line.strip() and not line.startswith("train:")]
