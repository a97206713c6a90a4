"""What ColabFold writes, and how to find the recycles of each prediction in a folder.

``colabfold_batch --save-recycles`` writes flat into its results folder, per job (target),
model and seed::

    {job}_unrelaxed_rank_{r:03d}_{model_type}_model_{m}_seed_{s:03d}.r{k}.pdb   k = 0 .. N
    {job}_unrelaxed_rank_{r:03d}_{model_type}_model_{m}_seed_{s:03d}.pdb        final model (= recycle N)
    {job}_unrelaxed_{model_type}_model_{m}_seed_{s:03d}.r{k}.pdb                before ranking (an interrupted run)
    {job}_scores_rank_{r:03d}_{model_type}_model_{m}_seed_{s:03d}.json          pLDDT (+ PAE, pTM for pTM models)
    {job}.done.txt, log.txt (lines "... recycle=k pLDDT=... pTM=... tol=...")

where ``model_type`` is ``alphafold2``, ``alphafold2_ptm`` or ``alphafold2_multimer_v1/2/3``.
Two layouts are read:

- **per-recycle files** (one run with ``--save-recycles``): the ``.r{k}.pdb`` files, found in the
  folder itself and in its immediate subfolders (``fixpt recycle run`` writes one per target);
- **one run per recycle count** (how the paper ran 0..20 recycles): subfolders named
  ``recycles_{k}``, ``recycle_{k}`` or ``r{k}``, each a ColabFold results folder whose *final*
  models are the predictions after k recycles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FixptError

MODEL_TYPES = ("alphafold2", "alphafold2_ptm", "alphafold2_multimer_v1", "alphafold2_multimer_v2", "alphafold2_multimer_v3")
PREDICTION = re.compile(
    r"^(?P<job>.+?)_unrelaxed_(?:rank_(?P<rank>\d+)_)?(?P<model_type>alphafold2(?:_ptm|_multimer_v\d)?)"
    r"_model_(?P<model>\d+)(?:_seed_(?P<seed>\d+))?(?:\.r(?P<recycle>\d+))?\.pdb$")
RECYCLE_FOLDER = re.compile(r"^(?:recycles?|r)[_-]?(?P<k>\d+)$")


@dataclass
class Trajectory:
    """The recycles of one prediction: target x AlphaFold model x seed."""

    target: str
    model: int
    seed: int
    model_type: str
    recycles: dict[int, Path] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int, int]:
        return self.target, self.model, self.seed


def prediction_name(job: str, model_type: str, model: int, seed: int, recycle: int | None = None, rank: int | None = None) -> str:
    """The file name ColabFold gives a prediction (``rank`` None: the name before ranking)."""
    ranked = f"rank_{rank:03d}_" if rank is not None else ""
    suffix = f".r{recycle}" if recycle is not None else ""
    return f"{job}_unrelaxed_{ranked}{model_type}_model_{model}_seed_{seed:03d}{suffix}.pdb"


def _parse(path: Path):
    m = PREDICTION.match(path.name)
    if m is None:
        return None
    return m["job"], m["model_type"], int(m["model"]), int(m["seed"] or 0), (int(m["recycle"]) if m["recycle"] else None), m["rank"]


def _add(found: dict, job, model_type, model, seed, k, path: Path, ranked: bool) -> None:
    traj = found.setdefault((job, model, seed), Trajectory(job, model, seed, model_type))
    # a ranked file wins over the unranked name of the same recycle (ColabFold renames at the end)
    if k not in traj.recycles or ranked:
        traj.recycles[k] = path


def find_trajectories(folder: str | Path) -> list[Trajectory]:
    """Every trajectory in ``folder`` (either layout); an error if there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FixptError(f"{folder} is not a folder; give the ColabFold results folder (or fixpt recycle run's --out)")
    found: dict[tuple, Trajectory] = {}
    per_count = sorted((int(m["k"]), d) for d in folder.iterdir() if d.is_dir() and (m := RECYCLE_FOLDER.match(d.name)))
    if per_count:
        for k, d in per_count:
            for path in sorted(d.glob("*.pdb")):
                parsed = _parse(path)
                if parsed and parsed[4] is None:  # the final model of a run with k recycles
                    job, model_type, model, seed, _, rank = parsed
                    _add(found, job, model_type, model, seed, k, path, rank is not None)
    else:
        for d in [folder] + sorted(p for p in folder.iterdir() if p.is_dir()):
            for path in sorted(d.glob("*.r*.pdb")):
                parsed = _parse(path)
                if parsed and parsed[4] is not None:
                    job, model_type, model, seed, k, rank = parsed
                    _add(found, job, model_type, model, seed, k, path, rank is not None)
    if not found:
        raise FixptError(f"{folder} has no recycle files: expected ColabFold's *_unrelaxed_*.r{{k}}.pdb (run colabfold_batch "
                         "with --save-recycles) or subfolders recycles_{k}/ with one final model per recycle count")
    for traj in found.values():
        missing = sorted(set(range(max(traj.recycles) + 1)) - set(traj.recycles))
        if missing:
            raise FixptError(f"{traj.target} model {traj.model} seed {traj.seed} in {folder} lacks recycle(s) "
                             f"{', '.join(map(str, missing))}; the run was interrupted: rerun it (finished targets are kept)")
    return sorted(found.values(), key=lambda t: t.key)
