"""Data sources. Graph data sets are described by a :class:`GraphDataConfig` (stored in every
checkpoint, so ``iterate`` and ``check-contraction`` rebuild exactly the inputs a model saw)."""

from ..lazy import exports

# imported on first use (torch_geometric is heavy): `fixpt --help` imports fixpt.data.commands, not the data sets
__getattr__, __dir__ = exports(__name__, dict.fromkeys(["GraphDataConfig", "load_graph", "drop_in_noise"], ".graph"))

__all__ = ["GraphDataConfig", "load_graph", "drop_in_noise"]
