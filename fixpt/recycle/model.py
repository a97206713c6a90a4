"""``alphafold-recycle``: AlphaFold's recycles as a Picard iteration, in the registry so that
``fixpt sweep`` and ``fixpt report`` handle it like the trained models (see :mod:`fixpt.recycle`)."""

from __future__ import annotations

from ..registry import register
from .sweep_point import RecycleModelConfig, run_point


@register("alphafold-recycle", config=RecycleModelConfig, task="structure-recycling")
class AlphaFoldRecycle:
    """AlphaFold (ColabFold) recycling scored recycle by recycle against a reference structure."""

    def __init__(self, config: RecycleModelConfig, in_dim: int = 0, out_dim: int = 0):
        self.config = config

    def run(self, data, run, out):
        return run_point(self.config, data, run, out)
