r"""The ``ns-initial`` task: ANIE's Navier-Stokes protocol (Zappala et al.; their public code, GitHub
emazap7/ANIE, the Navier-Stokes notebook): **the t = 0 vorticity in, the trajectory at ten times out.**

Their notebook prepends ``a`` (t = 0) to FNO's ``u`` (t = 1..50), giving 51 frames indexed by t, and keeps
``np.linspace(0, 50, num=10, dtype=np.int64)`` of them: t = 0, 5, 11, 16, 22, 27, 33, 38, 44, 50
(:func:`frame_times`; ``horizon`` and ``frames`` generalise the 50 and the 10). The first target frame is
the input itself. Inputs are one channel, targets ``frames`` channels; no normalisation, as theirs.

The data come from an FNO ``.mat`` file (:mod:`fixpt.data.fno_mat`: ``a`` and ``u``, e.g. their
``Navier_Stokes_Dataset.mat``, 5000 x 64 x 64 x 50, nu = 1e-3), from a file of ``fixpt data navier-stokes``
with ``--t-final`` >= ``horizon`` (version 2 files hold the t = 0 fields), or are generated at ``data_size``:

- ``small``: 1600 trajectories solved on 32 x 32 with dt = 1e-3 (about 15 minutes on one CPU core at the
  measured 1.8 trajectories a second, docs/results.md); 1024 of them train (the issue asks >= 1000);
- ``paper``: FNO's recipe, 5000 x 64 x 64 from 256 x 256 with dt = 1e-4 (a GPU job; or pass their file).

Split (:func:`split_sizes`), by trajectory in file order as theirs: the last ``min(1000, N // 5)`` test, of
the rest the last ``(N - test) // 5`` validation (their ``training_split = 0.2``), the first ones train.
N = 5000 gives 3200 / 800 / 1000 (the authors'); smaller sets scale down in proportion: 1600 gives
1024 / 256 / 320.
"""

from __future__ import annotations

import functools
from dataclasses import astuple, dataclass, field

import numpy as np
import torch

from ..errors import FixptError
from .fields import FieldData
from .fno_mat import is_mat_file, read_fno_mat
from .navier_stokes import VISCOSITIES, NavierStokesConfig, generate, load_dataset

SIZES = {
    "small": {"n_samples": 1600, "resolution": 32, "fine": 32, "dt": 1e-3},
    "paper": {"n_samples": 5000, "resolution": 64, "fine": 256, "dt": 1e-4},
}


@dataclass
class NSInitialDataConfig:
    data_file: str = field(default="", metadata={"help": "a file from `fixpt data navier-stokes` or an FNO .mat file (a, u) (empty: generate or reuse the size's set)"})
    data_size: str = field(default="small", metadata={"help": "data set generated when no file is given", "choices": tuple(SIZES)})
    n_samples: int = field(default=0, metadata={"min": 0, "help": "trajectories of the generated set (0: the size's)"})
    viscosity: float = field(default=1e-3, metadata={"help": "nu of the generated set", "choices": VISCOSITIES})
    horizon: int = field(default=50, metadata={"min": 1, "help": "ns-initial: the last time of the trajectory"})
    frames: int = field(default=10, metadata={"min": 2, "help": "ns-initial: frames kept, t = int(linspace(0, horizon, frames))"})
    data_root: str = field(default="", metadata={"location": True, "help": "where generated sets are kept (default: ~/.cache/fixpt)"})

    def validate(self) -> None:
        if self.frames > self.horizon + 1:
            raise FixptError(f"frames={self.frames} is more than the {self.horizon + 1} times t = 0..{self.horizon}; lower --frames")


def frame_times(horizon: int, frames: int) -> list[int]:
    """The kept times, as the authors: ``np.linspace(0, horizon, num=frames, dtype=np.int64)`` (truncation)."""
    return [int(t) for t in np.linspace(0, horizon, num=frames, dtype=np.int64)]


def split_sizes(n: int) -> tuple[int, int, int]:
    """(train, validation, test) trajectories of a set of ``n``: see the module's docstring."""
    test = min(1000, n // 5)
    val = (n - test) // 5
    return n - test - val, val, test


def _split_masks(n: int, where: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    train, val, test = split_sizes(n)
    if min(train, val, test) < 1:
        raise FixptError(f"{where}: {n} trajectories split into {train} / {val} / {test}; at least 10 are needed")
    idx = torch.arange(n)
    return idx < train, (idx >= train) & (idx < train + val), idx >= train + val


def _trajectory(cfg: NSInitialDataConfig, times: list[int]) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The t = 0 fields (N, s, s), the fields at ``times`` (N, F, s, s) and where they came from."""
    later = [t for t in times if t > 0]  # t = 0 is the initial field itself
    if cfg.data_file and is_mat_file(cfg.data_file):
        data = read_fno_mat(cfg.data_file, frames=[t - 1 for t in later])  # u[..., k] is t = k + 1
        w0, w = data["initial"], data["frames"]
    else:
        if cfg.data_file:
            data, where = load_dataset(cfg.data_file), cfg.data_file
        else:
            data, where = _generated(cfg), "the generated set"
        if "initial" not in data:
            raise FixptError(f"{where} has no t = 0 fields (a file older than version 2); regenerate it with `fixpt data navier-stokes`")
        if data["vorticity"].shape[1] < cfg.horizon:
            raise FixptError(f"{where} holds t = 1..{data['vorticity'].shape[1]}; horizon={cfg.horizon} needs "
                             f"--t-final {cfg.horizon} or more (or a lower --horizon)")
        w0, w = data["initial"], data["vorticity"][:, [t - 1 for t in later]]
    frames = [w0[:, None] if t == 0 else w[:, [later.index(t)]] for t in times]
    return w0.float(), torch.cat(frames, 1).float(), cfg.data_file or "the generated set"


def _generated(cfg: NSInitialDataConfig) -> dict:
    from .planetoid import cache_dir

    size = {**SIZES[cfg.data_size], **({"n_samples": cfg.n_samples} if cfg.n_samples else {})}
    gen_cfg = NavierStokesConfig(**size, viscosity=cfg.viscosity, t_final=cfg.horizon)
    path = generate(gen_cfg, cfg.data_root or cache_dir(), device="cuda" if torch.cuda.is_available() else "cpu", need_initial=True)
    return load_dataset(path, gen_cfg)


@functools.lru_cache(maxsize=2)
def _load(cfg_key: tuple) -> FieldData:
    cfg = NSInitialDataConfig(*cfg_key)
    cfg.validate()
    w0, y, where = _trajectory(cfg, frame_times(cfg.horizon, cfg.frames))
    train, val, test = _split_masks(w0.shape[0], where)
    return FieldData(w0[:, None].contiguous(), y.contiguous(), train, val, test)


def load_ns_initial(cfg: NSInitialDataConfig) -> FieldData:
    """x: the t = 0 fields (N, 1, s, s); y: the trajectory at :func:`frame_times` (N, frames, s, s); cached per process."""
    return _load(astuple(cfg))
