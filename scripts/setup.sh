#!/usr/bin/env bash
# One idempotent setup step: a venv in .venv, the pinned requirements, torchcv in editable mode
# and the C++/CUDA ops extension. Quick when already done (requirements are hashed; the extension
# build is incremental). Where a suitable torch is already installed system-wide, the venv sees it
# (--system-site-packages) and pip keeps it instead of reinstalling.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY_BOOT="${PYTHON_BOOTSTRAP:-python3}"

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY_BOOT" -m venv --system-site-packages .venv
fi
PY=.venv/bin/python
stamp=.venv/.torchcv_requirements.sha256
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing requirements"
  "$PY" -m pip install -q --disable-pip-version-check -r requirements.txt
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  # the export extra (onnx, onnxscript, onnxruntime): ONNX export and its onnxruntime checks
  "$PY" -m pip install -q --disable-pip-version-check --no-build-isolation -e ".[export]"
  echo "$want" > "$stamp"
else
  echo "[setup] requirements up to date"
fi
if [ -f extensions/make.sh ]; then
  PYTHON="$PY" bash extensions/make.sh
fi
"$PY" -c "import torchcv, torch; from torchcv import ops; print(f'[setup] torchcv ready: torch {torch.__version__}, ops backend: {ops.backend()}')"
