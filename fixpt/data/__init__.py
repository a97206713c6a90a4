"""Data sources. Graph data sets are described by a :class:`GraphDataConfig` (stored in every
checkpoint, so ``iterate`` and ``check-contraction`` rebuild exactly the inputs a model saw)."""

from .graph import GraphDataConfig, load_graph, drop_in_noise

__all__ = ["GraphDataConfig", "load_graph", "drop_in_noise"]
