"""Shared fixtures for the custom-gradient op tests."""

import jax
import numpy as np
import pytest


@pytest.fixture
def x64():
  """Enables float64 for one test only, restoring the previous setting.

  Finite-difference checks need float64; the rest of the test session shares
  the process and must keep JAX's default (float32).
  """
  with jax.enable_x64(True):
    yield


@pytest.fixture
def central_difference_gradient():
  """fn(x) -> gradient of a scalar fn at x by float64 central differences (pass a jitted fn)."""
  def gradient_of(fn, x, step=1e-6):
    x = np.asarray(x, np.float64)
    gradient = np.zeros_like(x)
    for index in np.ndindex(x.shape):
      offset = np.zeros_like(x)
      offset[index] = step
      gradient[index] = (float(fn(x + offset)) - float(fn(x - offset))) / (2 * step)
    return gradient
  return gradient_of
