"""Figures (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path


def plot_iterations(rows: list[dict], metric: str, converged_at: int | None, path: str | Path, title: str = "",
                    label: str | None = None) -> None:
    """Residual (log scale) and score against the iteration k, side by side (paper, Fig. 1B)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .checkpoint import atomic_write

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
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png"))
    plt.close(fig)
