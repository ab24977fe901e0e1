#!/usr/bin/env bash
# The GPU check on a machine with a real NVIDIA GPU (and its driver). Needs only python3 there: the agent's
# dependencies come from .gpu-deps/ (built here by `make gpu-check-deps`, carried to the GPU machine), the code
# from this checkout. Results go to $OUT (or ./gpu-check-out). Exit 0: every supported field has a real value.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEPS="$PWD/.gpu-deps"
if [ ! -d "$DEPS" ]; then
  echo "no .gpu-deps/: run 'make gpu-check-deps' first (or pip install nvidia-ml-py psutil aiohttp)" >&2
fi
export PYTHONPATH="$DEPS:$PWD/odin-core/src:$PWD/midgard/src${PYTHONPATH:+:$PYTHONPATH}"
OUT_DIR="${OUT:-$PWD/gpu-check-out}"
nvidia-smi -q > /dev/null 2>&1 && nvidia-smi -q > "$OUT_DIR.nvidia-smi.txt" 2>&1 || true
mkdir -p "$OUT_DIR"
[ -f "$OUT_DIR.nvidia-smi.txt" ] && mv "$OUT_DIR.nvidia-smi.txt" "$OUT_DIR/nvidia-smi-q.txt"
python3 --version
exec python3 midgard/tools/gpu_check.py --cuda --out "$OUT_DIR" "$@"
