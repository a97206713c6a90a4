"""Built-in models; importing this package registers them."""

from . import gnn, itergnn, pign  # noqa: F401
