"""Test set-up shared by the whole suite."""

import os
import sys

import pytest

# Quiet TensorFlow's C++ logging; tests never use a GPU.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Config files import `configs.default`, as they do when run from the repository root.
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)


@pytest.fixture(autouse=True, scope="module")
def cheap_xla_compilation():
  """Compiles with most XLA optimisations off while a test module runs.

  Unit tests run each tiny program once or twice, so compiling dominates their time and
  optimising costs more than it saves (about half the CPU time of the model tests). The
  setting is restored after each module. Tests that time or benchmark code must not rely on
  it; the end-to-end tests run the main job in a subprocess with the default setting.
  """
  import jax
  previous = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", previous)


# The slowest modules (end-to-end runs in subprocesses), scheduled first: `make test` hands whole
# files to two workers in collection order, and one of these started last would run alone at
# the end while the other worker idles.
SLOW_FIRST = ("tests/training/", "tests/methods/test_aligngan.py", "tests/models/test_djanet.py",
              "tests/models/test_pytorch_import.py", "tests/models/test_aligngan.py")


def pytest_collection_modifyitems(config, items):
  def rank(item):
    path = os.path.relpath(str(item.fspath), REPO_ROOT).replace(os.sep, "/")
    return 0 if path.startswith(SLOW_FIRST) else 1
  items.sort(key=rank)   # stable: the order within each group is kept
