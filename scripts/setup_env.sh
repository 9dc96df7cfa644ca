#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv: a matching torch/torchvision pair from the
# package index, BasicSR 1.4.2 (built without isolation, so it does not pull its own torch), the other
# dependencies, and adaptsr in editable mode. Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.14.1}
TORCHVISION_VERSION=${TORCHVISION_VERSION:-0.29.1}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
# pip's own failures stop the script (its output is filtered, its exit status kept): a failed install must not
# surface later as a missing module.
pip_q() {
  local rc=0
  python -m pip install -q --disable-pip-version-check --no-cache-dir "$@" >.venv/pip.log 2>&1 || rc=$?
  grep -v "is ignored: it is neither" .venv/pip.log || true
  if [ "$rc" -ne 0 ]; then
    local free
    free=$(df -h . | awk 'NR==2 {print $4}')
    echo "setup_env.sh: 'pip install $*' failed (exit $rc); free space on $(pwd): $free" >&2
    exit "$rc"
  fi
}
if ! python -c "import torch, torchvision, torchvision.ops" >/dev/null 2>&1; then
  # The venv takes about 7.5 GB (torch's x86_64 wheel is a CUDA build): say so before pip runs out of space half-way.
  free_kb=$(df -Pk . | awk 'NR==2 {print $4}')
  if [ "${free_kb:-0}" -lt $((8 * 1024 * 1024)) ]; then
    echo "setup_env.sh: only $((free_kb / 1024)) MiB free on $(pwd); the environment needs about 8 GiB" >&2
    exit 1
  fi
  pip_q "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"
fi
pip_q -r requirements.txt
if ! python -c "import importlib.metadata as m; assert m.version('basicsr') == '1.4.2'" >/dev/null 2>&1; then
  pip_q --no-build-isolation --no-deps basicsr==1.4.2
fi
pip_q --no-build-isolation --no-deps -e .
python -c "import adaptsr, basicsr, torch, torchvision; print('environment ready: torch', torch.__version__, \
'torchvision', torchvision.__version__, 'basicsr', basicsr.__version__, 'adaptsr', adaptsr.__version__)"
# SMSR's sparse convolution kernel: compiled now (for this CPU, then cached) rather than at the first SMSR test
python -c "from adaptsr.methods.smsr.sparse_conv import load_kernel, kernel_build_seconds as s; k = load_kernel(); \
print('SMSR sparse kernel:', f'ready in {s():.1f} s (compiled, or loaded from the cache)' if k else 'not available')"
