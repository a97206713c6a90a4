"""Built-in models; importing this package registers them."""

from . import alphafold_recycle, gnn, itergnn, pign  # noqa: F401
