"""The built-in model families: importing this module registers their models, tasks, views, report layouts
and commands (:mod:`fixpt.registry`). The registry imports it by name (``FAMILY_MODULES``), so nothing
else in fixpt depends on any family; a plugin appends its own module to ``fixpt.registry.FAMILY_MODULES``."""

from . import builtin_commands  # noqa: F401  (`fixpt data navier-stokes`, `fixpt recycle ...`)
from .diffusion import family as diffusion_family  # noqa: F401
from .diffusion import report as fig2_layout  # noqa: F401  (a report layout)
from .models import anie, gnn, itergnn, pign, vit  # noqa: F401
from .models import graph_tables  # noqa: F401  (the report layouts table5, table1)
from .recycle import family as recycle_family  # noqa: F401
from .recycle import report as recycle_layout  # noqa: F401
from .report import generic as generic_layout  # noqa: F401
from .tasks import fields, node_classification  # noqa: F401
