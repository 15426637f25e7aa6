#!/usr/bin/env bash
# One lent-GPU session (not CI): install what the image lacks from carried wheels, then run the
# gpu-marked tests, the flex compile check and the GPU benchmark; JSON and logs land in $OUT.
#
#   bash bench/gpu_session.sh            # wheels from .gpuwheels/ when present (pip download ... --python-version 3.12)
set -uo pipefail
OUT=${OUT:-bench/results}
mkdir -p "$OUT"
if [ -d .gpuwheels ]; then
  python -m pip install -q --no-index --no-deps .gpuwheels/*.whl 2>&1 | tail -2
fi
python -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -2
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
timeout 150 python -m pytest -q -m gpu -p no:cacheprovider tests 2>&1 | tail -15 | tee "$OUT/gpu_tests.log"
BLT_FLEX_CHECK_BUDGET_S=60 timeout 150 python bench/gpu_flex_check.py "$OUT/gpu_flex_check.json" 2>&1 | tail -8
BLT_GPU_BENCH_BUDGET_S=150 timeout 200 python bench/gpu.py "$OUT/gpu_bench.json" 2>&1 | tail -20
