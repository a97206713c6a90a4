"""AlphaFold recycling as Picard iteration: drive ColabFold, find its per-recycle structures, score them.

- :mod:`.runner`: ``colabfold_batch`` per FASTA record, resumable;
- :mod:`.layout`: ColabFold's file names and the two folder layouts read;
- :mod:`.score`: scores per recycle, Picard residuals, contraction ratios and verdicts.
"""

from .layout import Trajectory, find_trajectories, prediction_name
from .runner import RecycleRunConfig, colabfold_command, read_fasta, run_colabfold
from .score import ScoreOptions, score_folder, score_trajectory, summarise

__all__ = ["Trajectory", "find_trajectories", "prediction_name", "RecycleRunConfig", "colabfold_command", "read_fasta",
           "run_colabfold", "ScoreOptions", "score_folder", "score_trajectory", "summarise"]
