"""``fixpt report`` for ``alphafold-recycle`` sweeps: a per-target table and the paper's figures.

The table has one row per target, mean +- sample std over its trajectories (models x seeds): the
scores at recycle 0 and at the last recycle, the last residual ratio, and how many trajectories
were flagged. "TM fixed-match" is fixpt's TM-score with the residue correspondence fixed by the
matching, "TM-align" TM-align's (``-`` where tmtools was not installed), "lDDT no-stereochecks"
the all-atom lDDT without the stereochemistry checks (:mod:`fixpt.protein.scores`). The figures (paper, Figures 3-5), from each target's mean curve over its
trajectories, min-max normalised per target so that targets of different difficulty share an
axis (1 = the target's best GDT-TS, resp. its worst RMSD):

- ``recycle_per_target.png``: normalised GDT-TS and CA-RMSD against the recycle, one line per
  target (Figures 4, 5);
- ``recycle_mean.png``: their mean over targets with +-1 std bands (Figure 3);
- ``recycle_residuals.png``: the Picard residual (CA-RMSD between recycles k and k+1) per target,
  log scale.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from ..errors import FixptError
from ..plots import pyplot, save_figure
from ..registry import register_layout
from ..report import Cell, FinishedRun, Layout, Note, NumberFormat, Options, Row, SweepRuns, Table

COLUMNS = (("gdt_ts", 0, "GDT-TS r0"), ("gdt_ts", -1, "GDT-TS last"), ("rmsd", 0, "CA-RMSD r0 (A)"),
           ("rmsd", -1, "CA-RMSD last (A)"), ("tm_fixed", -1, "TM fixed-match last"), ("tm_align", -1, "TM-align last"),
           ("lddt_no_stereochecks", -1, "lDDT no-stereochecks last"), ("plddt", -1, "pLDDT last"),
           ("contraction_ratio", -2, "last residual ratio"))
# runs written before the scores were named precisely: their tm_score is today's tm_fixed; their lddt
# (no symmetric-atom swaps) is not today's lddt_no_stereochecks and is left out
OLD_NAMES = {"tm_fixed": "tm_score"}


@register_layout("recycle")
class Recycle(Layout):
    paper_absent = "--compare paper: the paper shows its recycling results as figures only; use --plot"

    def table(self, sweep: SweepRuns, options: Options) -> Table:
        return recycle_table(sweep.runs)

    def figures(self, sweep: SweepRuns, table: Table, folder: Path) -> list[Path]:
        return plot(sweep.runs, folder)


def trajectories(runs: list[FinishedRun]) -> list[dict]:
    out = [t for r in runs for t in r.metrics.get("trajectories", [])]
    if not out:
        raise FixptError("these runs hold no recycle trajectories; the recycle layout is for alphafold-recycle sweeps")
    return out


def _at(trajectory: dict, key: str, at: int) -> float | None:
    """The score ``key`` at recycle ``at`` (negative: from the end) of one trajectory; None where it was
    not computed (TM-align without tmtools, a run that predates the score, no such recycle)."""
    curve = trajectory.get(key, trajectory.get(OLD_NAMES.get(key, ""), []))
    return None if len(curve) < abs(at) or curve[at] is None else float(curve[at])


def recycle_table(runs: list[FinishedRun]) -> Table:
    """One row per target: each score's mean +- std over the target's trajectories, and how many were flagged."""
    by_target: dict[str, list[dict]] = {}
    for t in trajectories(runs):
        by_target.setdefault(t["target"], []).append(t)
    rows, flagged = [], []
    for target in sorted(by_target):
        ts = by_target[target]
        n, k = len(ts), sum(bool(t["flagged"]) for t in ts)
        cells = {label: Cell([v for t in ts if (v := _at(t, key, at)) is not None], runs=n) for key, at, label in COLUMNS}
        rows.append(Row(target, cells, text={"trajectories": str(n), "flagged": f"{k} of {n}"}, fields={"target": target},
                        tail={"flagged": k}))
        flagged += [f"- {target}: model {t['model']} seed {t['seed']}: {t['verdict']}" for t in ts if t["flagged"]]
    notes = [Note(["Flagged (not converging):"] + flagged, latex=False)] if flagged else []
    return Table(["trajectories"] + [label for _, _, label in COLUMNS] + ["flagged"], rows, NumberFormat(decimals=2, spread_of_one=True),
                 corner="target", notes=notes)


def _target_means(runs: list[FinishedRun], key: str) -> dict[str, np.ndarray]:
    """Each target's mean curve of ``key`` over its trajectories (NaN where a recycle is missing)."""
    by_target: dict[str, list] = {}
    for t in trajectories(runs):
        by_target.setdefault(t["target"], []).append([math.nan if v is None else v for v in t[key]])
    out = {}
    for target, curves in sorted(by_target.items()):
        n = max(len(c) for c in curves)
        padded = np.array([c + [math.nan] * (n - len(c)) for c in curves], dtype=float)
        with warnings.catch_warnings():  # an all-NaN column (the last recycle has no residual) stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            out[target] = np.nanmean(padded, axis=0)
    return out


def _minmax(curve: np.ndarray) -> np.ndarray:
    lo, hi = np.nanmin(curve), np.nanmax(curve)
    return np.zeros_like(curve) if hi - lo < 1e-12 else (curve - lo) / (hi - lo)


def plot(runs: list[FinishedRun], folder: Path) -> list[Path]:
    plt = pyplot()
    gdt, rmsd = _target_means(runs, "gdt_ts"), _target_means(runs, "rmsd")
    written = []

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, curves, name in ((axes[0], gdt, "GDT-TS"), (axes[1], rmsd, "CA-RMSD")):
        for target, curve in curves.items():
            ax.plot(np.arange(len(curve)), _minmax(curve), marker="o", ms=3, label=target)
        ax.set(xlabel="recycle", ylabel=f"{name}, min-max normalised per target", title=f"{name} per target")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    written.append(save_figure(fig, folder / "recycle_per_target.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for curves, name, color in ((gdt, "GDT-TS", "tab:blue"), (rmsd, "CA-RMSD", "tab:red")):
        n = max(len(c) for c in curves.values())
        stack = np.array([np.pad(_minmax(c), (0, n - len(c)), constant_values=np.nan) for c in curves.values()])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, std = np.nanmean(stack, 0), np.nanstd(stack, 0)
        ax.plot(np.arange(n), mean, marker="o", ms=3, color=color, label=f"{name} (mean of {len(curves)} targets)")
        ax.fill_between(np.arange(n), mean - std, mean + std, color=color, alpha=0.2)
    ax.set(xlabel="recycle", ylabel="min-max normalised score", title="mean over targets")
    ax.grid(alpha=0.3)
    ax.legend()
    written.append(save_figure(fig, folder / "recycle_mean.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for target, curve in _target_means(runs, "residual_rmsd").items():
        k = np.arange(len(curve))
        ok = np.isfinite(curve) & (curve > 0)
        ax.semilogy(k[ok], curve[ok], marker="o", ms=3, label=target)
    ax.set(xlabel="recycle k", ylabel=r"CA-RMSD($x_k$, $x_{k+1}$) (A)", title="Picard residual between recycles")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    written.append(save_figure(fig, folder / "recycle_residuals.png"))
    return written
