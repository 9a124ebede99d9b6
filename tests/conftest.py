"""Test set-up shared by the whole suite."""

import os
import sys

# Quiet TensorFlow's C++ logging; tests never use a GPU.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Config files import `configs.default`, as they do when run from the repository root.
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)
