#!/usr/bin/env bash
# The README's command examples with --json (and `fixpt report --format json`), on tiny settings, so
# that outputs before and after a behaviour-preserving refactor can be diffed:
#
#   cd /work/baseline && PYTHONPATH=$PWD bash scripts/json-examples.sh /tmp/json-before
#   python scripts/normalise_json.py /tmp/json-before
#   (the same for the refactored tree into /tmp/json-after)
#   diff -r /tmp/json-before/normalised /tmp/json-after/normalised
#
# Each command runs as `python -m fixpt ...` (so PYTHONPATH / the current folder decide which fixpt
# runs); its stdout goes to OUTDIR/<name>.json, its stderr to OUTDIR/<name>.err and its exit code to
# OUTDIR/<name>.rc (a nonzero code is recorded, not fatal: check-contraction exits 1 on "not
# contractive"). Run folders, generated data and caches go under OUTDIR/work/. Everything runs on the
# CPU with one torch thread (FIXPT_EXAMPLES_THREADS), seeded, so two runs give the same numbers.
#
# Environment: PYTHON (default: the venv next to this script, else `python`), FIXPT_DATA (Cora and
# the PDB / AlphaFold files; default ../shared/data of the fixpt checkout), FIXPT_REPO (the checkout
# whose tests/colabfold_standin.py is used; default: the folder above the imported fixpt package). The
# presets are the built-in ones, by name.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
mkdir -p "$1"
OUT=$(cd "$1" && pwd -P)
W="$OUT/work"
rm -rf "$W" "$OUT/normalised"
rm -f "$OUT"/*.json "$OUT"/*.rc "$OUT"/*.err
mkdir -p "$W"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$HERE/../.venv/bin/python" ]]; then PYTHON="$HERE/../.venv/bin/python"; else PYTHON=python; fi
fi
REPO=${FIXPT_REPO:-$("$PYTHON" -c 'import fixpt, pathlib; print(pathlib.Path(fixpt.__file__).resolve().parents[1])')}
export FIXPT_DATA=${FIXPT_DATA:-$(cd "$REPO/../shared/data" 2>/dev/null && pwd -P || echo "$REPO/../shared/data")}
export XDG_CACHE_HOME="$W/cache"          # processed Planetoid files, cached weights: built fresh each run
THREADS=${FIXPT_EXAMPLES_THREADS:-1}
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
export PYTHONHASHSEED=0 COLUMNS=120 NO_COLOR=1
unset CUDA_VISIBLE_DEVICES || true

{
    echo "fixpt: $("$PYTHON" -c 'import fixpt; print(fixpt.__file__)')"
    echo "repo: $REPO"
    echo "python: $PYTHON"
    echo "FIXPT_DATA: $FIXPT_DATA"
    echo "threads: $THREADS"
} >"$OUT/run-info.txt"
cat "$OUT/run-info.txt" >&2
: >"$OUT/timings.txt"

START=$SECONDS
# run NAME ARGS...: `python -m fixpt ARGS` -> NAME.json (stdout), NAME.err, NAME.rc
run() {
    local name=$1 rc=0 t0=$SECONDS
    shift
    "$PYTHON" -m fixpt "$@" >"$OUT/$name.json" 2>"$OUT/$name.err" || rc=$?
    echo "$rc" >"$OUT/$name.rc"
    printf '%-28s rc=%s %4ds\n' "$name" "$rc" "$((SECONDS - t0))" | tee -a "$OUT/timings.txt" >&2
}

CPU=(--device cpu)
CSBM=(--csbm-nodes 200 --csbm-classes 3 --hidden 16)

# ---- graphs: the three frameworks on the generated CSBM graph (README: Models, Commands)
run train-gnn            train gnn "${CSBM[@]}" --epochs 5 --out "$W/gnn" --json "${CPU[@]}"
run train-itergnn        train itergnn "${CSBM[@]}" --epochs 5 --out "$W/itergnn" --json "${CPU[@]}"
run train-pign-sage-c    train pign --backbone sage --contractive "${CSBM[@]}" --epochs 5 --out "$W/sage-c" --json "${CPU[@]}"
run train-pign-gcn       train pign "${CSBM[@]}" --epochs 5 --out "$W/pign-gcn" --json "${CPU[@]}"
run train-pign-gat       train pign --backbone gat --gat-heads concat "${CSBM[@]}" --epochs 3 --max-iter 5 --out "$W/pign-gat" --json "${CPU[@]}"
run train-pign-paper     train pign --form paper "${CSBM[@]}" --epochs 5 --max-iter 7 --out "$W/pign-paper" --json "${CPU[@]}"
run train-pign-longrange train pign --dataset longrange --dropout 0 --tol 0 --max-iter 8 --hidden 16 --epochs 5 --out "$W/pign-longrange" --json "${CPU[@]}"
# Cora with 50 % drop-in noise, the paper form (README: Results, Table 5 with the authors' settings)
run train-pign-paper-cora train pign --form paper --dataset cora --noise 0.5 --epochs 3 --out "$W/pign-paper-cora" --json "${CPU[@]}"

# ---- iterate and check-contraction on the PIGN checkpoints
run iterate-sage-c            iterate "$W/sage-c/ckpt.pt" --max-iter 30 --tol 1e-6 --json "${CPU[@]}"
run iterate-sage-c-anderson   iterate "$W/sage-c/ckpt.pt" --solver anderson --max-iter 30 --tol 1e-6 --json "${CPU[@]}"
run check-contraction-sage-c  check-contraction "$W/sage-c/ckpt.pt" --samples 4 --iters 30 --json "${CPU[@]}"
run iterate-pign-gcn          iterate "$W/pign-gcn/ckpt.pt" --max-iter 20 --split val --json "${CPU[@]}"
run check-contraction-pign-gcn check-contraction "$W/pign-gcn/ckpt.pt" --samples 3 --iters 20 --json "${CPU[@]}"
run iterate-pign-paper        iterate "$W/pign-paper/ckpt.pt" --max-iter 20 --json "${CPU[@]}"
run check-contraction-pign-paper check-contraction "$W/pign-paper/ckpt.pt" --samples 3 --iters 20 --json "${CPU[@]}"
run iterate-itergnn           iterate "$W/itergnn/ckpt.pt" --max-iter 10 --json "${CPU[@]}"

# ---- transformers on a tiny generated Navier-Stokes set, and on masked digits
run data-navier-stokes  data navier-stokes --n-samples 12 --t-final 4 --resolution 16 --fine 16 --dt 1e-3 --out "$W/ns" --json "${CPU[@]}"
NS=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["path"])' "$OUT/data-navier-stokes.json" 2>/dev/null \
     || echo "$W/ns/missing.pt")     # the file the command wrote (a missing one makes the trainings fail, rc 2)
NSOPT=(--data-file "$NS" --in-frames 2 --out-frames 2 --epochs 3 --batch-size 4)
run train-vit           train vit --variant vit-small --n-iter 2 "${NSOPT[@]}" --out "$W/vit" --json "${CPU[@]}"
run iterate-vit         iterate "$W/vit/ckpt.pt" --max-iter 4 --json "${CPU[@]}"
run check-contraction-vit check-contraction "$W/vit/ckpt.pt" --samples 2 --iters 10 --json "${CPU[@]}"
run train-anie          train anie --heads 2 --blocks 1 --n-iter 2 "${NSOPT[@]}" --out "$W/anie" --json "${CPU[@]}"
run iterate-anie        iterate "$W/anie/ckpt.pt" --max-iter 4 --json "${CPU[@]}"
run check-contraction-anie check-contraction "$W/anie/ckpt.pt" --samples 2 --iters 10 --json "${CPU[@]}"
run train-vit-masked    train vit --task masked-pixels --patch 2 --n-iter 2 --epochs 1 --batch-size 64 --out "$W/vit-masked" --json "${CPU[@]}"
run iterate-vit-masked  iterate "$W/vit-masked/ckpt.pt" --max-iter 3 --json "${CPU[@]}"

# ---- DDPM on digits, tiny (the tests' settings), and its iteration and contraction views
run train-ddpm          train ddpm --timesteps 20 --max-steps 6 --batch-size 8 --warmup-steps 2 --ckpt-every 3 --log-every 1 \
                            --samples 16 --eval-timesteps 3 --out "$W/ddpm" --json "${CPU[@]}"
run iterate-ddpm        iterate "$W/ddpm/ckpt.pt" --steps 2,5,20 --samples 4 --out "$W/ddpm-grids" --json "${CPU[@]}"
run iterate-ddpm-ancestral iterate "$W/ddpm/ckpt.pt" --steps 2,5 --samples 4 --sampler ddpm --out "$W/ddpm-grids-ddpm" --json "${CPU[@]}"
run check-contraction-ddpm check-contraction "$W/ddpm/ckpt.pt" --t 19,10,1 --samples 3 --iters 20 --json "${CPU[@]}"

# ---- sweeps: the planned runs of the shipped presets, and a tiny real sweep with its report
run sweep-table5-dry-run       sweep table5 --out "$W/sweep-table5" --dry-run --json
run sweep-table5-paper-dry-run sweep table5-paper --seeds 2 --out "$W/sweep-table5-paper" --dry-run --json
run sweep-long-range-dry-run   sweep long-range --out "$W/sweep-long-range" --dry-run --json
run sweep-table5-tiny          sweep table5 --seeds 1 --set model=[gnn,pign] --set backbone=gcn \
                                   --set dataset=cora --set noise=0.0 --set epochs=3 --out "$W/sweep" --workers 1 --json "${CPU[@]}"
run sweep-table5-tiny-dry-run  sweep table5 --seeds 1 --set model=[gnn,pign] --set backbone=gcn \
                                   --set dataset=cora --set noise=0.0 --set epochs=3 --out "$W/sweep" --dry-run --json
run report-sweep               report "$W/sweep" --format json
run report-sweep-last-epoch    report "$W/sweep" --format json --protocol last-epoch --compare paper
run report-sweep-select        report "$W/sweep" --format json --select

# ---- AlphaFold recycling: ColabFold's stand-in (tests/colabfold_standin.py) on three real structures,
# and the real RfaH run read through the precomputed backend
mkdir -p "$W/bin"
printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$PYTHON" "$REPO/tests/colabfold_standin.py" >"$W/bin/colabfold_batch"
chmod +x "$W/bin/colabfold_batch"
RFAH="$FIXPT_DATA/af2/RfaH"
if "$PYTHON" - "$W" "$FIXPT_DATA" <<'PY'
import sys
from pathlib import Path
from fixpt.protein import read_chain
w, data = Path(sys.argv[1]), Path(sys.argv[2])
seq = lambda f: read_chain(f).sequence
(w / "targets.fasta").write_text("".join(f">{n} real sequence\n{seq(data / 'pdb' / f'{n}.pdb')}\n" for n in ("1CRN", "1UBQ", "1AKI")))
rfah = data / "af2" / "RfaH" / "RfaH_unrelaxed_rank_001_alphafold2_model_2_seed_003.r0.pdb"
(w / "rfah.fasta").write_text(f">RfaH\n{seq(rfah)}\n")
PY
then :; else echo "writing the FASTA files failed (the recycle commands below will fail)" >&2; fi
export STANDIN_STRUCTURES="$FIXPT_DATA/pdb" STANDIN_DIVERGE=1AKI
run recycle-run-standin   recycle run "$W/targets.fasta" --out "$W/af" --max-recycles 4 --models 1-2 --seeds 1 --colabfold "$W/bin/colabfold_batch" --json
run recycle-score-standin recycle score "$W/af" --reference "$FIXPT_DATA/pdb" --csv "$W/af-scores.csv" --json
run recycle-run-rfah      recycle run "$W/rfah.fasta" --out "$W/rfah" --backend precomputed --predictions "$RFAH" --json
run recycle-score-rfah    recycle score "$W/rfah" --reference "$RFAH/experimental/2oug_C.pdb" --json
run recycle-score-rfah-6c6s recycle score "$W/rfah" --reference "$RFAH/experimental/6c6s_D.pdb" --csv "$W/rfah-6c6s.csv" --json
run sweep-recycle         sweep recycle --out "$W/sweep-recycle" --set "fasta=$W/targets.fasta" \
                              --set "reference=$FIXPT_DATA/pdb" --set "target=[1CRN,1AKI]" --set max_recycles=3 --set models=1 \
                              --set seeds=1 --set "colabfold=$W/bin/colabfold_batch" --set model_type=auto --json
run report-sweep-recycle  report "$W/sweep-recycle" --format json


# ---- files the commands wrote: every checkpoint (all but its weights, which are summarised by shape and
# sums) and the tiny sweep's index, resolved configs and metrics
t0=$SECONDS rc=0
"$PYTHON" - "$W" >"$OUT/files-checkpoints.json" 2>"$OUT/files-checkpoints.err" <<'PY' || rc=$?
import json, sys
from pathlib import Path
import torch
root = Path(sys.argv[1])
out = {}
for f in sorted(root.rglob("ckpt.pt")):
    ck = torch.load(f, map_location="cpu", weights_only=True)
    entry = {k: v for k, v in ck.items() if k != "state_dict"}
    entry["state_dict"] = {name: [str(t.dtype), list(t.shape), t.double().sum().item(), t.double().abs().sum().item()]
                           for name, t in ck["state_dict"].items()}
    out[str(f.relative_to(root))] = entry
json.dump(out, sys.stdout, default=str)
PY
echo "$rc" >"$OUT/files-checkpoints.rc"
printf '%-28s rc=%s %4ds\n' files-checkpoints "$rc" "$((SECONDS - t0))" | tee -a "$OUT/timings.txt" >&2
t0=$SECONDS rc=0
"$PYTHON" - "$W/sweep" >"$OUT/files-sweep.json" 2>"$OUT/files-sweep.err" <<'PY' || rc=$?
import json, sys
from pathlib import Path
root = Path(sys.argv[1])
json.dump({str(f.relative_to(root)): json.loads(f.read_text()) for f in sorted(root.rglob("*.json"))}, sys.stdout)
PY
echo "$rc" >"$OUT/files-sweep.rc"
printf '%-28s rc=%s %4ds\n' files-sweep "$rc" "$((SECONDS - t0))" | tee -a "$OUT/timings.txt" >&2

echo "total $((SECONDS - START)) s" | tee -a "$OUT/timings.txt" >&2
