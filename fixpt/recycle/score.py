"""Scoring recycles: every structure against the reference, and each recycle against the next.

AlphaFold's recycling is a fixed-point iteration :math:`x_{k+1} = F(x_k)` on structures. With the
Picard residual :math:`r_k = d(x_k, x_{k+1})` (CA-RMSD after superposition), the empirical
contraction ratio is :math:`\\kappa_k = r_k / r_{k-1}`, and if F contracts with constant
:math:`\\kappa < 1` the distance of :math:`x_{k+1}` to the fixed point is at most
:math:`\\kappa / (1 - \\kappa)\\, r_k` (the a-posteriori bound of Banach's theorem; with the
empirical :math:`\\kappa_k` in place of the unknown constant it is an estimate, not a proof).

A trajectory is **flagged** when it does not converge towards the reference:

- *not contracting*: its last ratio :math:`\\kappa_{N-1} \\ge 1` while the residual is still above
  ``converged_below`` (a trajectory already at rest jitters at ratios near 1 and is not flagged);
- *moving away from the reference*: over the last ``window`` recycles the CA-RMSD rose by more than
  ``rmsd_tol`` A or GDT-TS fell by more than ``gdt_tol`` points.

A trajectory that contracts but moves away from the reference converges to *another* structure:
against a wrong-fold reference this is what the scores show.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..checkpoint import atomic_write
from ..errors import FixptError
from ..protein import Chain, compare, read_chain, residual
from ..protein.scores import SAME_PROTEIN_IDENTITY, TM_FOLD_THRESHOLD
from .layout import Trajectory, find_trajectories

SCORES = ("rmsd", "gdt_ts", "gdt_ha", "tm_fixed", "tm_align", "lddt_no_stereochecks", "lddt_ca", "plddt")  # fixpt.protein.compare
COLUMNS = ("target", "model", "seed", "recycle", *SCORES,
           "residual_rmsd", "residual_tol", "contraction_ratio", "error_bound", "n_matched", "n_ref", "identity", "reference",
           "verdict", "flagged")
SCORES_CSV = "recycle_scores.csv"
REFERENCE_SUFFIXES = (".pdb", ".cif", ".mmcif", ".ent", ".pdb.gz", ".cif.gz")


@dataclass
class ScoreOptions:
    chain: str | None = None  # the reference's chain (None: its first chain)
    match: str = "number"  # residue matching: number or align
    window: int = 2  # recycles over which a worsening score is looked for
    rmsd_tol: float = 0.25  # A
    gdt_tol: float = 1.0  # GDT-TS points
    converged_below: float = 0.1  # A: residuals below this count as converged


def reference_for(reference: Path, target: str) -> Path:
    """``reference`` itself if it is a file, else ``reference/{target}.pdb`` (or .cif, .ent, ...)."""
    if reference.is_file():
        return reference
    if not reference.is_dir():
        raise FixptError(f"reference {reference} does not exist; give a PDB/mmCIF file or a folder of {{target}}.pdb files")
    for suffix in REFERENCE_SUFFIXES:
        for name in (target + suffix, target.lower() + suffix, target.upper() + suffix):
            if (reference / name).is_file():
                return reference / name
    raise FixptError(f"no reference structure for target {target!r} in {reference}: expected {target}.pdb or {target}.cif")


def score_trajectory(traj: Trajectory, ref: Chain, opts: ScoreOptions) -> list[dict]:
    """One row per recycle: scores against the reference chain, residual to the next recycle, ratio and bound."""
    chains = [read_chain(traj.recycles[k]) for k in sorted(traj.recycles)]
    rows = []
    for k, chain in enumerate(chains):
        s = compare(chain, ref, opts.match)
        step = residual(chain, chains[k + 1]) if k + 1 < len(chains) else {"residual_rmsd": None, "residual_tol": None}
        rows.append({"target": traj.target, "model": traj.model, "seed": traj.seed, "recycle": k, **{c: s[c] for c in SCORES}, **step,
            "contraction_ratio": None, "error_bound": None, "n_matched": s["n_matched"], "n_ref": s["n_ref"], "identity": s["identity"],
            "reference": Path(ref.source).name})
    for k in range(1, len(rows) - 1):
        prev, curr = rows[k - 1]["residual_rmsd"], rows[k]["residual_rmsd"]
        if prev > 0:
            ratio = curr / prev
            rows[k]["contraction_ratio"] = ratio
            rows[k]["error_bound"] = ratio / (1 - ratio) * curr if ratio < 1 else None
    verdict, flagged = assess(rows, opts)
    for row in rows:
        row["verdict"], row["flagged"] = verdict, flagged
    return rows


def assess(rows: list[dict], opts: ScoreOptions) -> tuple[str, bool]:
    """The verdict on one trajectory's rows (see the module docstring) and whether it is flagged."""
    last = len(rows) - 1
    notes = []
    if rows[last]["identity"] < SAME_PROTEIN_IDENTITY:
        return (f"wrong reference? only {rows[last]['identity']:.0%} of the {rows[last]['n_matched']} matched residues are the "
                f"same amino acid (the reference {rows[last]['reference']} looks like another protein; or try --align)"), True
    name, tm = fold_tm_score(rows[last])
    if tm < TM_FOLD_THRESHOLD:
        notes.append(f"different fold from the reference ({name} {tm:.2f} < {TM_FOLD_THRESHOLD})")
    ratios = [(r["contraction_ratio"], r["residual_rmsd"]) for r in rows if r["contraction_ratio"] is not None]
    if ratios and ratios[-1][0] >= 1 and ratios[-1][1] >= opts.converged_below:
        verdict = (f"not contracting: residual ratio {ratios[-1][0]:.2f} >= 1 at recycle {last - 1} "
                   f"(residual {ratios[-1][1]:.2f} A)")
        return "; ".join([verdict] + notes), True
    w = min(opts.window, last)
    a, b = rows[last - w], rows[last]
    if w > 0 and (b["rmsd"] - a["rmsd"] > opts.rmsd_tol or a["gdt_ts"] - b["gdt_ts"] > opts.gdt_tol):
        verdict = (f"moving away from the reference: over recycles {last - w}-{last} CA-RMSD {a['rmsd']:.2f} -> {b['rmsd']:.2f} A, "
                   f"GDT-TS {a['gdt_ts']:.1f} -> {b['gdt_ts']:.1f}")
        if ratios and ratios[-1][0] < 1:
            verdict += f", while the residual contracts (ratio {ratios[-1][0]:.2f}): it converges to another structure"
        return "; ".join([verdict] + notes), True
    verdict = "converging" if not ratios else f"converging (last residual ratio {ratios[-1][0]:.2f})"
    return "; ".join([verdict] + notes), False


def fold_tm_score(row: dict) -> tuple[str, float]:
    """The TM-score the fold verdict reads, and its name: TM-align's where it was computed (the
    score the 0.5 fold threshold was set for), else the one with the fixed residue correspondence."""
    if row["tm_align"] is not None:
        return "TM-align TM-score", row["tm_align"]
    return "TM-score with fixed residue correspondence", row["tm_fixed"]


def score_folder(folder: str | Path, reference: str | Path, opts: ScoreOptions | None = None, *,
                 targets: set[str] | None = None, on_trajectory: Callable[[int, int], None] | None = None) -> list[dict]:
    """The rows of every trajectory in ``folder`` (of ``targets`` only, if given), trajectory by trajectory;
    ``on_trajectory(done, total)`` follows the progress."""
    opts = opts or ScoreOptions()
    folder, reference = Path(folder), Path(reference)
    trajectories = [t for t in find_trajectories(folder) if targets is None or t.target in targets]
    if not trajectories:
        raise FixptError(f"no recycle files for target(s) {', '.join(sorted(targets or []))} in {folder}")
    # every reference is read (and its chain checked) once, before the long work
    paths = {t.target: reference_for(reference, t.target) for t in trajectories}
    chains = {p: read_chain(p, opts.chain) for p in set(paths.values())}
    rows: list[dict] = []
    for i, traj in enumerate(trajectories, 1):
        rows += score_trajectory(traj, chains[paths[traj.target]], opts)
        if on_trajectory is not None:
            on_trajectory(i, len(trajectories))
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in COLUMNS})
    try:
        atomic_write(path, lambda tmp: Path(tmp).write_text(buf.getvalue()))
    except OSError as e:
        raise FixptError(f"cannot write {path} ({e.strerror}); choose another file with --csv PATH") from None


def trajectories_of(rows: list[dict]) -> list[list[dict]]:
    """The rows grouped by trajectory (target, model, seed), in order."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["target"], row["model"], row["seed"]), []).append(row)
    return list(groups.values())


def summarise(rows: list[dict]) -> list[dict]:
    """One line per trajectory: first and last scores, last residual and ratio, the verdict."""
    out = []
    for traj in trajectories_of(rows):
        first, last = traj[0], traj[-1]
        residuals = [r["residual_rmsd"] for r in traj if r["residual_rmsd"] is not None]
        ratios = [r["contraction_ratio"] for r in traj if r["contraction_ratio"] is not None]
        out.append({"target": first["target"], "model": first["model"], "seed": first["seed"], "recycles": last["recycle"],
                    "rmsd_first": first["rmsd"], "rmsd_last": last["rmsd"], "gdt_ts_first": first["gdt_ts"],
                    "gdt_ts_last": last["gdt_ts"], "tm_fixed_last": last["tm_fixed"], "tm_align_last": last["tm_align"],
                    "n_matched": last["n_matched"],
                    "n_ref": last["n_ref"],
                    "residual_last": residuals[-1] if residuals else None, "ratio_last": ratios[-1] if ratios else None,
                    "verdict": last["verdict"], "flagged": last["flagged"]})
    return out
