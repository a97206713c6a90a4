"""``fixpt recycle run`` and ``fixpt recycle score``: AlphaFold recycles as a Picard iteration. Light at import
(the runner and the scores are imported inside the commands): ``fixpt --help`` imports it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..cli.console import JsonOpt, err, out, print_json, user_errors
from ..errors import FixptError
from ..registry import register_commands

recycle_app = typer.Typer(no_args_is_help=True, help="AlphaFold recycling: run ColabFold with every recycle saved, and score the recycles.")
register_commands(lambda app: app.add_typer(recycle_app, name="recycle"))


@recycle_app.command("run")
@user_errors
def run(
    fasta: Annotated[Path, typer.Argument(help="targets: one FASTA record per target (':' joins the chains of a complex)")],
    out_dir: Annotated[Path, typer.Option("--out", help="results folder: one subfolder per target")],
    max_recycles: Annotated[int, typer.Option("--max-recycles", help="recycles after the first pass (structures r0..rN)")] = 20,
    models: Annotated[str, typer.Option("--models", help="AlphaFold models: 1-5 or a list 1,3")] = "1-5",
    seeds: Annotated[int, typer.Option("--seeds", help="seeds per model")] = 5,
    random_seed: Annotated[int, typer.Option("--random-seed", help="the first seed")] = 0,
    model_type: Annotated[str, typer.Option("--model-type", help="ColabFold --model-type (auto, alphafold2_ptm, alphafold2_multimer_v3, ...)")] = "auto",
    backend: Annotated[str, typer.Option("--backend", help="colabfold: run colabfold_batch; precomputed: link the results in --predictions")] = "colabfold",
    predictions: Annotated[Optional[Path], typer.Option("--predictions", help="precomputed backend: a ColabFold results folder made elsewhere")] = None,
    colabfold: Annotated[str, typer.Option("--colabfold", help="the colabfold_batch executable (a name on PATH or a path)")] = "colabfold_batch",
    as_json: JsonOpt = False,
) -> None:
    """Predict every target with every recycle saved (resumable: finished targets are skipped)."""
    from ..config import from_dict
    from ..training.rundir import writable_folder
    from .runner import RecycleRunConfig, link_precomputed, read_fasta, run_colabfold

    targets = [name for name, _ in read_fasta(fasta)]
    writable_folder(out_dir)
    if backend == "precomputed":
        if predictions is None:
            raise FixptError("--backend precomputed needs --predictions DIR (a ColabFold results folder)")
        summary = link_precomputed(predictions, out_dir, targets)
    elif backend == "colabfold":
        cfg = from_dict(RecycleRunConfig, {"max_recycles": max_recycles, "models": models, "seeds": seeds,
                                           "model_type": model_type, "colabfold": colabfold}, what="recycle run")

        def on_target(target: str, state: str) -> None:
            if not as_json:
                err.print(f"{target}: {state}", highlight=False, markup=False)

        summary = run_colabfold(fasta, out_dir, cfg, seed=random_seed, on_target=on_target)
    else:
        raise FixptError(f"unknown --backend {backend!r}; use colabfold or precomputed")
    if as_json:
        print_json({"out": str(out_dir), **summary})
    else:
        failed = "".join(f"\n  {t}: {why}" for t, why in summary["failed"].items())
        out.print(f"{len(summary['finished'])} finished, {len(summary['skipped'])} skipped (already done), "
                  f"{len(summary['failed'])} failed{failed}\nnext: fixpt recycle score {out_dir} --reference REF", highlight=False,
                  markup=False)
    if summary["failed"]:
        raise typer.Exit(1)


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


@recycle_app.command("score")
@user_errors
def score(
    folder: Annotated[Path, typer.Argument(help="a ColabFold results folder (recycle run's --out, or one made elsewhere)")],
    reference: Annotated[Path, typer.Option("--reference", help="the experimental structure (PDB/mmCIF), or a folder of {target}.pdb")],
    chain: Annotated[Optional[str], typer.Option("--chain", help="the reference's chain \\[default: its first]")] = None,
    align: Annotated[bool, typer.Option("--align", help="match residues by sequence alignment, not by residue number")] = False,
    window: Annotated[int, typer.Option("--window", help="recycles over which a worsening score flags a trajectory")] = 2,
    rmsd_tol: Annotated[float, typer.Option("--rmsd-tol", help="CA-RMSD rise (A) that counts as worsening")] = 0.25,
    gdt_tol: Annotated[float, typer.Option("--gdt-tol", help="GDT-TS drop (points) that counts as worsening")] = 1.0,
    csv_path: Annotated[Optional[Path], typer.Option("--csv", help="where the per-recycle table goes \\[default: FOLDER/recycle_scores.csv]")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Score every target x model x seed x recycle: CA-RMSD, GDT-TS/HA, TM-score (fixed residue correspondence, and TM-align's
    with tmtools), lDDT (no stereochemistry checks), pLDDT, residuals; flag non-convergence (exit 1 if any trajectory is
    flagged)."""
    from rich.progress import Progress

    from .score import SCORES_CSV, ScoreOptions, score_folder, summarise, write_csv

    from ..config import from_dict
    from .sweep_point import RecycleScoreConfig

    from_dict(RecycleScoreConfig, {"window": window, "rmsd_tol": rmsd_tol, "gdt_tol": gdt_tol}, what="option")  # the bounds
    opts = ScoreOptions(chain=chain, match="align" if align else "number", window=window, rmsd_tol=rmsd_tol, gdt_tol=gdt_tol)
    with Progress(console=err, disable=not err.is_terminal or as_json, transient=True) as progress:
        bar = progress.add_task("scoring recycles", total=None)
        rows = score_folder(folder, reference, opts, on_trajectory=lambda done, total: progress.update(bar, completed=done, total=total))
    csv_path = csv_path or folder / SCORES_CSV
    write_csv(csv_path, rows)
    summary = summarise(rows)
    if as_json:
        print_json(rows)  # a list of rows, one per target x model x seed x recycle
    else:
        _show_summary(summary, reference, csv_path)
    if any(s["flagged"] for s in summary):
        raise typer.Exit(1)  # the check failed: a trajectory worsens, stalls or ends elsewhere than the reference


def _show_summary(summary: list[dict], reference: Path, csv_path: Path) -> None:
    """The per-trajectory table, the flagged trajectories and where the per-recycle scores went."""
    from ..protein.tmalign import INSTALL_HINT as TM_ALIGN_HINT

    table = Table(title=escape(f"recycles against {reference.name}"), box=box.SIMPLE_HEAD, padding=(0, 1))
    for col in ("target", "model", "seed", "N", "matched", "CA-RMSD r0->rN", "GDT-TS r0->rN", "TM fixed-match rN", "TM-align rN",
                "residual", "ratio", "verdict"):
        table.add_column(col, no_wrap=col != "target")
    for s in summary:
        table.add_row(escape(s["target"]), str(s["model"]), str(s["seed"]), str(s["recycles"]), f"{s['n_matched']}/{s['n_ref']}",
                      f"{s['rmsd_first']:.2f}->{s['rmsd_last']:.2f}", f"{s['gdt_ts_first']:.1f}->{s['gdt_ts_last']:.1f}",
                      f"{s['tm_fixed_last']:.3f}", _fmt(s["tm_align_last"], ".3f"), _fmt(s["residual_last"], ".3f"), _fmt(s["ratio_last"], ".2f"),
                      s["verdict"].split(":")[0].split(" (")[0].replace(" from the reference", ""), style="red" if s["flagged"] else None)
    # a log file or pipe gets the whole table; rich would squeeze it into 80 columns
    (out if out.is_terminal else Console(width=160)).print(table)
    for s in summary:
        if s["flagged"]:
            out.print(f"flagged: {s['target']} model {s['model']} seed {s['seed']}: {s['verdict']}", highlight=False, soft_wrap=True,
                      markup=False)
    if any(s["tm_align_last"] is None for s in summary):
        out.print(f"TM-align rN: not computed, tmtools is not installed ({TM_ALIGN_HINT})", highlight=False, soft_wrap=True, markup=False)
    flagged = sum(s["flagged"] for s in summary)
    out.print(f"{flagged} of {len(summary)} trajectories flagged; per-recycle scores in {csv_path}", highlight=False, soft_wrap=True,
              markup=False)
