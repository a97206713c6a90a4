"""Built-in models; importing this package registers them."""

from ..diffusion import model as ddpm  # noqa: F401
from . import alphafold_recycle, anie, gnn, itergnn, pign, vit  # noqa: F401
