"""``fixpt report`` for ``alphafold-recycle`` sweeps: a per-target table and the paper's figures.

The table has one row per target, mean +- sample std over its trajectories (models x seeds): the
scores at recycle 0 and at the last recycle, the last residual ratio, and how many trajectories
were flagged. The figures (paper, Figures 3-5), from each target's mean curve over its
trajectories, min-max normalised per target so that targets of different difficulty share an
axis (1 = the target's best GDT-TS, resp. its worst RMSD):

- ``recycle_per_target.png``: normalised GDT-TS and CA-RMSD against the recycle, one line per
  target (Figures 4, 5);
- ``recycle_mean.png``: their mean over targets with +-1 std bands (Figure 3);
- ``recycle_residuals.png``: the Picard residual (CA-RMSD between recycles k and k+1) per target,
  log scale.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from pathlib import Path

import numpy as np

from ..errors import FixptError

COLUMNS = (("gdt_ts", 0, "GDT-TS r0"), ("gdt_ts", -1, "GDT-TS last"), ("rmsd", 0, "CA-RMSD r0 (A)"),
           ("rmsd", -1, "CA-RMSD last (A)"), ("tm_score", -1, "TM last"), ("lddt", -1, "lDDT last"),
           ("plddt", -1, "pLDDT last"), ("contraction_ratio", -2, "last residual ratio"))


def trajectories(runs: list[dict]) -> list[dict]:
    out = [t for r in runs for t in r["metrics"].get("trajectories", [])]
    if not out:
        raise FixptError("these runs hold no recycle trajectories; the recycle layout is for alphafold-recycle sweeps")
    return out


def _stats(values: list[float]) -> tuple[float, float]:
    a = np.asarray([v for v in values if v is not None], dtype=float)
    if len(a) == 0:
        return math.nan, math.nan
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def build(runs: list[dict]) -> list[dict]:
    """One record per target: ``{"target", "n", "flagged", column label: (mean, std), "verdicts"}``."""
    by_target: dict[str, list[dict]] = {}
    for t in trajectories(runs):
        by_target.setdefault(t["target"], []).append(t)
    table = []
    for target in sorted(by_target):
        ts = by_target[target]
        rec = {"target": target, "n": len(ts), "flagged": sum(bool(t["flagged"]) for t in ts),
               "verdicts": [f"model {t['model']} seed {t['seed']}: {t['verdict']}" for t in ts if t["flagged"]]}
        for key, at, label in COLUMNS:
            rec[label] = _stats([t[key][at] if len(t[key]) >= abs(at) else None for t in ts])
        table.append(rec)
    return table


def render(table: list[dict], fmt: str) -> str:
    labels = [label for _, _, label in COLUMNS]
    cell = lambda m, s, pm="±": "-" if math.isnan(m) else f"{m:.2f} {pm} {s:.2f}"  # noqa: E731
    if fmt in ("md", "latex"):
        head = ["target", "trajectories"] + labels + ["flagged"]
        rows = [[r["target"], str(r["n"])] + [cell(*r[l], pm="±" if fmt == "md" else r"$\pm$") for l in labels]
                + [f"{r['flagged']} of {r['n']}"] for r in table]
        if fmt == "md":
            lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"] + ["| " + " | ".join(r) + " |" for r in rows]
            notes = [f"- {r['target']}: {v}" for r in table for v in r["verdicts"]]
            return "\n".join(lines + (["", "Flagged (not converging):"] + notes if notes else [])) + "\n"
        esc = lambda s: s.replace("%", r"\%").replace("_", r"\_")  # noqa: E731
        lines = [r"\begin{tabular}{l" + "c" * (len(head) - 1) + "}", r"\toprule", " & ".join(map(esc, head)) + r" \\", r"\midrule"]
        lines += [" & ".join(map(esc, r)) + r" \\" for r in rows] + [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines) + "\n"
    records = [{"target": r["target"], "column": l, "mean": r[l][0], "std": r[l][1], "n": r["n"], "flagged": r["flagged"]}
               for r in table for l in labels]
    if fmt == "json":
        clean = lambda v: None if isinstance(v, float) and math.isnan(v) else v  # noqa: E731
        return json.dumps([{k: clean(v) for k, v in rec.items()} for rec in records]) + "\n"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["target", "column", "mean", "std", "n", "flagged"])
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()


def _target_means(runs: list[dict], key: str) -> dict[str, np.ndarray]:
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


def plot(runs: list[dict], folder: Path) -> list[Path]:
    from ..plots import _pyplot, _save

    plt = _pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    gdt, rmsd = _target_means(runs, "gdt_ts"), _target_means(runs, "rmsd")
    written = []

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, curves, name in ((axes[0], gdt, "GDT-TS"), (axes[1], rmsd, "CA-RMSD")):
        for target, curve in curves.items():
            ax.plot(np.arange(len(curve)), _minmax(curve), marker="o", ms=3, label=target)
        ax.set(xlabel="recycle", ylabel=f"{name}, min-max normalised per target", title=f"{name} per target")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    written.append(_save(fig, folder / "recycle_per_target.png"))

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
    written.append(_save(fig, folder / "recycle_mean.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for target, curve in _target_means(runs, "residual_rmsd").items():
        k = np.arange(len(curve))
        ok = np.isfinite(curve) & (curve > 0)
        ax.semilogy(k[ok], curve[ok], marker="o", ms=3, label=target)
    ax.set(xlabel="recycle k", ylabel=r"CA-RMSD($x_k$, $x_{k+1}$) (A)", title="Picard residual between recycles")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    written.append(_save(fig, folder / "recycle_residuals.png"))
    return written
