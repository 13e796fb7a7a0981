#!/usr/bin/env bash
# Install recipe and its tested dependencies into the current Python environment.
#
# torch goes first: a bare `torch` requirement on a machine without torch pulls the CUDA build
# (several GB). Without an NVIDIA GPU we install $TORCH_SPEC (default torch==2.13.0) before
# anything else; set TORCH_PIP_ARGS (e.g. "--index-url https://download.pytorch.org/whl/cpu")
# to choose where pip finds it, or TORCH_SPEC to pick another version. With a GPU, or with torch
# already installed, the installed/CUDA build is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if "$PYTHON" -c "import torch" 2>/dev/null; then
    echo "torch $("$PYTHON" -c 'import torch; print(torch.__version__)') already installed"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    echo "NVIDIA GPU found: installing the default (CUDA) torch build"
    "$PYTHON" -m pip install ${TORCH_PIP_ARGS:-} "$TORCH_SPEC"
else
    echo "no GPU: installing the CPU build first ($TORCH_SPEC ${TORCH_PIP_ARGS:-})"
    "$PYTHON" -m pip install ${TORCH_PIP_ARGS:-} "$TORCH_SPEC"
fi
"$PYTHON" -m pip install -c constraints.txt -e ".[dev]"
