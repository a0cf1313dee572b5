#!/usr/bin/env bash
# Creates (or completes) the project's virtual environment in .venv.
# Idempotent: every step checks what is already there and installs only what is missing.
#
#   TORCH_SPEC   torch requirement installed when torch is missing (default torch==2.13.0,
#                the CPU build here); GPU users install their own torch first, or set it.
#   VENV         where the environment lives (default: <repo>/.venv).
#   PIP_FIND_LINKS  a folder with a prebuilt mmcv 2.1.0 wheel skips the ~18 min build.
#   WITH_SERVE=1 also installs requirements-serve.txt (the web page and its browser
#                test; the test suite sets it).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$repo/.venv}"
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
py="$venv/bin/python"

if [ ! -x "$py" ]; then
  echo "[setup] creating virtual environment $venv"
  python3 -m venv "$venv"
fi
pip() { "$py" -m pip --disable-pip-version-check -q "$@"; }
have() { "$py" -c "import $1" >/dev/null 2>&1; }
# pip may upgrade setuptools past 80 while installing the stack: re-pin it at the end too.
pin_setuptools() { pip install 'setuptools>=77.0.3,<81' wheel; }

pin_setuptools
if ! have torch; then
  echo "[setup] installing $torch_spec"
  pip install "$torch_spec"
fi
if ! "$py" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" >/dev/null 2>&1; then
  echo "[setup] installing mmcv 2.1.0 with ops (a prebuilt wheel from PIP_FIND_LINKS if given, else a build from source of about 18 minutes)"
  if ! pip install --no-index --no-deps mmcv==2.1.0 2>/dev/null; then
    # mmcv's setup.py imports pkg_resources APIs that setuptools>=70 dropped; the build
    # must see the already-installed torch, hence no build isolation.
    pip install 'setuptools<70' ninja
    MMCV_WITH_OPS=1 pip install --no-build-isolation mmcv==2.1.0
    pin_setuptools
  fi
fi
if ! "$py" -c "import mmdet, mmengine, transformers, fairscale, pycocotools, peft, pytest" >/dev/null 2>&1 \
   || ! "$venv/bin/ruff" --version >/dev/null 2>&1 \
   || ! "$py" -c "import transformers, mmdet; assert transformers.__version__ == '4.46.3' and mmdet.__version__ == '3.3.0'" >/dev/null 2>&1; then
  echo "[setup] installing requirements.txt"
  pip install -r "$repo/requirements.txt"
fi
if [ "${WITH_SERVE:-0}" = 1 ] && ! "$py" -c "import gradio, playwright" >/dev/null 2>&1; then
  echo "[setup] installing requirements-serve.txt"
  pip install -r "$repo/requirements-serve.txt"
fi
pin_setuptools
"$py" - <<'PY'
import torch, mmcv, mmdet, mmengine, transformers, setuptools
print(f"[setup] ready: torch {torch.__version__}, mmcv {mmcv.__version__}, mmdet {mmdet.__version__}, "
      f"mmengine {mmengine.__version__}, transformers {transformers.__version__}, setuptools {setuptools.__version__}")
PY
