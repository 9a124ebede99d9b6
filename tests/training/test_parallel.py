"""Data parallelism: AGW (float32 and bfloat16), CAJ, MCJA and DAN's steps on 8 simulated CPU
devices equal the steps on one (the comparison: tests/training/parallel_steps.py; MMN and
DJANet: test_parallel_mmn_djanet.py)."""

import numpy as np
import pytest

from tests.training.parallel_steps import assert_steps_equal, steps_on_two_meshes
from vireid_jax.training import parallel


@pytest.fixture(scope="module")
def eight_device_steps():
  """Two steps of AGW (float32 and bfloat16), CAJ and MCJA and three of DAN, each on a
  1-device and an 8-device mesh, in one subprocess (the CPU device count is fixed when JAX
  starts)."""
  return steps_on_two_meshes(["agw", "agw_bfloat16", "caj", "mcja", "dan"])


@pytest.mark.parametrize("case", ["agw", "caj", "mcja", "dan"])
def test_steps_on_eight_devices_equal_the_steps_on_one(eight_device_steps, case):
  assert_steps_equal(eight_device_steps[case], case)


def test_bfloat16_compute_keeps_float32_parameters_statistics_and_losses(eight_device_steps):
  result = eight_device_steps["agw_bfloat16"]
  assert result["param_dtypes"] == ["float32"]
  assert result["stat_dtypes"] == ["float32"]
  assert result["loss_dtype"] == "float32"
  # On 8 devices the first step's loss (the same parameters) agrees with the float32 model's
  # to bfloat16 rounding; the second comes after an update at the demo's rate of 0.1 from
  # scratch, which bfloat16 gradients change by a few per cent: finite and within 20 %.
  first, second = (step["loss"] for step in result["metrics"])
  float32_first, float32_second = (
      step["loss"] for step in eight_device_steps["agw"]["metrics"][1])
  assert abs(first - float32_first) <= 2e-2 * abs(float32_first)
  assert np.isfinite(second) and abs(second - float32_second) <= 0.2 * abs(float32_second)


def test_indivisible_batch_names_the_config_key():
  mesh = parallel.make_mesh()
  if mesh.size == 1:
    assert parallel.check_divisible(7, mesh, "config.data.eval_batch_size") is None
  fake_mesh = type("FakeMesh", (), {"size": 8})()
  with pytest.raises(ValueError, match=r"config.data.eval_batch_size=12 .* 8 devices"):
    parallel.check_divisible(12, fake_mesh, "config.data.eval_batch_size")
