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
  it; the few that run full-width networks turn it off (`optimized_xla`); the end-to-end tests'
  runs of the main job set it themselves (tests/training/main_runs.py).
  """
  import jax
  previous = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", previous)


@pytest.fixture(autouse=True, scope="module")
def single_threaded_torch():
  """PyTorch (the reference side of many tests) on one thread: `make test` keeps both cores
  busy with its two workers, and PyTorch's second thread would spin-wait at every operation
  for a core the other worker holds (the step-by-step Mamba reference then ran 5x slower)."""
  torch = sys.modules.get("torch")   # imported by the test modules that use it
  if torch is not None:
    torch.set_num_threads(1)
  yield


@pytest.fixture
def optimized_xla():
  """XLA's optimisations on for one test: for the few that run full-width networks (ResNet-50
  at 288 x 144 and more), where the unoptimised programs run several times slower than
  optimising takes (e.g. CAJ's loss on 24 images: 7 s to compile and 26 s to run unoptimised,
  13 s and 7 s optimised)."""
  import jax
  previous = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", False)
  yield
  jax.config.update("jax_disable_most_optimizations", previous)


# The slowest modules, scheduled first and in this order (slowest first): `make test` hands
# whole files to two workers in collection order, and one of these started last would run
# alone at the end while the other worker idles. The rest follow in collection order.
SLOW_FIRST = (
    "tests/training/test_method_runs.py",         # six 8-device runs of the main job
    "tests/training/test_fault_injection.py",     # twelve runs, ten of them killed
    "tests/training/test_main.py",                # end-to-end runs, kills and resumes
    "tests/training/test_parallel.py",            # a subprocess: 1 vs 8 devices
    "tests/training/test_parallel_mmn_djanet.py",
    "tests/training/test_parallel_aligngan.py",
    "tests/models/test_pytorch_import.py",        # full-width ResNet-50 forwards
    "tests/models/test_djanet.py",
    "tests/test_notebooks.py",                    # three notebooks, each in a fresh kernel
    "tests/test_export.py",
    "tests/training/",
)


def pytest_configure(config):
  # pytest-xdist's --dist loadfile otherwise queues the files by their number of tests, which
  # would put the slow files above (few tests each) anywhere in the run.
  if hasattr(config.option, "loadscopereorder"):
    config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
  def rank(item):
    path = os.path.relpath(str(item.fspath), REPO_ROOT).replace(os.sep, "/")
    return next((index for index, prefix in enumerate(SLOW_FIRST) if path.startswith(prefix)),
                len(SLOW_FIRST))
  items.sort(key=rank)   # stable: the order within each group is kept


def pytest_terminal_summary(terminalreporter):
  # Figures a test reports with `record_property("figures", text)` (the fault-injection
  # test's kills and resumes): shown whatever the capture settings, from xdist workers too.
  for report in terminalreporter.getreports("passed") + terminalreporter.getreports("failed"):
    for name, text in getattr(report, "user_properties", ()):
      if name == "figures" and report.when == "call":
        terminalreporter.write_line(text)
