"""The ``fig2`` report layout: DDPMs trained with different numbers of diffusion steps T.

One row per T (and per size or any other key that varies, never averaged together), mean and
sample standard deviation over seeds of the test-loss area, FID (with its kind: Inception or the
digits stand-in, which are never mixed in one column) and the quality score. Figures:

- ``fig2_loss_fid.png`` (paper, Figure 2): test-loss area, training loss and FID against T;
- ``fig8_loss_per_timestep.png`` (paper, Figure 8 top): the test loss per timestep, t / (T - 1) in [0, 1], one curve per T,
  beside the training loss curves (windowed means).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from ..errors import FixptError
from ..plots import pyplot, save_figure
from ..registry import register_layout
from ..report import Cell, FinishedRun, Layout, Note, Options, Row, SweepRuns, Table

TASK = "image-generation"
COLUMNS = (("test_loss_area", "test loss area"), ("train_loss", "train loss"), ("fid", "FID"),
           ("quality", "quality"), ("quality_real", "quality (real digits)"), ("class_entropy", "class entropy (bits)"))


@register_layout("fig2")
class Fig2(Layout):
    paper_absent = "--compare paper: the paper shows its DDPM results as figures only (CIFAR-10, Inception FID); use --plot"

    def table(self, sweep: SweepRuns, options: Options) -> Table:
        return fig2_table(sweep.runs, sweep.varying)

    def figures(self, sweep: SweepRuns, table: Table, folder: Path) -> list[Path]:
        return [plot_against_T(table, folder / "fig2_loss_fid.png"), plot_loss_curves(sweep.runs, folder / "fig8_loss_per_timestep.png")]


def ddpm_runs(runs: list[FinishedRun]) -> list[FinishedRun]:
    runs = [r for r in runs if r.task == TASK]
    if not runs:
        raise FixptError(f"the fig2 layout is for DDPM sweeps (task {TASK}); this sweep has no such finished run")
    return runs


def fig2_table(runs: list[FinishedRun], varying: list[str]) -> Table:
    """One row per (T, other varying keys), a column per score that some run recorded."""
    groups: dict[tuple, list[FinishedRun]] = {}
    for r in ddpm_runs(runs):
        extra = tuple(f"{k}={r.params[k]}" for k in varying if k not in ("seed", "timesteps") and k in r.params)
        groups.setdefault((int(r.metrics["timesteps"]), extra), []).append(r)
    rows = []
    for (T, extra), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        kinds = sorted({r.metrics.get("fid_kind") or "none" for r in rs})
        if len(kinds) > 1:
            raise FixptError(f"T={T} {' '.join(extra)}: runs mix FID kinds ({'; '.join(kinds)}); they are not comparable")
        group = " ".join(extra)
        cells = {label: Cell([float(r.metrics[key]) for r in rs if r.metrics.get(key) is not None]) for key, label in COLUMNS}
        rows.append(Row(str(T), cells, text={"group": group, "runs": str(len(rs))}, fields={"T": T, "group": group},
                        tail={"fid_kind": kinds[0]}))
    scores = [label for _, label in COLUMNS if any(row.cells[label].values for row in rows)]
    kinds = sorted({row.tail["fid_kind"] for row in rows})
    columns = (["group"] if any(row.text["group"] for row in rows) else []) + ["runs"] + scores
    return Table(columns, rows, corner="T", notes=[Note([f"FID features: {'; '.join(kinds)}"])])


def plot_against_T(table: Table, path: Path) -> Path:
    """Figure 2 (:func:`fig2_figure`), written to ``path``."""
    return save_figure(fig2_figure(table), path)


def fig2_figure(table: Table):
    """Figure 2: test-loss area, training loss and FID against T, one line per group. Without any FID (no
    ``--fid-weights`` and no stand-in for the images, or no samples) the third panel says so instead of
    showing empty axes."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    groups = sorted({row.fields["group"] for row in table.rows})
    has_fid = any(row.cells["FID"].values for row in table.rows if "FID" in row.cells)
    panels = ("test loss area", "train loss", "FID") if has_fid else ("test loss area", "train loss")
    for group in groups:
        rows = [row for row in table.rows if row.fields["group"] == group]
        Ts = [row.fields["T"] for row in rows]
        for ax, label in zip(axes, panels):
            mean = np.array([row.cells[label].mean for row in rows])
            std = np.array([row.cells[label].std for row in rows])
            ax.errorbar(Ts, mean, yerr=np.nan_to_num(std), marker="o", capsize=3, label=group or None)
    kinds = sorted({row.tail["fid_kind"] for row in table.rows})
    axes[0].set(xlabel="diffusion steps T", ylabel="area under the test loss per timestep", title="test loss")
    axes[1].set(xlabel="diffusion steps T", ylabel="noise-prediction MSE, last window", title="training loss")
    if has_fid:
        axes[2].set(xlabel="diffusion steps T", ylabel="FID")
        axes[2].set_title("FID, features: " + textwrap.fill("; ".join(kinds), 45), fontsize=9)
    else:
        axes[2].axis("off")
        axes[2].text(0.5, 0.5, "no FID\n" + textwrap.fill("; ".join(kinds), 40), ha="center", va="center", fontsize=9,
                     transform=axes[2].transAxes)
    for ax in axes[:len(panels)]:
        ax.grid(alpha=0.3)
        if any(groups):
            ax.legend(fontsize=7)
    return fig


def plot_loss_curves(runs: list[FinishedRun], path: Path) -> Path:
    """Figure 8 (top): the test loss per timestep, and the training loss, one colour per T."""
    plt = pyplot()
    runs = ddpm_runs(runs)
    fig, (ax_t, ax_l) = plt.subplots(1, 2, figsize=(11, 3.8))
    cmap = plt.get_cmap("viridis")
    Ts = sorted({int(r.metrics["timesteps"]) for r in runs})
    colour = {T: cmap(i / max(1, len(Ts) - 1)) for i, T in enumerate(Ts)}
    labelled = set()
    for r in sorted(runs, key=lambda r: r.metrics.get("timesteps", 0)):
        T = int(r.metrics["timesteps"])
        label = f"T={T}" if T not in labelled else None
        labelled.add(T)
        u, loss = zip(*r.metrics["loss_per_timestep"])
        ax_t.semilogy(u, loss, color=colour[T], label=label, alpha=0.8)
        steps, curve = zip(*r.metrics["loss_curve"])
        ax_l.semilogy(steps, curve, color=colour[T], label=label, alpha=0.8)
    ax_t.set(xlabel="t / (T - 1)", ylabel="test noise-prediction MSE", title="test loss per timestep (Figure 8)")
    ax_l.set(xlabel="training step", ylabel="training loss (window mean)", title="training loss")
    for ax in (ax_t, ax_l):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, path)
