#!/usr/bin/env bash
# One call on a GPU machine: the whole test suite (tests taking the `device` fixture run on the CPU
# and on CUDA; CUDA-only tests skip cleanly elsewhere) and the benchmarks, logs under $OUT
# (default ./gpu-check-out). Usage: bash scripts/gpu-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-check-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, torch_geometric, typer; assert torch.cuda.is_available(), 'no CUDA device'; \
print('torch', torch.__version__, 'pyg', torch_geometric.__version__, 'typer', typer.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
status=0
python3 -m pytest -q -p no:cacheprovider -rs 2>&1 | tee "$OUT/tests.log" | tail -25 || status=1
grep -q " passed" "$OUT/tests.log" && ! grep -qE "[0-9]+ failed" "$OUT/tests.log" || status=1
python3 benchmarks/solver.py --device cuda --nodes 20000 --hidden 128 --repeats 5 --json "$OUT/solver-cuda.json" 2>&1 | tee "$OUT/bench-cuda.md" || status=1
python3 benchmarks/navier_stokes.py --device cuda --batches 1,64,256 --steps 500 2>&1 | tee "$OUT/bench-navier-stokes-cuda.md" || status=1
# a small sweep through the GPU path end to end (one worker per visible GPU), then its report
python3 -m fixpt sweep presets/long-range.yaml --out "$OUT/sweep-long-range" --seeds 1 --set epochs=50 --no-ckpt --device cuda \
  --workers "$(python3 -c 'import torch; print(max(1, torch.cuda.device_count()))')" 2>&1 | tail -3 | tee "$OUT/sweep.log" || status=1
python3 -m fixpt report "$OUT/sweep-long-range" --plot "$OUT/sweep-figures" 2>&1 | tee -a "$OUT/sweep.log" || status=1
exit $status
