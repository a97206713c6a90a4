"""Example runs of the field models that need a data file: the smallest Navier-Stokes set, generated."""

from __future__ import annotations

from pathlib import Path

from ..data.navier_stokes import NavierStokesConfig, generate


def tiny_navier_stokes_run(folder: Path) -> dict:
    """A 12-trajectory, 16 x 16 set with 4 frames (seconds on a CPU) and a one-epoch run on it."""
    path = generate(NavierStokesConfig(n_samples=12, resolution=16, fine=16, t_final=4, dt=1e-3), folder, device="cpu")
    return {"data_file": str(path), "in_frames": 2, "out_frames": 2, "heads": 1, "blocks": 1, "epochs": 1, "batch_size": 4}
