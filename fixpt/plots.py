"""Figures (matplotlib, headless Agg backend)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

    from .report.runs import FinishedRun


def plot_iterations(rows: list[dict], metric: str, converged_at: int | None, path: str | Path, title: str = "",
                    label: str | None = None, trained_depth: int | None = None) -> None:
    """Residual (log scale) and score against the iteration k, side by side (paper, Fig. 1B); a truncated
    iteration's trained depth is marked (the iterate training scored)."""
    plt = pyplot()
    ks = [r["k"] for r in rows if r["residual"] is not None]
    res = [r["residual"] for r in rows if r["residual"] is not None]
    fig, (ax_r, ax_s) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_r.semilogy(ks, res, marker="o", ms=3)
    ax_r.set(xlabel="iteration k", ylabel=r"$\|z_{k}-z_{k-1}\| / \|z_k\|$", title="relative residual")
    ax_s.plot([r["k"] for r in rows], [r[metric] for r in rows], marker="o", ms=3, color="tab:green")
    ax_s.set(xlabel="iteration k", ylabel=label or metric, title=label or metric)
    for ax in (ax_r, ax_s):
        ax.grid(alpha=0.3)
        if converged_at is not None:
            ax.axvline(converged_at, ls="--", color="grey", label=f"converged (k={converged_at})")
        if trained_depth is not None:
            ax.axvline(trained_depth, ls=":", color="tab:red", label=f"trained depth (k={trained_depth})")
        if converged_at is not None or trained_depth is not None:
            ax.legend()
    fig.suptitle(title)
    save_figure(fig, path)


def image_panels_figure(panels: list[tuple[str, "Tensor"]], title: str, nrow: int | None = None):
    """Images in [-1, 1], ``(N, C, H, W)`` per panel, one panel per row with its label on the left (e.g. "50
    steps"), the title above: the labelled grids of ``fixpt iterate`` on a DDPM. ``nrow``: images per line
    (default: all in one line)."""
    from torchvision.utils import make_grid

    plt = pyplot()
    grids = [make_grid(((x.float().cpu() + 1) / 2).clamp(0, 1), nrow=nrow or len(x), padding=2, pad_value=1.0) for _, x in panels]
    width = 8.0
    heights = [width * g.shape[1] / g.shape[2] for g in grids]
    fig, axes = plt.subplots(len(panels), 1, figsize=(width + 1.2, sum(heights) + 0.6), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (label, _), grid in zip(axes[:, 0], panels, grids):
        ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=10)
    fig.suptitle(title, fontsize=11)
    return fig


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Write ``fig`` atomically in the format its suffix names (PNG by default), and free it."""
    import matplotlib.pyplot as plt

    from .checkpoint import atomic_write

    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png", bbox_inches="tight"))
    plt.close(fig)
    return path


def _series_label(run: FinishedRun, keys: list[str]) -> str:
    return " ".join([run.model] + [f"{k}={run.params[k]}" for k in keys if k in run.params])


def _mean_std(values: list[float]) -> tuple[float, float]:
    from .report.table import Cell

    cell = Cell(values)
    return cell.mean, cell.std


def plot_score_vs_iterations(runs: list[FinishedRun], metric: str, varying: list[str], path: str | Path) -> Path | None:
    """Test score against ``max_iter`` (mean and a +-1 std band over seeds, cut to [0, 1]), one panel per backbone.

    Runs of models without ``max_iter`` (plain GNNs) are drawn as a horizontal band, the level
    an iterative model has to beat. Returns None when ``max_iter`` does not vary in the sweep.
    """
    if "max_iter" not in varying:
        return None
    plt = pyplot()
    keys = [k for k in varying if k not in ("max_iter", "backbone", "seed", "model")]
    backbones = sorted({r.params.get("backbone", "gcn") for r in runs if "max_iter" in r.params})
    fig, axes = plt.subplots(1, len(backbones), figsize=(5.5 * len(backbones), 4), squeeze=False)
    for ax, bb in zip(axes[0], backbones):
        series: dict[str, dict[int, list[float]]] = {}
        flat: dict[str, list[float]] = {}
        for r in runs:
            if r.params.get("backbone", "gcn") != bb:
                continue
            score = r.metrics[f"test_{metric}"]
            label = _series_label(r, keys)
            if "max_iter" in r.params:
                series.setdefault(label, {}).setdefault(int(r.params["max_iter"]), []).append(score)
            else:
                flat.setdefault(label, []).append(score)
        for label, by_k in sorted(series.items()):
            ks = sorted(by_k)
            stats = [_mean_std(by_k[k]) for k in ks]
            m = [s[0] for s in stats]
            sd = [s[1] for s in stats]
            line, = ax.plot(ks, m, marker="o", ms=3, label=label)
            lo, hi = [max(a - b, 0.0) for a, b in zip(m, sd)], [min(a + b, 1.0) for a, b in zip(m, sd)]  # scores lie in [0, 1]
            ax.fill_between(ks, lo, hi, color=line.get_color(), alpha=0.2)
        for label, values in sorted(flat.items()):
            m, sd = _mean_std(values)
            line = ax.axhline(m, ls="--", color="grey", label=f"{label} (no iterations)")
            ax.axhspan(m - sd, m + sd, color="grey", alpha=0.15)
        ax.set(xlabel="max_iter (Picard iterations)", ylabel=f"test {metric}", title=f"backbone {bb}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_residuals(runs: list[FinishedRun], varying: list[str], path: str | Path) -> Path | None:
    """Relative residual of the final evaluation solve against the iteration (log scale), averaged
    over seeds (geometric mean, as residuals spread over decades), one panel per backbone."""
    import numpy as np

    with_trace = [r for r in runs if r.metrics.get("residual_trace")]
    if not with_trace:
        return None
    # when max_iter varies, each configuration's longest solve shows the whole trajectory
    keys = [k for k in varying if k not in ("backbone", "seed", "model", "max_iter")]
    longest: dict[tuple, int] = {}
    for r in with_trace:
        group = (r.model, r.params.get("backbone"), _series_label(r, keys))
        longest[group] = max(longest.get(group, 0), int(r.params.get("max_iter", 0)))
    with_trace = [r for r in with_trace
                  if int(r.params.get("max_iter", 0)) == longest[(r.model, r.params.get("backbone"), _series_label(r, keys))]]
    if "max_iter" in varying:
        keys = keys + ["max_iter"]
    plt = pyplot()
    backbones = sorted({r.params.get("backbone", "gcn") for r in with_trace})
    fig, axes = plt.subplots(1, len(backbones), figsize=(5.5 * len(backbones), 4), squeeze=False)
    for ax, bb in zip(axes[0], backbones):
        groups: dict[str, list[list[float]]] = {}
        for r in with_trace:
            if r.params.get("backbone", "gcn") == bb:
                groups.setdefault(_series_label(r, keys), []).append(r.metrics["residual_trace"])
        for label, traces in sorted(groups.items()):
            n = max(len(t) for t in traces)
            a = np.full((len(traces), n), np.nan)
            for i, t in enumerate(traces):
                a[i, : len(t)] = np.maximum(np.asarray(t, dtype=float), 1e-30)
            with np.errstate(all="ignore"):
                gmean = np.exp(np.nanmean(np.log(a), axis=0))
            ax.semilogy(np.arange(1, n + 1), gmean, marker="o", ms=2, label=f"{label} (n={len(traces)})")
        ax.set(xlabel="iteration k", ylabel=r"$\|z_k - z_{k-1}\| / \|z_k\|$", title=f"residual, backbone {bb}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6)
    return save_figure(fig, path)


def plot_learning_curves(series: dict[str, tuple[list[float], list[float | None], list[float]]], metric: str,
                         path: str | Path) -> Path:
    """Test score against training steps (left) and against estimated training FLOPs (right), one line per
    ``series`` entry ``label: (steps, flops, scores)``, log-log; a line whose FLOPs are unknown is left out of
    the right panel (see :mod:`fixpt.report.curves`)."""
    from matplotlib.ticker import NullFormatter

    plt = pyplot()
    fig, (ax_s, ax_f) = plt.subplots(1, 2, figsize=(11, 4))
    for label, (steps, flops, scores) in series.items():
        line, = ax_s.plot(steps, scores, marker="o", ms=2, label=textwrap.fill(label, 110))
        if all(f is not None for f in flops):
            ax_f.plot(flops, scores, marker="o", ms=2, color=line.get_color())
    ax_s.set(xlabel="training steps", ylabel=f"test {metric}", xscale="log", yscale="log", title=f"test {metric} against steps")
    ax_f.set(xlabel="training FLOPs (estimate from one step)", ylabel=f"test {metric}", xscale="log", yscale="log",
             title=f"test {metric} against FLOPs")
    for ax in (ax_s, ax_f):
        ax.grid(alpha=0.3, which="both")
        ax.xaxis.set_minor_formatter(NullFormatter())  # log-axis minor labels collide over short ranges
    # one legend for both panels, under them (save_figure's tight bounding box keeps it): labels can be long
    fig.legend(*ax_s.get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize=7, frameon=False)
    return save_figure(fig, path)
