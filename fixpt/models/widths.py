"""The width rule of the graph models' configs, for ``param_budget`` (:func:`fixpt.train.fit_hidden`)."""

from __future__ import annotations


class GraphWidth:
    """A graph model's ``hidden`` is a multiple of its attention heads with GAT (heads of equal width), else of 8."""

    def width_multiple(self) -> int:
        return self.heads if self.backbone == "gat" else 8
