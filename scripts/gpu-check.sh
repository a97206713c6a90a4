#!/usr/bin/env bash
# One call on a GPU machine: the CUDA tests (they skip cleanly elsewhere; FIXPT_GPU_FULL=1 runs the
# whole suite instead) and the benchmarks (FIXPT_BENCH_COMPILE=1 adds torch.compile), logs under $OUT
# (default ./gpu-check-out). Usage: bash scripts/gpu-check.sh
# On the lent machines diffusers and gemmi are not installed: carry .whl (see the device README) and
# install them first, e.g. pip install --no-index --no-deps --target /tmp/site .whl/*.whl.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-check-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" XDG_CACHE_HOME="${XDG_CACHE_HOME:-/tmp/fixpt-cache}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, torch_geometric, typer, diffusers; assert torch.cuda.is_available(), 'no CUDA device'; \
print('torch', torch.__version__, 'pyg', torch_geometric.__version__, 'diffusers', diffusers.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
status=0
# the CUDA tests take ~30 s on an H200; the whole suite (FIXPT_GPU_FULL=1) takes far longer than a
# device session allows (it is CI's job, on the CPU)
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"
tests="tests/test_cuda.py"
[ "${FIXPT_GPU_FULL:-0}" = 1 ] && tests=""
python3 -m pytest -q -p no:cacheprovider -rs $tests 2>&1 | tee "$OUT/tests.log" | tail -25 || status=1
grep -q " passed" "$OUT/tests.log" && ! grep -qE "[0-9]+ failed" "$OUT/tests.log" || status=1
python3 benchmarks/ddpm.py --device cuda --size paper --batch 64 --steps 60 ${FIXPT_BENCH_COMPILE:+--compile} 2>&1 | tee "$OUT/bench-ddpm-cuda.md" || status=1
python3 benchmarks/ddpm.py --device cuda --model vit --batch 20 --steps 30 2>&1 | tee "$OUT/bench-vit-amp-cuda.md" || status=1
python3 benchmarks/navier_stokes.py --device cuda --batches 1,64,256 --steps 500 2>&1 | tee "$OUT/bench-navier-stokes-cuda.md" || status=1
# seed batches on the GPU (needs FIXPT_DATA with planetoid/ carried along; skipped without it)
if [ -n "${FIXPT_DATA:-}" ]; then
  python3 benchmarks/seed_batch.py --device cuda --seeds 20 --epochs 20 2>&1 | tee "$OUT/bench-seed-batch-cuda.md" || status=1
fi
exit $status
