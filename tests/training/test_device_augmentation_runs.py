"""The main job with `config.data.augment_on = "device"`: views computed in the jitted step.

The host ships the sampled uint8 images and each view's seed (`pipeline.train_dataset`), the
train step computes the views (`device_augment.DeviceAugmentation`, fused by
`loop.jit_train_step`). What must hold: the run trains and records where it augmented; a run
killed mid-epoch resumes to a byte-identical checkpoint (the views are keyed by seed, epoch and
batch, not by how many steps the process has run); and the mode is not silently ignored. That
eight devices compute the same views as one is tests/data/test_device_pipeline.py's.
"""

import json

import numpy as np
import pytest

from tests.training.main_runs import (  # noqa: F401  (compilation_cache: autouse fixture)
    assert_same_run,
    compilation_cache,
    final_arrays,
    kill_mid_epoch_and_resume,
    method_config,
    run_main,
)

# CAJ's three views (visible, channel-exchanged visible, adaptive-grey infrared) on the tiny
# data: every kind of op (geometry, erasing, channel ops) runs on the device.
CAJ_ON_DEVICE = """
config.data.ids_per_batch = 4
config.data.images_per_id = 2
config.data.augment_on = "device"
config.train.num_epochs = 3
config.train.steps_per_epoch = 3
config.train.log_every_steps = 1
config.optim.warmup_epochs = 1
config.optim.milestones = (2,)
config.eval.before_training = False
"""


@pytest.fixture(scope="module")
def device_run(tmp_path_factory):
  folder = tmp_path_factory.mktemp("device_augmentation")
  config_path = method_config(folder, "caj_device.py", "caj", "synthetic", CAJ_ON_DEVICE)
  workdir = folder / "uninterrupted"
  completed = run_main(config_path, workdir)
  assert completed.returncode == 0, completed.stdout + completed.stderr
  return folder, config_path, workdir, completed


def test_a_device_augmented_run_trains_and_records_where_it_augmented(device_run):
  _, _, workdir, _ = device_run
  recorded = json.loads((workdir / "config.json").read_text())
  assert recorded["data"]["augment_on"] == "device"
  results = json.loads((workdir / "results.json").read_text())
  assert results["step"] == 9
  assert {summary["protocol"] for summary in results["trained"]} == {"sysu_all+flip"}


def test_a_device_augmented_run_killed_mid_epoch_resumes_byte_identically(device_run):
  folder, config_path, uninterrupted, _ = device_run
  workdir = folder / "killed"
  kill_mid_epoch_and_resume(config_path, workdir)
  assert_same_run(uninterrupted, workdir, min_arrays=100)


def test_auto_trains_on_the_host_on_a_cpu_with_other_draws_than_the_device(device_run):
  """Same config but augment_on="auto", which is "host" on a CPU and recorded as such: other
  draws, hence other parameters after training (were the device mode silently ignored, they
  would be identical)."""
  folder, config_path, uninterrupted, _ = device_run
  workdir = folder / "host"
  completed = run_main(config_path, workdir, "--config.data.augment_on=auto")
  assert completed.returncode == 0, completed.stdout + completed.stderr
  recorded = json.loads((workdir / "config.json").read_text())
  assert recorded["data"]["augment_on"] == "host"
  device, host = final_arrays(uninterrupted), final_arrays(workdir)
  assert device.keys() == host.keys()
  assert any(not np.array_equal(device[name], host[name]) for name in device)
