#!/usr/bin/env bash
# Install recipe and its tested dependencies into the current Python environment.
#
# torch goes first: a bare `torch` requirement on a machine without torch pulls the CUDA build
# (several GB: PyPI's Linux torch wheel depends on the nvidia-* CUDA wheels). Without an NVIDIA
# GPU we install $TORCH_SPEC (default torch==2.13.0) before anything else, from PyTorch's CPU
# index ($TORCH_CPU_INDEX) when it answers, else from pip's own index (a mirror that holds the CPU
# wheel). Set TORCH_PIP_ARGS (e.g. "--index-url https://download.pytorch.org/whl/cpu") to choose
# where pip finds it, or TORCH_SPEC to pick another version. With a GPU, or with torch already
# installed, the installed/CUDA build is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}

# Whether PyTorch's CPU index answers (10 s at most), so that an offline mirror is not retried for minutes.
cpu_index_answers() {
    "$PYTHON" - "$TORCH_CPU_INDEX" <<'PY'
import sys
import urllib.request

try:
    urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=10).close()
except Exception:
    sys.exit(1)
PY
}

if "$PYTHON" -c "import torch" 2>/dev/null; then
    echo "torch $("$PYTHON" -c 'import torch; print(torch.__version__)') already installed"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    echo "NVIDIA GPU found: installing the default (CUDA) torch build"
    "$PYTHON" -m pip install ${TORCH_PIP_ARGS:-} "$TORCH_SPEC"
else
    if [ -z "${TORCH_PIP_ARGS+set}" ]; then
        if cpu_index_answers; then
            TORCH_PIP_ARGS="--index-url $TORCH_CPU_INDEX"
        else
            echo "PyTorch's CPU index ($TORCH_CPU_INDEX) does not answer: torch comes from pip's own index;" \
                "where that is PyPI it is the CUDA build (set TORCH_PIP_ARGS to point pip at a CPU wheel)"
        fi
    fi
    echo "no GPU: installing the CPU build first ($TORCH_SPEC ${TORCH_PIP_ARGS:-})"
    "$PYTHON" -m pip install ${TORCH_PIP_ARGS:-} "$TORCH_SPEC"
fi
"$PYTHON" -m pip install -c constraints.txt -e ".[dev]"
