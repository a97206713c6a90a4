"""A stand-in for ColabFold's ``colabfold_batch``, for testing the recycle runner without AlphaFold.

It takes ColabFold's arguments and writes ColabFold's files under ColabFold's names, so the
runner cannot tell it apart. Its "predictions" are real experimental coordinates: the job named
``1UBQ`` gets ``$STANDIN_STRUCTURES/1UBQ.pdb``, every residue displaced rigidly by a fixed random
vector scaled by s_k at recycle k:

- converging jobs: s_k = 3 * 0.6**k, a Picard iteration with contraction ratio 0.6 whose fixed
  point is the experimental structure;
- jobs named in ``$STANDIN_DIVERGE`` (comma-separated): s_k = 0.5 * 1.5**k, moving away.

pLDDT (the B-factor column) is 95 - 8 s_k. Each call appends its arguments to
``$STANDIN_CALLS`` when that is set, so tests can count calls.
"""

import argparse
import json
import os
import sys
import zlib
from pathlib import Path

import gemmi
import numpy as np


def parse_args(argv):
    p = argparse.ArgumentParser(prog="colabfold_batch")
    p.add_argument("input")
    p.add_argument("results")
    p.add_argument("--num-recycle", type=int, default=3)
    p.add_argument("--save-recycles", action="store_true")
    p.add_argument("--num-models", type=int, default=5, choices=[1, 2, 3, 4, 5])
    p.add_argument("--model-order", default="1,2,3,4,5")
    p.add_argument("--num-seeds", type=int, default=1)
    p.add_argument("--random-seed", type=int, default=0)
    p.add_argument("--model-type", default="auto")
    p.add_argument("--recycle-early-stop-tolerance", type=float, default=None)
    return p.parse_args(argv)


def read_fasta(path):
    jobs, name = [], None
    for line in Path(path).read_text().splitlines():
        if line.startswith(">"):
            name = line[1:].split()[0]
            jobs.append(name)
    return jobs


def structure_with(ref, shift, plddt):
    st = ref.clone()
    for res_index, res in enumerate(st[0][0]):
        for atom in res:
            atom.pos = gemmi.Position(*(np.array(atom.pos.tolist()) + shift[res_index]))
            atom.b_iso = plddt
    return st


def main(argv):
    args = parse_args(argv)
    if os.environ.get("STANDIN_CALLS"):
        with open(os.environ["STANDIN_CALLS"], "a") as fh:
            fh.write(" ".join(argv) + "\n")
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    diverge = set(filter(None, os.environ.get("STANDIN_DIVERGE", "").split(",")))
    model_type = "alphafold2_ptm" if args.model_type == "auto" else args.model_type
    models = [int(m) for m in args.model_order.split(",")][: args.num_models]
    log = open(out / "log.txt", "a")
    for job in read_fasta(args.input):
        ref = gemmi.read_structure(str(Path(os.environ["STANDIN_STRUCTURES"]) / f"{job}.pdb"))
        ref.remove_ligands_and_waters()
        ref.remove_hydrogens()
        ref.remove_alternative_conformations()
        del ref[1:]
        while len(ref[0]) > 1:
            del ref[0][1]
        n = len(ref[0][0])
        finals = []
        for model in models:
            for seed in range(args.random_seed, args.random_seed + args.num_seeds):
                rng = np.random.default_rng(zlib.crc32(f"{job}-{model}-{seed}".encode()))
                direction = rng.normal(size=(n, 3))
                tag = f"{model_type}_model_{model}_seed_{seed:03d}"
                prev = None
                for k in range(args.num_recycle + 1):
                    scale = 0.5 * 1.5 ** k if job in diverge else 3.0 * 0.6 ** k
                    plddt = max(20.0, 95.0 - 8.0 * scale)
                    st = structure_with(ref, scale * direction, plddt)
                    st.write_pdb(str(out / f"{job}_unrelaxed_{tag}.r{k}.pdb"))
                    tol = "" if prev is None else f" tol={np.sqrt(((prev - scale) ** 2) * (direction ** 2).sum(1).mean()):.3g}"
                    log.write(f"2026-11-27 00:00:00,000 {tag} recycle={k} pLDDT={plddt:.3g}{tol}\n")
                    prev = scale
                finals.append((plddt, model, seed, tag))
        # rank by pLDDT: rename the recycle files, write the final models and scores, as ColabFold does
        for rank, (plddt, model, seed, tag) in enumerate(sorted(finals, key=lambda f: -f[0]), start=1):
            for k in range(args.num_recycle + 1):
                src = out / f"{job}_unrelaxed_{tag}.r{k}.pdb"
                src.rename(out / f"{job}_unrelaxed_rank_{rank:03d}_{tag}.r{k}.pdb")
            last = out / f"{job}_unrelaxed_rank_{rank:03d}_{tag}.r{args.num_recycle}.pdb"
            (out / f"{job}_unrelaxed_rank_{rank:03d}_{tag}.pdb").write_bytes(last.read_bytes())
            (out / f"{job}_scores_rank_{rank:03d}_{tag}.json").write_text(json.dumps({"plddt": [plddt] * n, "ptm": 0.9}))
        (out / f"{job}.done.txt").write_text("")
    log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
