"""Driving ``colabfold_batch`` (ColabFold's command-line tool) for every recycle of every target.

Each FASTA record is one target, run on its own into ``OUT/{target}/`` so that a finished target
(ColabFold's ``{target}.done.txt`` and its recycle files present) is never redone, and a crash
loses at most the target in flight. The command line, per target::

    colabfold_batch OUT/inputs/{target}.fasta OUT/{target} --num-recycle N --save-recycles
        --num-models M --model-order 1,2,... --num-seeds S --random-seed SEED
        --model-type TYPE --recycle-early-stop-tolerance 0

``--recycle-early-stop-tolerance 0`` makes ColabFold run every recycle (its default stops
early once ``tol`` is small), so every trajectory has N + 1 structures.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import FixptError

INSTALL_HINT = ("install ColabFold (https://github.com/sokrypton/ColabFold, e.g. `pip install \"colabfold[alphafold]\"` with its "
                "weights, or LocalColabFold), or pass --colabfold PATH to its colabfold_batch")
MODEL_TYPE_CHOICES = ("auto", "alphafold2", "alphafold2_ptm", "alphafold2_multimer_v1", "alphafold2_multimer_v2",
                      "alphafold2_multimer_v3")


@dataclass
class RecycleRunConfig:
    max_recycles: int = field(default=20, metadata={"min": 0, "help": "recycles after the first pass: structures r0 .. rN"})
    models: str = field(default="1-5", metadata={"help": "AlphaFold models to run: a range 1-5 or a list 1,3"})
    seeds: int = field(default=5, metadata={"min": 1, "help": "seeds per model"})
    model_type: str = field(default="auto", metadata={"help": "ColabFold --model-type", "choices": MODEL_TYPE_CHOICES})
    colabfold: str = field(default="colabfold_batch", metadata={"help": "the colabfold_batch executable (name on PATH or path)"})


def parse_models(spec: str) -> list[int]:
    """``"1-5"`` -> [1, 2, 3, 4, 5]; ``"1,3"`` -> [1, 3]; AlphaFold has models 1 to 5."""
    models: list[int] = []
    for part in str(spec).split(","):
        m = re.fullmatch(r"\s*(\d)\s*(?:-\s*(\d)\s*)?", part)
        if m is None:
            raise FixptError(f"--models {spec!r} must be a range like 1-5 or a list like 1,3,5")
        lo, hi = int(m[1]), int(m[2] or m[1])
        models += range(lo, hi + 1)
    if not models or min(models) < 1 or max(models) > 5 or len(set(models)) != len(models):
        raise FixptError(f"--models {spec!r} must name distinct AlphaFold models between 1 and 5")
    return models


def safe_name(header: str) -> str:
    """A FASTA header as a job name: ColabFold's rule, characters other than letters, digits, ``-`` and ``_`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9_\-]", "_", header.split()[0] if header.split() else "")


def read_fasta(path: str | Path) -> list[tuple[str, str]]:
    """``(job name, sequence)`` per record; ``:`` separates the chains of a complex, as in ColabFold."""
    path = Path(path)
    if not path.is_file():
        raise FixptError(f"FASTA file {path} does not exist")
    records: list[tuple[str, list[str]]] = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith(">"):
            records.append((safe_name(line[1:]), []))
        elif line:
            if not records:
                raise FixptError(f"{path} is not FASTA: sequence before the first '>' header line")
            records[-1][1].append(line)
    out = [(name, "".join(seq).upper()) for name, seq in records]
    if not out:
        raise FixptError(f"{path} has no FASTA records ('>name' lines followed by a sequence)")
    for name, seq in out:
        if not name or not seq or not re.fullmatch(r"[A-Z:]+", seq):
            raise FixptError(f"{path}: record {name or '(no name)'!r} needs a name and a sequence of amino-acid letters")
    if len({n for n, _ in out}) != len(out):
        raise FixptError(f"{path} has two records with the same name; each target needs its own")
    return out


def find_executable(name: str) -> str:
    path = shutil.which(name) if os.sep not in name else (name if os.access(name, os.X_OK) else None)
    if path is None:
        raise FixptError(f"ColabFold's {name!r} was not found; {INSTALL_HINT}")
    return path


def colabfold_command(exe: str, fasta: Path, out: Path, cfg: RecycleRunConfig, seed: int = 0) -> list[str]:
    models = parse_models(cfg.models)
    return [exe, str(fasta), str(out), "--num-recycle", str(cfg.max_recycles), "--save-recycles",
            "--num-models", str(len(models)), "--model-order", ",".join(map(str, models)),
            "--num-seeds", str(cfg.seeds), "--random-seed", str(seed), "--model-type", cfg.model_type,
            "--recycle-early-stop-tolerance", "0"]


def is_finished(target_dir: Path, target: str) -> bool:
    return (target_dir / f"{target}.done.txt").is_file() and any(target_dir.glob(f"{target}_unrelaxed_*.r0.pdb"))


def run_colabfold(fasta: str | Path, out: str | Path, cfg: RecycleRunConfig, *, seed: int = 0, targets: list[str] | None = None,
                  on_target: Callable[[str, str], None] | None = None) -> dict:
    """Run every (or the named) FASTA record, seeds ``seed`` .. ``seed + cfg.seeds - 1``; returns ``{"finished", "skipped", "failed": {target: reason}}``.
    ``on_target(target, state)`` is called with state "start", "skip", "done" or "failed"."""
    if cfg.max_recycles < 0 or cfg.seeds < 1:
        raise FixptError("--max-recycles must be >= 0 and --seeds >= 1")
    parse_models(cfg.models)
    records = read_fasta(fasta)
    if targets:
        unknown = sorted(set(targets) - {n for n, _ in records})
        if unknown:
            raise FixptError(f"target(s) {', '.join(unknown)} not in {fasta}; its records: {', '.join(n for n, _ in records)}")
        records = [r for r in records if r[0] in targets]
    exe = find_executable(cfg.colabfold)
    out = Path(out)
    (out / "inputs").mkdir(parents=True, exist_ok=True)
    summary: dict = {"finished": [], "skipped": [], "failed": {}}
    notify = on_target or (lambda target, state: None)
    for name, seq in records:
        target_dir = out / name
        if is_finished(target_dir, name):
            summary["skipped"].append(name)
            notify(name, "skip")
            continue
        notify(name, "start")
        fasta_one = out / "inputs" / f"{name}.fasta"
        fasta_one.write_text(f">{name}\n{seq}\n")
        target_dir.mkdir(exist_ok=True)
        with open(target_dir / "colabfold_output.txt", "w") as log:
            proc = subprocess.run(colabfold_command(exe, fasta_one, target_dir, cfg, seed), stdout=log, stderr=subprocess.STDOUT)
        if proc.returncode != 0 or not is_finished(target_dir, name):
            reason = f"colabfold_batch exited with {proc.returncode}" if proc.returncode else "no done.txt or recycle files written"
            summary["failed"][name] = f"{reason}; see {target_dir / 'colabfold_output.txt'}"
            notify(name, "failed")
        else:
            summary["finished"].append(name)
            notify(name, "done")
    return summary


def link_precomputed(predictions: str | Path, out: str | Path, targets: list[str] | None = None) -> dict:
    """The precomputed backend of ``recycle run``: the trajectories of ``predictions`` (either layout of
    :mod:`.layout`), linked into ``OUT/{target}/`` under ColabFold's per-recycle names, so that
    ``recycle score OUT`` reads them exactly as a fresh ColabFold run. Nothing is copied."""
    from .layout import find_trajectories, prediction_name

    out = Path(out)
    found = find_trajectories(predictions)
    names = sorted({t.target for t in found})
    if targets:
        missing = sorted(set(targets) - set(names))
        if missing:
            raise FixptError(f"no recycle files for target(s) {', '.join(missing)} in {predictions}; it holds: {', '.join(names)}")
        found = [t for t in found if t.target in targets]
    summary: dict = {"finished": [], "skipped": [], "failed": {}}
    for target in sorted({t.target for t in found}):
        target_dir = out / target
        if is_finished(target_dir, target):
            summary["skipped"].append(target)
            continue
        target_dir.mkdir(parents=True, exist_ok=True)
        for traj in (t for t in found if t.target == target):
            for k, path in traj.recycles.items():
                link = target_dir / prediction_name(target, traj.model_type, traj.model, traj.seed, k)
                link.unlink(missing_ok=True)
                link.symlink_to(Path(path).resolve())
        (target_dir / f"{target}.done.txt").write_text(f"linked from {Path(predictions).resolve()}\n")
        summary["finished"].append(target)
    return summary
