#!/usr/bin/env bash
# One GPU benchmark: our AGW train step against the reference's PyTorch step, evaluation at
# SYSU-MM01 size and the input path, in one table (benchmarks/gpu.py says what each row is).
#
#   bash benchmarks/gpu.sh [--write_results] [--profile DIR] [gpu.py's other flags]
#   bash benchmarks/gpu.sh --smoke          # tiny sizes on any CPU, seconds
#   bash benchmarks/gpu.sh --fetch_wheels   # once, on a host with a package registry (below)
#
# Runs under .venv/bin/python where that exists, else python3 ($PYTHON overrides). A GPU
# machine without a registry (this workplace's: JAX, PyTorch and Flax but no ml_collections or
# tensorboardX, which vireid_jax imports) gets them as wheels: `--fetch_wheels` downloads them
# into .whl/ here (git-ignored; carry it), and this script installs .whl/*.whl into /tmp/site
# when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PURE_PYTHON_WHEELS=("ml_collections==1.1.0" "tensorboardX==2.6.5")

if [[ -n "${PYTHON:-}" ]]; then
  python="$PYTHON"
elif [[ -x .venv/bin/python ]]; then
  python=.venv/bin/python
else
  python=python3
fi

if [[ "${1:-}" == "--fetch_wheels" ]]; then
  "$python" -m pip download --quiet --no-deps --only-binary=:all: -d .whl "${PURE_PYTHON_WHEELS[@]}"
  echo "Wheels in .whl/: $(ls .whl | tr '\n' ' ')"
  exit 0
fi

if ! "$python" -c "import ml_collections, tensorboardX" 2>/dev/null; then
  if compgen -G ".whl/*.whl" >/dev/null; then
    "$python" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir \
      --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "error: $python cannot import ml_collections and tensorboardX, and .whl/ holds no" \
      "wheels: run 'bash benchmarks/gpu.sh --fetch_wheels' where a package registry is" \
      "reachable and carry .whl/ along (or pip install them)." >&2
    exit 1
  fi
fi

export PYTHONUNBUFFERED=1
exec "$python" benchmarks/gpu.py "$@"
