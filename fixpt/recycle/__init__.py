"""AlphaFold recycling as Picard iteration: drive ColabFold, find its per-recycle structures, score them.

- :mod:`.runner`: ``colabfold_batch`` per FASTA record, resumable;
- :mod:`.layout`: ColabFold's file names and the two folder layouts read;
- :mod:`.score`: scores per recycle, Picard residuals, contraction ratios and verdicts.
"""

from ..lazy import exports

# imported on first use (the scores need gemmi and torch): `fixpt --help` imports fixpt.recycle.commands only
__getattr__, __dir__ = exports(__name__, {
    **dict.fromkeys(["Trajectory", "find_trajectories", "prediction_name"], ".layout"),
    **dict.fromkeys(["RecycleRunConfig", "colabfold_command", "read_fasta", "run_colabfold"], ".runner"),
    **dict.fromkeys(["ScoreOptions", "score_folder", "score_trajectory", "summarise"], ".score"),
})

__all__ = ["Trajectory", "find_trajectories", "prediction_name", "RecycleRunConfig", "colabfold_command", "read_fasta",
           "run_colabfold", "ScoreOptions", "score_folder", "score_trajectory", "summarise"]
