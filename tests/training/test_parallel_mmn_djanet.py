"""Data parallelism: MMN and DJANet's steps on 8 simulated CPU devices equal the steps on one
(the comparison: tests/training/parallel_steps.py; a file of its own, so that its subprocess
runs beside tests/training/test_parallel.py's on the other test worker)."""

import pytest

from tests.training.parallel_steps import assert_steps_equal, steps_on_two_meshes


@pytest.fixture(scope="module")
def eight_device_steps():
  """Two steps of MMN and DJANet, each on a 1-device and an 8-device mesh, in one
  subprocess."""
  return steps_on_two_meshes(["mmn", "djanet"])


@pytest.mark.parametrize("case", ["mmn", "djanet"])
def test_steps_on_eight_devices_equal_the_steps_on_one(eight_device_steps, case):
  assert_steps_equal(eight_device_steps[case], case)
