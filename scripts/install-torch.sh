#!/usr/bin/env bash
# Install torch into the virtual environment without pulling a multi-GB CUDA build onto a machine
# that has no NVIDIA GPU.  Order of preference:
#   1. torch already installed and >= 2.4: nothing to do;
#   2. an NVIDIA GPU (nvidia-smi works): the regular PyPI build, which ships CUDA;
#   3. a torch wheel in pip's local find-links (a CPU build laid on disk): install that file;
#   4. otherwise the CPU-only build from the PyTorch CPU index.
set -euo pipefail
py="${1:-.venv/bin/python}"
if "$py" -c 'import sys, torch; v = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]); sys.exit(0 if v >= (2, 4) else 1)' 2>/dev/null; then
    exit 0
fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    exec "$py" -m pip install "torch>=2.4"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if "$py" -m pip download -q --no-index --no-deps -d "$tmp" "torch>=2.4" >/dev/null 2>&1; then
    exec "$py" -m pip install "$tmp"/torch-*.whl
fi
exec "$py" -m pip install "torch>=2.4" --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple
