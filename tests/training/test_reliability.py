"""What a run survives or names: a second run on its workdir, a corrupted checkpoint, a full
disk (issue 21). The runs of the main job are the tiny experiment of `main_runs.py`."""

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from flax import struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.training.main_runs import (  # noqa: F401  (compilation_cache: autouse fixture)
    REPO_ROOT,
    compilation_cache,
    run_main,
    write_config,
)
from vireid_jax import disk
from vireid_jax.training import loop
from vireid_jax.training import orbax_checkpoints
from vireid_jax.training import workdir_lock

# A process that takes a workdir's lock and holds it until it is killed.
HOLDER = ("import sys, time\n"
          "from vireid_jax.training import workdir_lock\n"
          "workdir_lock.acquire(sys.argv[1])\n"
          "print('held', flush=True)\n"
          "time.sleep(600)\n")


def hold_in_another_process(workdir):
  process = subprocess.Popen([sys.executable, "-c", HOLDER, str(workdir)], cwd=REPO_ROOT,
                             env=dict(os.environ, PYTHONPATH=REPO_ROOT),
                             stdout=subprocess.PIPE, text=True)
  assert process.stdout.readline().strip() == "held"
  return process


def kill(process):
  process.send_signal(signal.SIGKILL)
  process.wait()


# One live run per workdir.

def test_a_second_holder_is_refused_and_a_killed_holder_leaves_no_stale_lock(tmp_path):
  holder = hold_in_another_process(tmp_path / "run")
  try:
    with pytest.raises(workdir_lock.WorkdirLockedError) as error:
      workdir_lock.acquire(str(tmp_path / "run"))
    message = str(error.value)
    assert f"The workdir {tmp_path / 'run'} is in use" in message
    assert f"process {holder.pid} on host {socket.gethostname()}" in message
  finally:
    kill(holder)
  # The kernel released the lock with the process: the file is still there, the lock is not.
  assert os.path.exists(workdir_lock.lock_path(str(tmp_path / "run")))
  descriptor = workdir_lock.acquire(str(tmp_path / "run"))
  try:
    recorded = json.loads(open(workdir_lock.lock_path(str(tmp_path / "run"))).read())
    assert recorded["pid"] == os.getpid()
  finally:
    workdir_lock.release(descriptor)


@pytest.mark.parametrize("mode, process_index, locked", [
    ("train", 0, True), ("train_and_eval", 0, True), ("eval", 0, False), ("train", 1, False)])
def test_training_on_process_0_takes_the_lock_eval_and_other_processes_do_not(
    tmp_path, monkeypatch, mode, process_index, locked):
  from configs import default
  from vireid_jax import methods
  from vireid_jax.data import layouts
  config = default.get_config()
  config.data.root = str(tmp_path / "no_dataset")
  config.data.tfds_dir = str(tmp_path / "tfds")
  monkeypatch.setattr(jax, "process_index", lambda: process_index)
  descriptor = workdir_lock.acquire(str(tmp_path / "run"))
  try:
    # Past the lock, the run stops at the missing dataset.
    expected = workdir_lock.WorkdirLockedError if locked else layouts.DatasetError
    with pytest.raises(expected):
      loop.run(config, str(tmp_path / "run"), methods.resolve(config), mode=mode)
  finally:
    workdir_lock.release(descriptor)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A tiny AGW run of 2 epochs of 3 steps (checkpoints 3 and 6), trained only."""
  folder = tmp_path_factory.mktemp("reliability")
  config_path = write_config(folder, "tiny.py", "config.train.num_epochs = 2\n"
                                                "config.eval.num_trials = 1\n")
  workdir = folder / "run"
  completed = run_main(config_path, workdir, "--mode=train")
  assert completed.returncode == 0, completed.stdout + completed.stderr
  return folder, config_path, workdir


def test_a_second_run_on_a_workdir_in_use_stops_before_any_work(trained, tmp_path):
  _, config_path, _ = trained
  workdir = tmp_path / "busy"
  holder = hold_in_another_process(workdir)
  try:
    started = time.time()
    completed = run_main(config_path, workdir, f"--config.data.tfds_dir={tmp_path / 'tfds'}")
    elapsed = time.time() - started
  finally:
    kill(holder)
  assert completed.returncode == 1, completed.stdout + completed.stderr
  assert elapsed < 30
  assert (f"error: The workdir {workdir} is in use by a running training: process "
          f"{holder.pid} on host {socket.gethostname()}") in completed.stderr
  # Nothing was built, recorded or trained.
  assert not (tmp_path / "tfds").exists()
  assert sorted(os.listdir(workdir)) == ["log.txt", workdir_lock.LOCK_FILE_NAME]


def test_a_bad_config_value_stops_the_main_job_before_any_work(trained, tmp_path):
  _, config_path, _ = trained
  completed = run_main(config_path, tmp_path / "w", "--config.data.sampler=no_such_sampler",
                       "--config.optim.base_lr=-0.1", f"--config.data.tfds_dir={tmp_path / 't'}")
  assert completed.returncode == 1
  assert "error: Config values outside what they allow" in completed.stderr
  assert "config.data.sampler='no_such_sampler': expected one of " in completed.stderr
  assert "config.optim.base_lr=-0.1: expected a number > 0" in completed.stderr
  assert not (tmp_path / "t").exists() and not (tmp_path / "w" / "config.json").exists()


# Corrupted checkpoints.

def largest_file(folder):
  files = [os.path.join(directory, name) for directory, _, names in os.walk(folder)
           for name in names if name != orbax_checkpoints.CHECKSUMS_FILE]
  return max(files, key=os.path.getsize)


def test_a_flipped_byte_names_step_and_file_and_eval_falls_back_to_the_previous_step(
    trained, tmp_path):
  """Evaluated while a training holds the workdir's lock: --mode=eval does not take it."""
  _, config_path, original = trained
  workdir = tmp_path / "copy"
  shutil.copytree(original, workdir)
  corrupted = largest_file(workdir / "checkpoints" / "6")
  data = bytearray(open(corrupted, "rb").read())
  data[len(data) // 2] ^= 0x01
  open(corrupted, "wb").write(bytes(data))
  holder = hold_in_another_process(workdir)
  try:
    refused = run_main(config_path, workdir, "--mode=eval")
    fallback = f"--config.eval.checkpoint={workdir / 'checkpoints' / '3'}"
    completed = run_main(config_path, workdir, "--mode=eval", fallback)
  finally:
    kill(holder)
  assert refused.returncode == 1, refused.stdout + refused.stderr
  assert (f"error: The checkpoint of step 6 in {workdir / 'checkpoints'} is corrupt: the file "
          f"{corrupted} has other bytes than when it was saved") in refused.stderr
  assert fallback in refused.stderr
  assert completed.returncode == 0, completed.stdout + completed.stderr
  assert json.loads((workdir / "results.json").read_text())["step"] == 3


@struct.dataclass
class State:
  step: jax.Array
  weights: jax.Array


def state_at(step):
  return State(step=jnp.int32(step), weights=jnp.arange(4096, dtype=jnp.float32) * step)


@pytest.fixture
def two_steps(tmp_path):
  """A checkpoints folder with steps 1 and 2 saved and committed."""
  checkpointer = orbax_checkpoints.Checkpointer(str(tmp_path / "checkpoints"))
  for step in (1, 2):
    checkpointer.save(state_at(step))
  checkpointer.wait()
  checkpointer.close()
  return tmp_path / "checkpoints"


def restore(directory, step=None):
  checkpointer = orbax_checkpoints.Checkpointer(str(directory), read_only=True)
  try:
    return checkpointer.restore(state_at(0), step)
  finally:
    checkpointer.close()


def test_a_committed_step_records_its_files_and_restores_verified(two_steps):
  manifest = json.loads((two_steps / "2" / orbax_checkpoints.CHECKSUMS_FILE).read_text())
  assert os.path.relpath(largest_file(two_steps / "2"), two_steps / "2") in manifest["files"]
  restored = restore(two_steps)
  assert int(restored.step) == 2
  np.testing.assert_array_equal(restored.weights, state_at(2).weights)


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_truncated_or_missing_file_names_step_and_file(two_steps, damage):
  damaged = largest_file(two_steps / "2")
  if damage == "truncate":
    size = os.path.getsize(damaged)
    os.truncate(damaged, size // 2)
    expected = f"the file {damaged} has {size // 2} bytes, {size} when it was saved (truncated)"
  else:
    os.remove(damaged)
    expected = f"the file {damaged} is missing"
  with pytest.raises(orbax_checkpoints.CheckpointCorruptError) as error:
    restore(two_steps)
  assert f"The checkpoint of step 2 in {two_steps} is corrupt: {expected}" in str(error.value)
  assert f"--config.eval.checkpoint={two_steps / '1'}" in str(error.value)
  # The previous step is intact, and restores.
  np.testing.assert_array_equal(restore(two_steps, 1).weights, state_at(1).weights)


def test_moving_a_corrupt_step_out_resumes_from_the_previous_one(two_steps, tmp_path):
  os.truncate(largest_file(two_steps / "2"), 10)
  shutil.move(two_steps / "2", tmp_path / "corrupt-2")
  assert int(restore(two_steps).step) == 1


# Full disks.

def test_a_full_disk_during_a_checkpoint_save_names_the_path_and_keeps_the_previous(
    two_steps, monkeypatch):
  def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")
  monkeypatch.setattr(ocp.CheckpointManager, "save", no_space)
  checkpointer = orbax_checkpoints.Checkpointer(str(two_steps))
  try:
    with pytest.raises(disk.DiskFullError) as error:
      checkpointer.save(state_at(3))
  finally:
    checkpointer.close()
  message = str(error.value)
  assert message.startswith(f"The disk is full: writing the checkpoint of step 3 to "
                            f"{two_steps / '3'} failed")
  assert f"The committed checkpoints in {two_steps} (steps 1, 2) are intact" in message
  assert error.value.errno == errno.ENOSPC and isinstance(error.value, OSError)
  monkeypatch.undo()
  np.testing.assert_array_equal(restore(two_steps).weights, state_at(2).weights)


def test_a_full_disk_reported_by_the_async_writer_is_named_too(two_steps, monkeypatch):
  # TensorStore's failures reach orbax's wait as other exception types, with the C text.
  def no_space(self):
    raise ValueError("Error writing local file \"/x/d/abc\": [OS error 28: No space left on "
                     "device]")
  checkpointer = orbax_checkpoints.Checkpointer(str(two_steps))
  try:
    checkpointer.save(state_at(3))
    monkeypatch.setattr(ocp.CheckpointManager, "wait_until_finished", no_space)
    with pytest.raises(disk.DiskFullError) as error:
      checkpointer.wait()
  finally:
    monkeypatch.undo()
    checkpointer.close()
  assert str(error.value).startswith(f"The disk is full: writing the checkpoint of step 3 to "
                                     f"{two_steps / '3'} failed (ValueError: Error writing")
  assert f"The committed checkpoints in {two_steps} (steps 1, 2) are intact" in str(error.value)
  # Another failure is not called a full disk.
  with pytest.raises(KeyError):
    with disk.reporting_full_disk("/x", "y"):
      raise KeyError("z")


def test_a_full_disk_while_writing_results_keeps_the_previous_file(tmp_path, monkeypatch):
  path = loop.write_results(str(tmp_path), {"step": 3})
  def no_space(descriptor):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  monkeypatch.setattr(os, "fsync", no_space)
  with pytest.raises(disk.DiskFullError) as error:
    loop.write_results(str(tmp_path), {"step": 6})
  monkeypatch.undo()
  assert str(error.value).startswith(f"The disk is full: writing the results to {path} failed")
  assert "The previous results.json, if any, is intact" in str(error.value)
  assert json.loads(open(path).read()) == {"step": 3}
  assert os.listdir(tmp_path) == ["results.json"]   # no temporary file left


def test_a_full_disk_while_building_tfrecords_or_generating_data_keeps_what_was_there(
    tmp_path, monkeypatch, capsys):
  from tensorflow_datasets.core import file_adapters
  from vireid_jax.data import datasets
  from vireid_jax.data import files
  from vireid_jax.data import synthetic
  root = tmp_path / "raw"
  tiny = dict(seed=3, num_train_ids=4, num_val_ids=1, num_test_ids=2, images_per_camera=(1, 1),
              image_height=32, image_width=16)
  written = []
  def write_until_full(image, path, image_format):
    if len(written) == 5:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    written.append(path)
  monkeypatch.setattr(files, "write_image", write_until_full)
  with pytest.raises(disk.DiskFullError, match=f"The disk is full: writing a dataset folder to "
                                               f"{root} failed"):
    synthetic.generate_sysu(root, **tiny)
  monkeypatch.undo()
  assert os.listdir(tmp_path) == []   # neither the folder nor its partial copy
  synthetic.generate_sysu(root, **tiny)

  def data_config(height, width):
    return ml_collections.ConfigDict(dict(
        dataset="sysu", root=str(root), tfds_dir=str(tmp_path / "tfds"), synthetic={},
        image_height=height, image_width=width))
  train, _ = datasets.load_dataset(data_config(32, 16))
  def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  monkeypatch.setattr(file_adapters.TfRecordFileAdapter, "write_examples", no_space)
  build_folder = tmp_path / "tfds" / "sysu_mm01" / "16x8" / "1.0.0"
  with pytest.raises(disk.DiskFullError) as error:
    datasets.load_dataset(data_config(16, 8))
  monkeypatch.undo()
  assert str(error.value).startswith(f"The disk is full: writing the TFRecords of {root} to "
                                     f"{build_folder} failed")
  assert not build_folder.exists()
  capsys.readouterr()
  # The earlier build is used as it is; the failed one is built on the next start.
  again, _ = datasets.load_dataset(data_config(32, 16))
  np.testing.assert_array_equal(again.images, train.images)
  assert "Writing the TFRecords" not in capsys.readouterr().out
  small, _ = datasets.load_dataset(data_config(16, 8))
  assert small.images.shape[1:] == (16, 8, 3)
