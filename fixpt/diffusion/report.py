"""The ``fig2`` report layout: DDPMs trained with different numbers of diffusion steps T.

One row per T (and per size or any other key that varies, never averaged together), mean and
sample standard deviation over seeds of the test-loss area, FID (with its kind: Inception or the
digits stand-in, which are never mixed in one column) and the quality score. Figures:

- ``fig2_loss_fid.png`` (paper, Figure 2): test-loss area, training loss and FID against T;
- ``fig8_loss_per_timestep.png`` (paper, Figure 8 top): the test loss per timestep, t / (T - 1) in [0, 1], one curve per T;
- ``training_loss.png``: the training loss curves (windowed means), one per T.
"""

from __future__ import annotations

import csv
import io
import json
import math
import textwrap
from pathlib import Path

import numpy as np

from ..errors import FixptError

COLUMNS = (("test_loss_area", "test loss area"), ("train_loss", "train loss"), ("fid", "FID"),
           ("quality", "quality"), ("quality_real", "quality (real digits)"), ("class_entropy", "class entropy (bits)"))


def _group_key(run: dict, varying: list[str]) -> tuple:
    extra = tuple(f"{k}={run['params'][k]}" for k in varying if k not in ("seed", "timesteps") and k in run["params"])
    return int(run["metrics"]["timesteps"]), extra


def _stats(values: list) -> tuple[float, float, int]:
    a = np.asarray([v for v in values if v is not None], dtype=float)
    if len(a) == 0:
        return math.nan, math.nan, 0
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0, len(a)


def build(runs: list[dict], varying: list[str]) -> list[dict]:
    """One record per (T, other varying keys): ``{"T", "group", "n", "fid_kind", label: (mean, std, n)}``."""
    runs = [r for r in runs if r["metrics"].get("task") == "image-generation"]
    if not runs:
        raise FixptError("the fig2 layout is for DDPM sweeps (task image-generation); this sweep has no such finished run")
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault(_group_key(r, varying), []).append(r)
    table = []
    for (T, extra), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        kinds = sorted({r["metrics"].get("fid_kind") or "none" for r in rs})
        if len(kinds) > 1:
            raise FixptError(f"T={T} {' '.join(extra)}: runs mix FID kinds ({'; '.join(kinds)}); they are not comparable")
        rec = {"T": T, "group": " ".join(extra), "n": len(rs), "fid_kind": kinds[0]}
        for key, label in COLUMNS:
            rec[label] = _stats([r["metrics"].get(key) for r in rs])
        table.append(rec)
    return table


def render(table: list[dict], fmt: str) -> str:
    labels = [label for _, label in COLUMNS if any(r[label][2] for r in table)]
    cell = lambda m, s, n, pm="±": "-" if math.isnan(m) else (f"{m:.4f}" if n < 2 else f"{m:.4f} {pm} {s:.4f}")  # noqa: E731
    kinds = sorted({r["fid_kind"] for r in table})
    if fmt in ("md", "latex"):
        head = ["T"] + (["group"] if any(r["group"] for r in table) else []) + ["runs"] + labels
        rows = [[str(r["T"])] + ([r["group"]] if "group" in head else []) + [str(r["n"])]
                + [cell(*r[label], pm="±" if fmt == "md" else r"$\pm$") for label in labels] for r in table]
        note = f"FID features: {'; '.join(kinds)}"
        if fmt == "md":
            lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"] + ["| " + " | ".join(r) + " |" for r in rows]
            return "\n".join(lines + ["", note]) + "\n"
        esc = lambda s: s.replace("%", r"\%").replace("_", r"\_")  # noqa: E731
        lines = [r"\begin{tabular}{l" + "c" * (len(head) - 1) + "}", r"\toprule", " & ".join(map(esc, head)) + r" \\", r"\midrule"]
        lines += [" & ".join(map(esc, r)) + r" \\" for r in rows] + [r"\bottomrule", r"\end{tabular}", "% " + esc(note)]
        return "\n".join(lines) + "\n"
    records = [{"T": r["T"], "group": r["group"], "column": label, "mean": r[label][0], "std": r[label][1], "n": r[label][2],
                "fid_kind": r["fid_kind"]} for r in table for label in labels]
    if fmt == "json":
        clean = lambda v: None if isinstance(v, float) and math.isnan(v) else v  # noqa: E731
        return json.dumps([{k: clean(v) for k, v in rec.items()} for rec in records]) + "\n"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(records[0]))
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()


def plot(runs: list[dict], varying: list[str], folder: str | Path) -> list[Path]:
    from ..plots import _pyplot, _save

    plt = _pyplot()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = build(runs, varying)
    written = []
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for group in sorted({r["group"] for r in table}):
        rows = [r for r in table if r["group"] == group]
        Ts = [r["T"] for r in rows]
        for ax, label in zip(axes, ("test loss area", "train loss", "FID")):
            mean = np.array([r[label][0] for r in rows])
            std = np.array([r[label][1] for r in rows])
            ax.errorbar(Ts, mean, yerr=np.nan_to_num(std), marker="o", capsize=3, label=group or None)
    kinds = sorted({r["fid_kind"] for r in table})
    axes[0].set(xlabel="diffusion steps T", ylabel="area under the test loss per timestep", title="test loss")
    axes[1].set(xlabel="diffusion steps T", ylabel="noise-prediction MSE, last window", title="training loss")
    axes[2].set(xlabel="diffusion steps T", ylabel="FID")
    axes[2].set_title("FID, features: " + textwrap.fill("; ".join(kinds), 45), fontsize=9)
    for ax in axes:
        ax.grid(alpha=0.3)
        if any(r["group"] for r in table):
            ax.legend(fontsize=7)
    written.append(_save(fig, folder / "fig2_loss_fid.png"))

    fig, (ax_t, ax_l) = plt.subplots(1, 2, figsize=(11, 3.8))
    cmap = plt.get_cmap("viridis")
    Ts = sorted({int(r["metrics"]["timesteps"]) for r in runs if r["metrics"].get("task") == "image-generation"})
    colour = {T: cmap(i / max(1, len(Ts) - 1)) for i, T in enumerate(Ts)}
    labelled = set()
    for r in sorted(runs, key=lambda r: r["metrics"].get("timesteps", 0)):
        m = r["metrics"]
        if m.get("task") != "image-generation":
            continue
        T = int(m["timesteps"])
        label = f"T={T}" if T not in labelled else None
        labelled.add(T)
        u, loss = zip(*m["loss_per_timestep"])
        ax_t.semilogy(u, loss, color=colour[T], label=label, alpha=0.8)
        steps, curve = zip(*m["loss_curve"])
        ax_l.semilogy(steps, curve, color=colour[T], label=label, alpha=0.8)
    ax_t.set(xlabel="t / (T - 1)", ylabel="test noise-prediction MSE", title="test loss per timestep (Figure 8)")
    ax_l.set(xlabel="training step", ylabel="training loss (window mean)", title="training loss")
    for ax in (ax_t, ax_l):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    written.append(_save(fig, folder / "fig8_loss_per_timestep.png"))
    return written
