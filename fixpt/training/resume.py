"""The resumable state of a training run (``train_state.pt``), shared by the epoch loop
(:mod:`fixpt.training.loop`) and DDPM's step loop (:mod:`fixpt.diffusion.train_loop`).

A state is a plain dict (tensors, numbers, strings, lists, dicts; read back with ``weights_only=True``)
written atomically through :class:`~fixpt.training.rundir.RunDir` at the end of an epoch (or step). It
holds everything the next epoch reads: the weights, the optimiser's moments, the loop's own trackers, the
history so far and the random number generators' states (torch on the CPU and every CUDA device, Python's
``random``, NumPy's global generator). The draws of the epochs after it (minibatch order, dropout masks)
then come out of the same generator states, so a run killed at any moment and continued from its last
state repeats the uninterrupted run exactly.

On resume the configs are the stored ones. An option given now that differs from both its default and
the stored value is a one-line error (it would change the run being continued), except the run's length
(``epochs`` / ``max_steps``), which may grow.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from ..errors import FixptError
from .rundir import STATE

STATE_FILE = STATE


def rng_states() -> dict:
    """Every global random generator's state, as tensors and plain data."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)}}


def set_rng_states(states: dict) -> None:
    """Restore :func:`rng_states` (a state without NumPy's, from an older file, leaves NumPy's as it is)."""
    torch.set_rng_state(states["torch"])
    random.setstate(tuple(s if not isinstance(s, list) else tuple(s) for s in states["python"]))
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    if "numpy" in states:
        n = states["numpy"]
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))


def read_state(folder: str | Path, fmt: str, command: str) -> dict:
    """``train_state.pt`` of a run folder, of format ``fmt`` (written by ``command``, e.g. ``fixpt train ddpm``);
    every failure is one line naming the fix."""
    path = Path(folder) / STATE_FILE
    if not path.exists():
        done = (Path(folder) / "metrics.json").exists()
        why = "the run there is complete (a finished run keeps no training state)" if done else \
            f"resume a folder written by `{command}` (the state appears after its first checkpoint interval)"
        raise FixptError(f"--resume {folder}: no {STATE_FILE} there; {why}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged archive fails in many ways
        raise FixptError(f"{path} is not readable ({type(e).__name__}); it is damaged: start the run again") from None
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise FixptError(f"{path} is not a training state of `{command}`; pass the folder of such a run")
    return state


def resumed_configs(state: dict, given: dict[str, tuple[dict, dict]], length: str) -> dict[str, dict]:
    """The stored configs of each section of ``given`` (section -> (the values asked for now, their
    defaults)). A value that differs from both its default and the stored one is a conflict: a one-line
    error. ``resume`` is kept as asked; ``length`` (``epochs``, ``max_steps``) may be changed to continue
    the run for longer."""
    for section, (values, defaults) in given.items():
        stored = state[section]
        for key, value in values.items():
            if key in ("resume", length) or key not in stored:
                continue
            if value != defaults.get(key) and value != stored[key]:
                raise FixptError(f"--{key.replace('_', '-')} {value} conflicts with the run being resumed ({key}={stored[key]}); "
                                 "drop the option to continue that run, or train a new one")
    out = {section: dict(state[section]) for section in given}
    values, defaults = given["train"]
    out["train"]["resume"] = values.get("resume", "")
    if values.get(length, defaults[length]) != defaults[length]:
        out["train"][length] = values[length]
    return out


# ---------------------------------------------------------------- the epoch loop's state

EPOCH_FORMAT = "fixpt-epoch-train-state"


def save_epoch_state(folder, configs: dict, epoch: int, model, opt, best, log, seconds: float, solver: dict | None = None) -> None:
    """The epoch loop's state after ``epoch`` into ``folder`` (a RunDir; nothing without a folder): the
    run's configs (``model_name``, ``task``, ``model``, ``data``, ``train``), the weights, Adam's state, the
    best-epoch tracker (with the best epoch's weights), the history and tracker reference of ``log``
    (:class:`fixpt.tracking.RunLog`), the seconds trained, the generators' states and ``solver``: the solves'
    own state (evaluation count, warm starts, the Jacobian penalty's power vector and generator)."""
    if folder.path is None:
        return
    payload = {"format": EPOCH_FORMAT, "version": 1, **configs, "epoch": epoch, "seconds": seconds,
               "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "optimizer": opt.state_dict(),
               "best": {"best": best.best, "last": best.last, "since_best": best.since_best, "epochs_run": best.epochs_run},
               "history": log.rows, "tracker": log.ref, "rng": rng_states(), "solver": solver or {}}
    folder.write_state(STATE_FILE, payload)


def restore_epoch_state(state: dict, model, opt, best) -> tuple[int, float]:
    """Put a saved state back into the freshly built ``model``, ``opt`` and ``best`` (a BestEpoch) and the
    generators; returns (the next epoch, the seconds trained before)."""
    model.load_state_dict(state["model_state"])
    opt.load_state_dict(state["optimizer"])
    saved = state["best"]
    best.best = {**saved["best"], "key": tuple(saved["best"]["key"])}
    best.last, best.since_best, best.epochs_run = saved["last"], int(saved["since_best"]), int(saved["epochs_run"])
    set_rng_states(state["rng"])
    return int(state["epoch"]) + 1, float(state["seconds"])
