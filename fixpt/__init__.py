"""fixpt: neural networks as fixed-point operators.

    z* = P(z*),   P(z) = T(z) + f,   z_{k+1} = a z_k + (1 - a) P(z_k)

Public API: :func:`solve` (damped Picard / Anderson with unroll, last or implicit gradients),
:func:`lipschitz`, :func:`spectral_radius`, :func:`contraction` and the Banach bounds, the model
registry (:func:`register`, :func:`list_models`), and checkpoints.
"""

from .version import __version__
from .checkpoint import load_checkpoint, save_checkpoint
from .contraction import (
    ContractionReport,
    a_posteriori_bound,
    a_priori_bound,
    contraction,
    empirical_ratio,
    lipschitz,
    spectral_radius,
)
from .errors import DivergenceError, FixptError
from .registry import get_spec, list_models, register
from .solve import Solution, solve

__all__ = [
    "solve", "Solution", "lipschitz", "spectral_radius", "empirical_ratio", "contraction", "ContractionReport",
    "a_priori_bound", "a_posteriori_bound", "register", "list_models", "get_spec", "save_checkpoint",
    "load_checkpoint", "FixptError", "DivergenceError", "__version__",
]
