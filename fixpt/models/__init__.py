"""Built-in models; importing this package registers them."""

from . import alphafold_recycle, anie, gnn, itergnn, pign, vit  # noqa: F401
