r"""FNO-format Navier-Stokes ``.mat`` files (Li et al. 2021; e.g. ``NavierStokes_V1e-3_N5000_T50.mat``,
the ``Navier_Stokes_Dataset.mat`` of ANIE's code): the initial vorticity ``a`` of shape (N, S, S) and the
trajectory ``u`` of shape (N, S, S, T), ``u[..., k]`` the vorticity at t = k + 1 (an optional ``t`` holds
1..T). Both MATLAB formats are read:

- **v5 / v7** (what ``scipy.io.savemat`` and MATLAB's default write): :func:`scipy.io.loadmat`;
- **v7.3** (HDF5 with a 512-byte MATLAB header; MATLAB's only format above 2 GB, so the 5000-trajectory
  files): :mod:`h5py`. MATLAB writes column-major arrays, so HDF5 sees every array with its axes
  reversed: ``u`` (N, S, S, T) is stored as (T, S, S, N), and element ``[i, j, k, n]`` of the HDF5 data
  is MATLAB's ``u(n, k, j, i)``. Reversing the axes (a full transpose) gives back MATLAB's order. Only
  the frames asked for are read (a 5000 x 64 x 64 x 50 single-precision ``u`` is 3.3 GB).

The format is told by content, not by name: HDF5's signature (:func:`h5py.is_hdf5`), else a v5 file.
A file without ``a`` or ``u``, or with shapes that do not fit (N, S, S) and (N, S, S, T), is refused with
one line naming what is there and what is expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import FixptError

EXPECTED = "an FNO Navier-Stokes file holds a (N, S, S), the initial vorticity, and u (N, S, S, T), the trajectory"


def is_mat_file(path: str | Path) -> bool:
    """Whether ``path`` looks like a MATLAB file: HDF5 (v7.3) or the v5 text header ``MATLAB 5.0 MAT-file``."""
    import h5py

    path = Path(path)
    if not path.is_file():
        return path.suffix == ".mat"
    with open(path, "rb") as f:
        head = f.read(6)
    return head == b"MATLAB" or h5py.is_hdf5(str(path)) or path.suffix == ".mat"


def read_fno_mat(path: str | Path, frames: Sequence[int] | None = None) -> dict[str, Tensor]:
    """``{"initial": a (N, S, S), "frames": (N, F, S, S)}`` in float32, where ``frames`` are indices into u's
    last axis (0-based: index k is t = k + 1; None: every frame). Bad file: FixptError, one line."""
    path = Path(path)
    if not path.is_file():
        raise FixptError(f"data file {path} does not exist")
    import h5py

    shapes, read = _open_hdf5(path) if h5py.is_hdf5(str(path)) else _open_v5(path)
    n, s, t = _check_shapes(path, shapes)
    index = list(range(t)) if frames is None else [int(k) for k in frames]
    bad = [k for k in index if not 0 <= k < t]
    if bad:
        raise FixptError(f"{path}: u has {t} frames (t = 1..{t}); frame t = {bad[0] + 1} is needed; use a file with a longer "
                         "trajectory or fewer / earlier frames")
    a, u = read(index)
    return {"initial": torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)),
            "frames": torch.from_numpy(np.ascontiguousarray(np.moveaxis(u, -1, 1), dtype=np.float32))}


def _check_shapes(path: Path, shapes: dict[str, tuple]) -> tuple[int, int, int]:
    """(N, S, T) from the shapes of ``a`` and ``u``, or a FixptError naming what is wrong."""
    missing = [k for k in ("a", "u") if k not in shapes]
    if missing:
        found = ", ".join(sorted(shapes)) or "no variables"
        raise FixptError(f"{path}: no variable {missing[0]!r} (found: {found}); {EXPECTED}")
    a, u = shapes["a"], shapes["u"]
    if len(a) != 3 or a[1] != a[2]:
        raise FixptError(f"{path}: a has shape {a}; expected (N, S, S): {EXPECTED}")
    if len(u) != 4 or tuple(u[:3]) != tuple(a):
        raise FixptError(f"{path}: u has shape {u}; expected (N, S, S, T) = ({a[0]}, {a[1]}, {a[2]}, T) to match a {a}")
    if a[0] < 1 or a[1] < 1 or u[3] < 1:
        raise FixptError(f"{path}: a {a} and u {u} hold no data; {EXPECTED}")
    return a[0], a[1], u[3]


def _open_v5(path: Path):
    """The shapes of the file's arrays and a reader of (a, u[..., frames]) for a v5 / v7 file (scipy)."""
    import scipy.io

    try:
        data = scipy.io.loadmat(str(path))
    except (scipy.io.matlab.MatReadError, ValueError, TypeError, OSError, NotImplementedError) as e:  # MatReadError: truncated / not MATLAB
        raise FixptError(f"{path} is not a readable MATLAB .mat file ({type(e).__name__}: {str(e)[:80]}); {EXPECTED}") from None
    arrays = {k: v for k, v in data.items() if not k.startswith("__") and isinstance(v, np.ndarray)}
    shapes = {k: tuple(v.shape) for k, v in arrays.items()}
    return shapes, lambda index: (arrays["a"], arrays["u"][..., index])


def _open_hdf5(path: Path):
    """The same for a v7.3 file: the HDF5 datasets' shapes reversed (MATLAB's order), frames read one by one."""
    import h5py

    try:
        f = h5py.File(str(path), "r")
    except OSError as e:
        raise FixptError(f"{path} is not a readable HDF5 / MATLAB v7.3 file ({str(e)[:80]})") from None
    shapes = {k: tuple(reversed(v.shape)) for k, v in f.items() if isinstance(v, h5py.Dataset)}

    def read(index: list[int]):
        try:
            a = np.asarray(f["a"][()]).transpose()  # (S, S, N) in HDF5 -> (N, S, S)
            u = np.stack([np.asarray(f["u"][k]).transpose() for k in index], -1)  # each (S, S, N) -> (N, S, S)
        finally:
            f.close()
        return a, u

    return shapes, read
