#!/usr/bin/env bash
# One call on a GPU machine: the CUDA tests (they skip cleanly elsewhere; FIXPT_GPU_FULL=1 runs the
# whole suite instead), the benchmarks and, opt-in, the 100-seed Table 5 sweep; logs under $OUT
# (default ./gpu-check-out). Usage: bash scripts/gpu-check.sh
#
#   FIXPT_GPU_PARTS   which parts, in this order (default "tests ddpm vit navier-stokes solver seed-batch");
#                     add "table5" for the Table 5 sweep on the GPU with seed batches
#   FIXPT_TABLE5_PRESET   the preset of that sweep (a built-in name or a YAML file; default table5-paper;
#                     table5 is fixpt's defaults without the paper form)
#   FIXPT_DATA        the folder holding planetoid/ (seed-batch and table5 need it; skipped without)
#   FIXPT_TABLE5_SEEDS, _WORKERS, _LIMIT   seeds (100), worker processes (4), seconds allowed (300)
#   FIXPT_BENCH_COMPILE=1                  adds torch.compile to the DDPM benchmark
#   add "ns-presets" to size the Navier-Stokes plateau presets table4-initial and table2-initial (issue 16):
#                     generates the small ns-initial set on the GPU, trains every configuration of each for
#                     FIXPT_NS_TRIAL_EPOCHS (2) epochs (seed 0) and projects the full grid's device time
#                     (scripts/preset_cost.py); FIXPT_NS_LIMIT (420) seconds in all
#
# On the lent machines diffusers and gemmi are not installed: carry .whl (see the device README) and
# install them first, e.g. pip install --no-index --no-deps --target /tmp/site .whl/*.whl. The parts
# that need neither (tests, navier-stokes, seed-batch, table5) run without them.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-check-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" XDG_CACHE_HOME="${XDG_CACHE_HOME:-/tmp/fixpt-cache}"
PARTS=" ${FIXPT_GPU_PARTS:-tests ddpm vit navier-stokes solver seed-batch} "
part() { [[ "$PARTS" == *" $1 "* ]]; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, torch_geometric, typer; assert torch.cuda.is_available(), 'no CUDA device'; \
print('torch', torch.__version__, 'pyg', torch_geometric.__version__, torch.cuda.get_device_name(), 'cpus', __import__('os').cpu_count())" \
  | tee -a "$OUT/gpu.txt" || exit 1
status=0
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"
if part tests; then
  # the CUDA tests take about a minute on an H200; the whole suite (FIXPT_GPU_FULL=1) takes far longer
  # than a device session allows (it is CI's job, on the CPU)
  tests="tests/test_cuda.py"
  [ "${FIXPT_GPU_FULL:-0}" = 1 ] && tests=""
  timeout -k 10 "${FIXPT_TESTS_LIMIT:-900}" python3 -m pytest -q -p no:cacheprovider -rs $tests 2>&1 | tee "$OUT/tests.log" | tail -25
  grep -q " passed" "$OUT/tests.log" && ! grep -qE "[0-9]+ failed|[0-9]+ error" "$OUT/tests.log" || status=1
fi
if part ddpm; then
  python3 benchmarks/ddpm.py --device cuda --size paper --batch 64 --steps 60 ${FIXPT_BENCH_COMPILE:+--compile} 2>&1 | tee "$OUT/bench-ddpm-cuda.md" || status=1
fi
if part vit; then
  python3 benchmarks/ddpm.py --device cuda --model vit --batch 20 --steps 30 2>&1 | tee "$OUT/bench-vit-amp-cuda.md" || status=1
fi
if part navier-stokes; then
  python3 benchmarks/navier_stokes.py --device cuda --batches 1,64,256 --steps 500 2>&1 | tee "$OUT/bench-navier-stokes-cuda.md" || status=1
fi
if part solver; then
  # gradient modes at 20000 nodes, the solver's overhead (the step-late read runs only on CUDA) and the comparison
  python3 benchmarks/solver.py --device cuda --nodes 20000 --hidden 128 2>&1 | tee "$OUT/bench-solver-cuda.md" || status=1
fi
if part table5 && [ -n "${FIXPT_DATA:-}" ]; then
  # the full Table 5 sweep, every configuration's seeds as one seed batch; a sweep stopped at its
  # limit keeps its finished runs, and the log says how many
  seeds="${FIXPT_TABLE5_SEEDS:-100}" sweep=/tmp/fixpt-table5 preset="${FIXPT_TABLE5_PRESET:-table5-paper}"
  start=$(date +%s)
  timeout -k 10 "${FIXPT_TABLE5_LIMIT:-300}" python3 -m fixpt sweep "$preset" --seeds "$seeds" --seed-batch "$seeds" \
    --workers "${FIXPT_TABLE5_WORKERS:-4}" --device cuda --no-ckpt --out "$sweep" > "$OUT/table5-sweep.log" 2>&1 || status=1
  echo "table5 sweep: $seeds seeds, wall $(( $(date +%s) - start )) s, $(ls "$sweep"/runs/*/metrics.json 2>/dev/null | wc -l) runs finished" \
    | tee -a "$OUT/table5-sweep.log"
  tail -15 "$OUT/table5-sweep.log"
  for protocol in best-val last-epoch; do
    python3 -m fixpt report "$sweep" --compare paper --protocol "$protocol" > "$OUT/table5-report-$protocol.md" 2>&1 \
      && cat "$OUT/table5-report-$protocol.md" || status=1
  done
  tar czf "$OUT/table5-sweep.tgz" -C "$sweep" --exclude ckpt.pt .
fi
if part ns-presets; then
  start=$(date +%s) limit="${FIXPT_NS_LIMIT:-420}" trial_epochs="${FIXPT_NS_TRIAL_EPOCHS:-2}"
  for preset in table4-initial table2-initial; do
    left=$(( limit - ($(date +%s) - start) ))
    [ "$left" -gt 30 ] || break
    timeout -k 10 "$left" python3 -m fixpt sweep "$preset" --seeds 1 --set epochs="$trial_epochs" --set patience="$trial_epochs" \
      --device cuda --no-ckpt --out "/tmp/fixpt-trial-$preset" > "$OUT/ns-trial-$preset.log" 2>&1 || status=1
    python3 scripts/preset_cost.py "/tmp/fixpt-trial-$preset" --epochs 2000 --seeds 3 2>&1 | tee "$OUT/ns-cost-$preset.txt"
  done
fi
if part seed-batch && [ -n "${FIXPT_DATA:-}" ]; then
  timeout -k 10 "${FIXPT_SEED_BATCH_LIMIT:-900}" python3 benchmarks/seed_batch.py --device cuda \
    --seeds "${FIXPT_SEED_BATCH_SEEDS:-20}" --epochs "${FIXPT_SEED_BATCH_EPOCHS:-20}" \
    --data "${FIXPT_SEED_BATCH_DATA:-cora-0.0,cora-0.5,citeseer-0.5}" 2>&1 | tee "$OUT/bench-seed-batch-cuda.md" || status=1
fi
exit $status
