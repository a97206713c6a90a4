"""``alphafold-recycle`` as a registered model: one sweep run predicts (or reads) and scores a target.

The sweep keys are the fields of three configs, as for the trained models:

- model (:class:`RecycleModelConfig`): ``backend`` (``colabfold`` runs ``colabfold_batch``;
  ``precomputed`` reads the results folder ``predictions``), ``max_recycles``, ``models``,
  ``seeds``, ``model_type``, ``colabfold`` (the executable);
- data (:class:`RecycleDataConfig`): ``fasta``, ``target`` (one FASTA record or job name; empty:
  all), ``reference`` (a structure file or a folder of ``{target}.pdb``), ``chain``, ``match``;
- run (:class:`RecycleScoreConfig`): ``seed`` (ColabFold's first ``--random-seed``; the
  precomputed backend reads whatever seeds the folder holds) and the verdict's thresholds.

A run writes ``predictions/`` (colabfold backend), ``recycle_scores.csv`` and ``metrics.json``
with every trajectory's per-recycle curves; ``test_gdt_ts`` is the mean final GDT-TS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FixptError
from ..protein.matching import MATCH_MODES
from .runner import RecycleRunConfig, run_colabfold
from .score import SCORES_CSV, ScoreOptions, score_folder, trajectories_of, write_csv

CURVES = ("rmsd", "gdt_ts", "gdt_ha", "tm_fixed", "tm_align", "lddt_no_stereochecks", "lddt_ca", "plddt", "residual_rmsd",
          "residual_tol", "contraction_ratio")  # fixpt.protein.scores defines each


@dataclass
class RecycleModelConfig(RecycleRunConfig):
    backend: str = field(default="colabfold", metadata={"help": "colabfold (run colabfold_batch) or precomputed (read --predictions)",
                                                         "choices": ("colabfold", "precomputed")})
    predictions: str = field(default="", metadata={"help": "precomputed backend: a ColabFold results folder"})


@dataclass
class RecycleDataConfig:
    fasta: str = field(default="", metadata={"help": "FASTA of the targets (colabfold backend)"})
    target: str = field(default="", metadata={"help": "one target (FASTA record or job name); empty: all"})
    reference: str = field(default="", metadata={"help": "reference structure file, or a folder of {target}.pdb"})
    chain: str = field(default="", metadata={"help": "the reference's chain; empty: its first"})
    match: str = field(default="number", metadata={"help": "residue matching", "choices": MATCH_MODES})


@dataclass
class RecycleScoreConfig:
    seed: int = field(default=0, metadata={"min": 0, "help": "ColabFold's first --random-seed"})
    window: int = field(default=2, metadata={"min": 1, "help": "recycles over which a worsening score flags a trajectory"})
    rmsd_tol: float = field(default=0.25, metadata={"min": 0, "help": "CA-RMSD rise (A) that counts as worsening"})
    gdt_tol: float = field(default=1.0, metadata={"min": 0, "help": "GDT-TS drop (points) that counts as worsening"})
    converged_below: float = field(default=0.1, metadata={"min": 0, "help": "residual (A) below which a trajectory is at rest"})


def run_point(model: RecycleModelConfig, data: RecycleDataConfig, run: RecycleScoreConfig, out: Path) -> dict:
    """Predict (or read) the recycles of ``data.target`` and score them; returns the metrics."""
    start = time.perf_counter()
    if not data.reference:
        raise FixptError("alphafold-recycle needs a reference structure: set reference (a file or a folder of {target}.pdb)")
    if model.backend == "colabfold":
        if not data.fasta:
            raise FixptError("the colabfold backend needs fasta (the targets' sequences)")
        targets = [data.target] if data.target else None
        result = run_colabfold(data.fasta, out / "predictions", model, seed=run.seed, targets=targets)
        if result["failed"]:
            raise FixptError("; ".join(f"{t}: {why}" for t, why in result["failed"].items()))
        folder = out / "predictions"
        wanted = set(result["finished"] + result["skipped"])  # every target asked for, now predicted
    else:
        if not model.predictions:
            raise FixptError("the precomputed backend needs predictions (a ColabFold results folder)")
        folder = Path(model.predictions)
        wanted = {data.target} if data.target else None
    opts = ScoreOptions(chain=data.chain or None, match=data.match, window=run.window, rmsd_tol=run.rmsd_tol,
                        gdt_tol=run.gdt_tol, converged_below=run.converged_below)
    rows = score_folder(folder, data.reference, opts, targets=wanted)
    write_csv(out / SCORES_CSV, rows)
    curves = [{"target": t[0]["target"], "model": t[0]["model"], "seed": t[0]["seed"], **{c: [r[c] for r in t] for c in CURVES},
               "verdict": t[-1]["verdict"], "flagged": t[-1]["flagged"]} for t in trajectories_of(rows)]
    final = [c["gdt_ts"][-1] for c in curves]
    return {"test_gdt_ts": sum(final) / len(final) / 100.0, "trajectories": curves,
            "flagged": sum(c["flagged"] for c in curves), "seconds": time.perf_counter() - start}
