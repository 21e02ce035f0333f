#!/usr/bin/env bash
# One-time (idempotent) setup: a virtual environment in .venv with graphevent installed.
#
# torch is installed FIRST and pinned, so that installing graphevent never pulls another
# torch build. Default: torch==2.13.0, which on this project's CPU machines is a CPU build.
# GPU users: install the CUDA build of torch that matches your driver first, e.g.
#   GRAPHEVENT_TORCH="torch==2.13.0" bash scripts/setup.sh      (Linux wheels on PyPI are CUDA builds)
# or into an existing environment: pip install torch (your build) && pip install -e '.[sim]'.
# CPU-only laptops outside this project: use PyTorch's CPU wheel index (see pytorch.org,
# "Get Started"), e.g. GRAPHEVENT_TORCH="torch --index-url <PyTorch CPU index>".
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
TORCH_SPEC="${GRAPHEVENT_TORCH:-torch==2.13.0}"
EXTRAS="${GRAPHEVENT_EXTRAS:-dev,sim,export}"

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=".venv/.graphevent-installed"
want="$(cat pyproject.toml | sha256sum | cut -c1-16) $TORCH_SPEC $EXTRAS"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "[setup] installing $TORCH_SPEC, then graphevent[$EXTRAS] (a few minutes the first time)"
.venv/bin/python -m pip install -q --upgrade pip
# shellcheck disable=SC2086
.venv/bin/python -m pip install -q $TORCH_SPEC
.venv/bin/python -m pip install -q -e ".[$EXTRAS]"
.venv/bin/python -c "import torch, torch_geometric; print(f'[setup] torch {torch.__version__} (CUDA available: {torch.cuda.is_available()}), torch-geometric {torch_geometric.__version__}')"
echo "$want" > "$stamp"
