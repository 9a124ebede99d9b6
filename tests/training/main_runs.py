"""The main job as a subprocess, for the end-to-end tests: a tiny synthetic experiment, the
command line (each run a process of its own, forked from a launcher that has done the imports
once per test module), a shared compilation cache, and readers of what a run leaves in its
workdir.

Not collected by pytest (no `test_` prefix); the test modules import what they use, the
`compilation_cache` fixture included (it is autouse within each importing module).
"""

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The tiny synthetic dataset in SYSU-MM01's layout every end-to-end test trains on, as the body
# lines of a `get_config()`: `tiny_data(folder)` fills in where it is generated. The ranking
# pictures show one query and two gallery images: drawing the default 8 x 11 grid took a third
# of a tiny run's time.
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
config.eval.ranking_queries = 1
config.eval.ranking_top_k = 2
"""


# DAN (configs/dan.py:synthetic) on the tiny data: the source is the tiny SYSU-MM01-layout data,
# the target the same data moved into the "lighting" domain (an empty target root and TFRecords
# folder: the source's), which evaluation then scores.
DAN_ON_TINY_DATA = """
config.data.dataset = "sysu"
config.data.target.dataset = "sysu"
config.data.target.root = ""
config.data.target.tfds_dir = ""
config.data.target.synthetic = config.data.synthetic
config.data.target.domain = "lighting"
config.dan.discriminator_hidden = 32
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
  yield
  _Launcher.stop()


def run_main(config_path, workdir, *extra, background=False, devices=1, cwd=REPO_ROOT,
             fresh_interpreter=False, extra_env=None):
  """`python -m vireid_jax.main --config=... --workdir=... *extra` in a process of its own.

  The process is forked from a launcher that has imported the main job's libraries (JAX,
  TensorFlow, PyTorch, the package) without starting a JAX backend: a run then costs its own
  work, not ten seconds of imports. Everything else is the command's: `vireid_jax.main` runs
  as `__main__` with this argv, in `cwd`, with this environment (`XLA_FLAGS` included) and its
  own stdout and stderr, and exits with the command's status. `fresh_interpreter=True` starts
  a new interpreter instead (for what happens at import time: the console's first lines).
  `extra_env` adds variables to the run's environment only (e.g. `VIREID_FAILPOINTS`).
  Returns a `subprocess.CompletedProcess`, or with `background=True` a Popen-like handle
  (stdout and stderr merged).
  """
  argv = [f"--config={config_path}", f"--workdir={workdir}", *extra]
  # Compiling dominates these tiny runs: XLA's optimisations cost more than they save, and the
  # runs share a persistent compilation cache (the same programs recur from run to run).
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
             PYTHONPATH=os.pathsep.join([REPO_ROOT, os.environ.get("PYTHONPATH", "")]),
             JAX_DISABLE_MOST_OPTIMIZATIONS="true",
             JAX_COMPILATION_CACHE_DIR=COMPILATION_CACHE["directory"],
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  run_env = dict(extra_env or {})
  if devices > 1:
    run_env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  launcher = None if fresh_interpreter else _Launcher.get(env)
  if launcher is None or not launcher.usable:
    command = [sys.executable, "-m", "vireid_jax.main", *argv]
    if background:
      return subprocess.Popen(command, cwd=cwd, env=dict(env, **run_env),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, cwd=cwd, env=dict(env, **run_env), capture_output=True,
                          text=True, timeout=600)
  process = launcher.start(argv, str(cwd), run_env, merge_output=background)
  if background:
    return process
  try:
    stdout, stderr = process.communicate(timeout=600)
  except subprocess.TimeoutExpired:
    process.kill()
    process.communicate()
    raise
  return subprocess.CompletedProcess(["vireid_jax.main", *argv], process.returncode, stdout,
                                     stderr)


# The launcher: imports what `vireid_jax.main` imports (a failed import is left to the run,
# which then fails as a new interpreter would), checks that no JAX backend started (each run's
# XLA_FLAGS must still apply), then forks one child per request read from stdin. The child
# takes the run's directory, environment and output files and runs `vireid_jax.main` as
# `__main__`; the launcher reports "pid <pid>" and, once the child is gone, "status <code>"
# (negative: the signal that ended it, as subprocess reports it). Should an import start a
# backend, it answers "ready no" instead of "ready yes" and the runs start new interpreters.
_LAUNCHER = textwrap.dedent("""
    import atexit, importlib, json, os, runpy, signal, sys, threading, traceback

    replies = os.fdopen(os.dup(1), "w")   # what the imports print goes to the log
    os.dup2(2, 1)
    for name in ("jax", "absl.app", "absl.flags", "absl.logging", "ml_collections.config_flags",
                 "tensorflow", "tensorflow_datasets", "torch", "orbax.checkpoint",
                 "matplotlib.figure", "vireid_jax.checkpoints", "vireid_jax.inference",
                 "vireid_jax.methods", "vireid_jax.evaluation", "vireid_jax.data.datasets",
                 "vireid_jax.data.layouts", "vireid_jax.data.pipeline",
                 "vireid_jax.data.synthetic", "vireid_jax.training.loop",
                 "vireid_jax.training.orbax_checkpoints", "vireid_jax.training.workdir_config"):
      try:
        importlib.import_module(name)
      except Exception:   # the run imports it again and fails there, as it would anyway
        pass
    try:
      from vireid_jax import methods
      for name in methods.available():
        try:
          importlib.import_module(f"vireid_jax.methods.{name}")
        except Exception:
          pass
    except Exception:
      pass
    from jax._src import xla_bridge
    if xla_bridge._backends:   # an import started one: each run needs a new interpreter
      replies.write("ready no\\n")
      replies.flush()
      sys.exit(0)
    replies.write("ready yes\\n")
    replies.flush()
    devnull = os.open(os.devnull, os.O_RDONLY)
    for line in sys.stdin:
      request = json.loads(line)
      sys.stdout.flush()
      sys.stderr.flush()
      pid = os.fork()
      if pid == 0:
        code = 1
        try:
          os.close(replies.fileno())
          os.dup2(devnull, 0)
          flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
          out = os.open(request["stdout"], flags)
          err = out if request["stderr"] == request["stdout"] else os.open(request["stderr"],
                                                                             flags)
          os.dup2(out, 1)
          os.dup2(err, 2)
          os.chdir(request["cwd"])
          os.environ.update(request["env"])
          signal.signal(signal.SIGINT, signal.default_int_handler)
          sys.path[0] = request["cwd"]
          sys.argv = ["vireid_jax.main", *request["argv"]]
          try:
            runpy.run_module("vireid_jax.main", run_name="__main__", alter_sys=True)
            code = 0
          except SystemExit as exit:
            if exit.code is None or isinstance(exit.code, int):
              code = exit.code or 0
            else:
              print(exit.code, file=sys.stderr)
          except BaseException:
            traceback.print_exc()
          # What the interpreter does on the way out: join threads, run atexit functions.
          threading._shutdown()
          atexit._run_exitfuncs()
        finally:
          try:
            sys.stdout.flush()
            sys.stderr.flush()
          finally:
            os._exit(code)
      replies.write(f"pid {pid}\\n")
      replies.flush()
      _, status = os.waitpid(pid, 0)
      code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
      replies.write(f"status {code}\\n")
      replies.flush()
    """)


class _Launcher:
  """The launcher process of this test module (one per environment: the compilation cache)."""

  _current = None

  def __init__(self, env):
    self.key = env["JAX_COMPILATION_CACHE_DIR"]
    self._folder = tempfile.mkdtemp(prefix="main_runs_")
    self._log = open(os.path.join(self._folder, "launcher.log"), "w+", encoding="utf-8")
    self._process = subprocess.Popen([sys.executable, "-c", _LAUNCHER], cwd=REPO_ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, text=True)
    self._buffer = b""
    self._runs = 0
    self._active = None
    try:
      self.usable = self.reply("ready", timeout=600) == "yes"
    except RuntimeError:   # it could not even import JAX: new interpreters report why
      self.usable = False

  @classmethod
  def get(cls, env):
    """The launcher for `env` (its compilation cache), started on first use."""
    current = cls._current
    if (current is None or current.key != env["JAX_COMPILATION_CACHE_DIR"]
        or current._process.poll() is not None):
      cls.stop()
      cls._current = cls(env)
    return cls._current

  @classmethod
  def stop(cls):
    launcher, cls._current = cls._current, None
    if launcher is not None:
      launcher._process.stdin.close()
      try:
        launcher._process.wait(timeout=60)
      except subprocess.TimeoutExpired:
        launcher._process.kill()
        launcher._process.wait()
      launcher._log.close()
      shutil.rmtree(launcher._folder, ignore_errors=True)

  def start(self, argv, cwd, env, merge_output):
    if self._active is not None and self._active.returncode is None:
      self._active.kill()   # a run a failed test left behind
      self._active.wait()
    self._runs += 1
    stdout = os.path.join(self._folder, f"run{self._runs}.out")
    stderr = stdout if merge_output else os.path.join(self._folder, f"run{self._runs}.err")
    request = dict(argv=list(argv), cwd=cwd, env=env, stdout=stdout, stderr=stderr)
    self._process.stdin.write(json.dumps(request) + "\n")
    self._process.stdin.flush()
    pid = int(self.reply("pid", timeout=120))
    self._active = _LaunchedRun(self, pid, stdout, None if merge_output else stderr)
    return self._active

  def reply(self, kind, timeout):
    """The launcher's next reply of `kind` ("pid" or "status"); None after `timeout` s."""
    deadline = time.time() + timeout
    fd = self._process.stdout.fileno()
    while b"\n" not in self._buffer:
      if not select.select([fd], [], [], max(deadline - time.time(), 0))[0]:
        return None
      chunk = os.read(fd, 4096)
      if not chunk:
        self._log.seek(0)
        raise RuntimeError("the main_runs launcher stopped:\n" + self._log.read()[-3000:])
      self._buffer += chunk
    line, self._buffer = self._buffer.split(b"\n", 1)
    name, value = line.decode().split(" ", 1)
    assert name == kind, (name, kind)
    return value


class _LaunchedRun:
  """A run forked by the launcher, with the parts of `subprocess.Popen` the tests use."""

  def __init__(self, launcher, pid, stdout, stderr):
    self._launcher = launcher
    self.pid = pid
    self.returncode = None
    self._stdout, self._stderr = stdout, stderr

  def poll(self):
    return self.wait(timeout=0, check=False)

  def wait(self, timeout=None, check=True):
    if self.returncode is None:
      status = self._launcher.reply("status", 1e9 if timeout is None else timeout)
      if status is None:
        if check:
          raise subprocess.TimeoutExpired("vireid_jax.main", timeout)
        return None
      self.returncode = int(status)
    return self.returncode

  def send_signal(self, sig):
    if self.returncode is None:
      os.kill(self.pid, sig)

  def kill(self):
    self.send_signal(signal.SIGKILL)

  def communicate(self, timeout=None):
    self.wait(timeout)
    read = lambda path: open(path, encoding="utf-8", errors="replace").read()
    return read(self._stdout), None if self._stderr is None else read(self._stderr)


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
