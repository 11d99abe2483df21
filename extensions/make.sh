#!/usr/bin/env bash
# Build torchcv._C (nms, batched_nms, roi_align, roi_pool, box_iou, box_area).
#
#   bash extensions/make.sh            # CPU kernels + CUDA kernels if nvcc and a CUDA torch exist
#   CPU_ONLY=1 bash extensions/make.sh # CPU kernels only (fast)
#   FORCE_CUDA=1 bash extensions/make.sh
#
# Other knobs: PYTHON (interpreter; default .venv/bin/python, then python3),
# CUDA_HOME, TORCH_CUDA_ARCH_LIST (default "8.0;9.0"), MAX_JOBS, CXX,
# TORCHCV_REBUILD=1 (ignore the up-to-date check).
#
# Idempotent: a hash of the sources, build flags and torch version is stored
# next to the .so; if nothing changed the script exits in about a second.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then
    PYTHON="$ROOT/.venv/bin/python"
  else
    PYTHON="$(command -v python3 || command -v python)"
  fi
fi
# ninja from the venv (pip install ninja) if there is one
export PATH="$(dirname "$PYTHON"):$PATH"

# CUDA toolkit: CUDA_HOME, else /usr/local/cuda, else the toolkit of the nvcc on PATH
if [ -z "${CUDA_HOME:-}" ]; then
  if [ -x /usr/local/cuda/bin/nvcc ]; then
    CUDA_HOME=/usr/local/cuda
  elif command -v nvcc >/dev/null 2>&1; then
    cand="$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")"
    if [ -f "$cand/include/cuda_runtime.h" ]; then CUDA_HOME="$cand"; fi
  fi
fi
if [ -n "${CUDA_HOME:-}" ]; then
  export CUDA_HOME
  export PATH="$CUDA_HOME/bin:$PATH"
fi
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0}"
export MAX_JOBS="${MAX_JOBS:-$(nproc 2>/dev/null || echo 2)}"

STAMP="$ROOT/torchcv/.build_stamp_C"

# Decide CUDA vs CPU and hash everything that influences the build, without
# importing torch (keeps the no-op path fast).
read -r WITH_CUDA HASH < <("$PYTHON" - <<'EOF'
import hashlib, importlib.util, os, sys, glob
root = os.getcwd()
spec = importlib.util.find_spec("torch")
if spec is None:
    print("0 no-torch"); sys.exit(0)
tdir = os.path.dirname(spec.origin)
ver = {}
with open(os.path.join(tdir, "version.py")) as f:
    exec(f.read(), ver)
torch_cuda = ver.get("cuda")
cuda_home = os.environ.get("CUDA_HOME", "")
nvcc = os.path.join(cuda_home, "bin", "nvcc") if cuda_home else ""
if os.environ.get("CPU_ONLY", "0") == "1":
    with_cuda = 0
elif os.environ.get("FORCE_CUDA", "0") == "1":
    with_cuda = 1
else:
    with_cuda = int(bool(torch_cuda) and bool(nvcc) and os.path.exists(nvcc))
h = hashlib.sha256()
files = sorted(glob.glob("extensions/csrc/**/*", recursive=True)) + ["extensions/setup.py", "extensions/make.sh"]
for p in files:
    if os.path.isfile(p):
        h.update(p.encode())
        with open(p, "rb") as f:
            h.update(f.read())
for k in ("CXX", "CC", "CFLAGS", "CXXFLAGS", "LDFLAGS", "NVCC_FLAGS"):
    h.update(f"{k}={os.environ.get(k, '')}".encode())
h.update(f"torch={ver.get('__version__')} cuda={torch_cuda} py={sys.version} with_cuda={with_cuda}".encode())
if with_cuda:
    h.update(f"cuda_home={cuda_home} arch={os.environ.get('TORCH_CUDA_ARCH_LIST')}".encode())
print(with_cuda, h.hexdigest())
EOF
) || true

if [ -z "${HASH:-}" ]; then
  echo "[torchcv] error: could not inspect the build environment with $PYTHON (is it a working Python?)." >&2
  exit 1
fi

if [ "$HASH" = "no-torch" ]; then
  echo "[torchcv] error: torch is not importable by $PYTHON; install the requirements first (or set PYTHON=...)." >&2
  exit 1
fi

so_file() { ls "$ROOT"/torchcv/_C*.so 2>/dev/null | head -n 1 || true; }

if [ "${TORCHCV_REBUILD:-0}" != "1" ] && [ -n "$(so_file)" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ]; then
  echo "[torchcv] torchcv._C is up to date ($(basename "$(so_file)"), cuda=$WITH_CUDA)"
  exit 0
fi

diagnose() {
  echo "" >&2
  echo "[torchcv] BUILD FAILED. What was found:" >&2
  echo "  python : $PYTHON ($("$PYTHON" -c 'import sys; print(sys.version.split()[0])' 2>&1))" >&2
  echo "  torch  : $("$PYTHON" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tail -n 1)" >&2
  echo "  c++    : $(${CXX:-c++} --version 2>&1 | head -n 1)" >&2
  if [ -n "${CUDA_HOME:-}" ] && [ -x "$CUDA_HOME/bin/nvcc" ]; then
    echo "  nvcc   : $("$CUDA_HOME/bin/nvcc" --version 2>&1 | tail -n 1) (CUDA_HOME=$CUDA_HOME)" >&2
  else
    echo "  nvcc   : not found (CUDA_HOME=${CUDA_HOME:-unset})" >&2
  fi
  echo "  ninja  : $(ninja --version 2>/dev/null || echo 'not found (pip install ninja)')" >&2
  echo "  cuda build requested: $WITH_CUDA (TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST)" >&2
  echo "Things to try:" >&2
  echo "  * CPU_ONLY=1 bash extensions/make.sh       (skip the CUDA kernels)" >&2
  echo "  * CUDA_HOME=/path/to/cuda bash extensions/make.sh   (nvcc major version must match torch.version.cuda)" >&2
  echo "  * a host compiler supported by your nvcc, e.g. CXX=g++-12 CC=gcc-12" >&2
  echo "  * TORCHCV_REBUILD=1 MAX_JOBS=1 bash extensions/make.sh   (clean, serial build for readable errors)" >&2
  echo "  * without the build, torchcv.ops falls back to torchvision.ops (slower on CPU)" >&2
}

echo "[torchcv] building torchcv._C (cuda=$WITH_CUDA, jobs=$MAX_JOBS) ..."
START=$(date +%s)
rm -f "$STAMP"
if [ "$WITH_CUDA" = "1" ]; then export FORCE_CUDA=1; else export CPU_ONLY=1; fi
if ! "$PYTHON" extensions/setup.py build_ext --inplace; then
  diagnose
  exit 1
fi

# smoke-check the fresh module without importing the whole torchcv package
if ! "$PYTHON" - <<'EOF'
import glob, importlib.util, torch
path = sorted(glob.glob("torchcv/_C*.so"))[0]
spec = importlib.util.spec_from_file_location("torchcv._C", path)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
b = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
keep = torch.ops.torchcv.nms(b, torch.tensor([0.9, 0.8, 0.7]), 0.5)
assert keep.tolist() == [0, 2], keep
print(f"[torchcv] import check ok: {path} (with_cuda={mod.with_cuda()})")
EOF
then
  diagnose
  exit 1
fi
echo "$HASH" > "$STAMP"
echo "[torchcv] done in $(( $(date +%s) - START ))s"
