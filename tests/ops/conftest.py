"""Shared fixtures for the custom-gradient op tests."""

import jax
import pytest


@pytest.fixture(autouse=True, scope="module")
def cheap_xla_compilation():
  """Compiles with most XLA optimisations off while a module here runs.

  Compilation, not computation, dominates these tests: each small program
  runs a few times at most. The previous setting is restored after each
  module, so other test folders are unaffected.
  """
  previous = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", previous)


@pytest.fixture
def x64():
  """Enables float64 for one test only, restoring the previous setting.

  Finite-difference checks need float64; the rest of the test session shares
  the process and must keep JAX's default (float32).
  """
  with jax.enable_x64(True):
    yield
