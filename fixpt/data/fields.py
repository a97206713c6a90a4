"""Field-to-field data sets (the Navier-Stokes task): samples of input and target fields on a grid.

Like a graph, a :class:`FieldData` holds every sample with boolean split masks over dimension 0,
so full-data commands (``iterate``, ``check-contraction``) work as for graphs, and training
takes minibatches with :meth:`FieldData.subset`.

The Navier-Stokes task is FNO's protocol (ANIE's authors use another, :mod:`fixpt.data.ns_initial`): from the vorticity at t = 1..10 predict t =
11..20 (``in_frames`` and ``out_frames``), input and target frames as channels, from a generated file or an
FNO ``.mat`` file (:mod:`fixpt.data.fno_mat`; its ``u`` frames, t = 1, 2, ...). The split is by
trajectory, in file order: the first 2/3 train, the next 1/6 validation, the last 1/6 test (300
trajectories: 200 / 50 / 50; 1200: 800 / 200 / 200).
"""

from __future__ import annotations

import functools
from dataclasses import astuple, dataclass, field

import torch
from torch import Tensor

from ..errors import FixptError
from .fno_mat import is_mat_file, read_fno_mat
from .navier_stokes import SIZES, VISCOSITIES, NavierStokesConfig, generate, load_dataset


@dataclass(frozen=True)
class FieldShape:
    """What a field model needs to know of its input: its channels and grid side, and where the task
    wants the iteration: on the token embedding (``"tokens"``) or on the image itself (``"pixels"``)."""

    channels: int
    grid: int
    iterate_in: str = "tokens"


@dataclass
class FieldData:
    x: Tensor  # (N, C_in, s, s)
    y: Tensor  # (N, C_out, s, s)
    train_mask: Tensor
    val_mask: Tensor
    test_mask: Tensor

    @property
    def num_samples(self) -> int:
        return self.x.shape[0]

    def to(self, device) -> "FieldData":
        return FieldData(*(t.to(device) for t in (self.x, self.y, self.train_mask, self.val_mask, self.test_mask)))

    def subset(self, index: Tensor) -> "FieldData":
        return FieldData(*(t[index] for t in (self.x, self.y, self.train_mask, self.val_mask, self.test_mask)))


@dataclass
class NavierStokesDataConfig:
    data_file: str = field(default="", metadata={"help": "a file from `fixpt data navier-stokes` or an FNO .mat file (a, u) (empty: generate or reuse the size's set)"})
    data_size: str = field(default="small", metadata={"help": "data set generated when no file is given", "choices": tuple(SIZES)})
    viscosity: float = field(default=1e-3, metadata={"help": "nu of the generated set", "choices": VISCOSITIES})
    in_frames: int = field(default=10, metadata={"min": 1, "help": "input: the vorticity at t = 1 .. in_frames"})
    out_frames: int = field(default=10, metadata={"min": 1, "help": "target: the next out_frames frames"})
    data_root: str = field(default="", metadata={"location": True, "help": "where generated sets are kept (default: ~/.cache/fixpt)"})

    def validate(self) -> None:
        if self.in_frames < 1 or self.out_frames < 1:
            raise FixptError("in_frames and out_frames must be >= 1")


def split_masks(n: int) -> tuple[Tensor, Tensor, Tensor]:
    n_train, n_val = (2 * n) // 3, n // 6
    idx = torch.arange(n)
    return idx < n_train, (idx >= n_train) & (idx < n_train + n_val), idx >= n_train + n_val


@functools.lru_cache(maxsize=4)
def _load(cfg_key: tuple) -> FieldData:
    cfg = NavierStokesDataConfig(*cfg_key)
    need = cfg.in_frames + cfg.out_frames
    if cfg.data_file and is_mat_file(cfg.data_file):  # FNO's u[..., k] is t = k + 1, as a generated file's frames
        data = {"vorticity": read_fno_mat(cfg.data_file, frames=range(need))["frames"]}
    elif cfg.data_file:
        data = load_dataset(cfg.data_file)
    else:
        from .planetoid import cache_dir

        gen_cfg = NavierStokesConfig(**SIZES[cfg.data_size], viscosity=cfg.viscosity, t_final=need)
        root = cfg.data_root or cache_dir()
        data = load_dataset(generate(gen_cfg, root, device="cuda" if torch.cuda.is_available() else "cpu"), gen_cfg)
    w = data["vorticity"].float()
    if w.shape[1] < need:
        raise FixptError(f"{cfg.data_file or 'the data set'} has {w.shape[1]} frames; in_frames + out_frames = {need} are needed")
    if w.shape[0] < 6:
        raise FixptError(f"{cfg.data_file}: {w.shape[0]} trajectories; at least 6 are needed for the train/val/test split")
    train, val, test = split_masks(w.shape[0])
    return FieldData(w[:, : cfg.in_frames].contiguous(), w[:, cfg.in_frames:need].contiguous(), train, val, test)


def load_navier_stokes(cfg: NavierStokesDataConfig) -> FieldData:
    """The task's data, loaded (or generated) once per process (the cached object: nothing modifies it in place)."""
    return _load(astuple(cfg))
