"""fixpt: neural networks as fixed-point operators.

    z* = P(z*),   P(z) = T(z) + f,   z_{k+1} = a z_k + (1 - a) P(z_k)

Public API: :func:`solve` (damped Picard / Anderson with unroll, last or implicit gradients),
:func:`lipschitz`, :func:`spectral_radius`, :func:`contraction` and the Banach bounds, the model
registry (:func:`register`, :func:`list_models`), checkpoints, and :class:`DEQ`, which wraps your own
step module ``T(z, x)`` as a fixed-point layer.

Each name is imported on first use (:mod:`fixpt.lazy`), so ``import fixpt`` (and ``fixpt --help``) does
not import torch; ``fixpt.solve`` and ``fixpt.contraction`` are the functions, as their modules'
names are taken by them.
"""

import sys

from .lazy import FunctionsOverModules, exports
from .version import __version__

_EXPORTS = {
    **dict.fromkeys(["load_checkpoint", "save_checkpoint"], ".checkpoint"),
    **dict.fromkeys(["ContractionReport", "a_posteriori_bound", "a_priori_bound", "contraction", "empirical_ratio", "lipschitz",
                     "spectral_radius"], ".contraction"),
    **dict.fromkeys(["DEQ"], ".deq"),
    **dict.fromkeys(["DivergenceError", "FixptError"], ".errors"),
    **dict.fromkeys(["get_spec", "list_models", "register"], ".registry"),
    **dict.fromkeys(["Solution", "solve"], ".solve"),
}
__getattr__, __dir__ = exports(__name__, _EXPORTS)
__function_names__ = ("solve", "contraction")
sys.modules[__name__].__class__ = FunctionsOverModules

__all__ = [
    "solve", "Solution", "DEQ", "lipschitz", "spectral_radius", "empirical_ratio", "contraction", "ContractionReport",
    "a_priori_bound", "a_posteriori_bound", "register", "list_models", "get_spec", "save_checkpoint",
    "load_checkpoint", "FixptError", "DivergenceError", "__version__",
]
