"""The one-way flow of the package: `training/` never imports `methods/`, and only `data/`
imports TensorFlow."""

import ast
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(REPO_ROOT, "vireid_jax")


def imported_modules(path):
  """Every module a file imports, at any depth of the file (function-level imports too)."""
  tree = ast.parse(open(path, encoding="utf-8").read(), path)
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      yield node.module
      yield from (f"{node.module}.{alias.name}" for alias in node.names)


def python_files(folder):
  for directory, _, files in os.walk(folder):
    yield from (os.path.join(directory, name) for name in files if name.endswith(".py"))


def test_training_imports_nothing_from_methods():
  offenders = [(os.path.relpath(path, REPO_ROOT), module)
               for path in python_files(os.path.join(PACKAGE, "training"))
               for module in imported_modules(path)
               if module == "vireid_jax.methods" or module.startswith("vireid_jax.methods.")]
  assert not offenders


@pytest.mark.parametrize("package", ["evaluation", "methods", "models", "losses", "ops",
                                     "training"])
def test_only_the_data_package_imports_tensorflow(package):
  offenders = [(os.path.relpath(path, REPO_ROOT), module)
               for path in python_files(os.path.join(PACKAGE, package))
               for module in imported_modules(path)
               if module.split(".")[0] in ("tensorflow", "tensorflow_datasets")]
  assert not offenders


def assert_loads_no_tensorflow(code):
  code += "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n"
  completed = subprocess.run([sys.executable, "-c", "import sys\n" + code], cwd=REPO_ROOT,
                             capture_output=True, text=True,
                             env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
  assert completed.returncode == 0, completed.stderr[-2000:]


def test_importing_the_loop_methods_and_evaluation_loads_no_tensorflow():
  # The loop reaches TensorFlow only inside `run`, through the data package: a machine
  # without TensorFlow can import it, evaluate and use every method.
  assert_loads_no_tensorflow(
      "from vireid_jax.training import loop\n"
      "assert not [m for m in sys.modules if m.startswith('vireid_jax.methods')]\n"
      "from vireid_jax.methods import agw\n"
      "from vireid_jax import evaluation, inference, checkpoints\n")


def test_the_device_augmentation_loads_no_tensorflow():
  # The views of augment_on="device" are computed on machines that may have no TensorFlow
  # (the GPU benchmark's), so device_augment must stay TensorFlow-free like `splits`.
  assert_loads_no_tensorflow("from vireid_jax.data import device_augment\n"
                             "assert device_augment.DEVICE_RECIPES\n")
