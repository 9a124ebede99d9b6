"""Test settings for the model tests."""

import jax
import pytest


@pytest.fixture(autouse=True, scope='module')
def cheap_xla_compilation():
  """Compiles with XLA's optimisation passes off while a module here runs.

  These tests run each tiny program once or twice, so optimising costs more
  than it saves: about half the CPU time of the folder goes to compilation
  otherwise. The previous value is restored after each module, so other
  test folders are unaffected.
  """
  previous = jax.config.read('jax_disable_most_optimizations')
  jax.config.update('jax_disable_most_optimizations', True)
  yield
  jax.config.update('jax_disable_most_optimizations', previous)
