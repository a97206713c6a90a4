"""The paper's published numbers beside ours (``fixpt report --compare paper``).

``fixpt/paper_results.yaml`` holds them, one entry per layout, with cells keyed by the layout's row
and column labels, exactly as printed in the paper.
"""

from __future__ import annotations

from importlib import resources

import yaml

from ..errors import FixptError
from .table import Table


def paper_results() -> dict:
    return yaml.safe_load(resources.files("fixpt").joinpath("paper_results.yaml").read_text())


def attach_paper(table: Table, layout: str) -> None:
    """Put the paper's numbers for ``layout`` into the matching cells, and its source into the table."""
    published = paper_results()
    if layout not in published:
        raise FixptError(f"the paper publishes no numbers for the {layout!r} layout; --compare paper works with "
                         f"{', '.join(published)}")
    entry = published[layout]
    table.source = entry["source"]
    scale = 100.0 if entry["scale"] == "percent" else 1.0
    matched = 0
    for row in table.rows:
        for column, cell in row.cells.items():
            values = entry["cells"].get(row.label, {}).get(column)
            if values is not None:
                cell.paper = (values[0] / scale, values[1] / scale)
                matched += 1
    if not matched:
        raise FixptError(f"no cell of this sweep matches the paper's {layout} (rows {', '.join(entry['cells'])})")
