"""The report layouts of the paper's node-classification tables (``fixpt report``, :mod:`fixpt.report.scores`):

- ``table5``: rows are frameworks x backbones ("GCN", "IterGNN with GAT", "PIGN with GCN", ...),
  columns datasets x noise ("Cora", "Cora-50%", ...), accuracy in percent (paper, Table 5);
- ``table1``: rows are frameworks ("w/o iterations", "IterGNN", "PIGN"), columns backbones,
  the score as a fraction (paper, Table 1).

PIGN's rows name its form: "PIGN with GCN" is the paper's Algorithm 1 (``form: paper``), the row
the paper's numbers belong to; fixpt's fixed-point form is "PIGN (fixed-point) with GCN". A
torch-geometric backbone (``pyg:GINConv``) is named by its class: "PIGN with GINConv". Rows and
columns stand in the paper's order: frameworks, then backbones; datasets, then noise.
"""

from __future__ import annotations

from ..registry import register_layout
from ..report import FinishedRun, Options, Place, ScoreLayout

BACKBONE_LABELS = {"gcn": "GCN", "gat": "GAT", "sage": "GraphSAGE"}
FRAMEWORK_LABELS = {"gnn": "w/o iterations", "itergnn": "IterGNN", "pign": "PIGN"}
DATASET_LABELS = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed", "csbm": "CSBM", "longrange": "long-range",
                  "pascalvoc-sp": "PascalVOC-SP"}


def framework(model: str, params: dict) -> str:
    """The framework's row label; PIGN's names its form (the paper's Algorithm 1 is plain "PIGN")."""
    label = FRAMEWORK_LABELS.get(model, model)
    if model == "pign" and params.get("form", "fixed-point") != "paper":
        label += " (fixed-point)"
    return label


def backbone(params: dict) -> str:
    """The backbone's label: "GCN", "GAT", "GraphSAGE", or a torch-geometric conv's class name ("pyg:GINConv" -> "GINConv")."""
    name = str(params.get("backbone", "gcn"))
    return BACKBONE_LABELS.get(name, name.removeprefix("pyg:"))


def paper_order(label: str) -> tuple:
    """Frameworks (plain GNNs first), then backbones and datasets as the paper lists them, noisy columns last."""
    words = [FRAMEWORK_LABELS["itergnn"], FRAMEWORK_LABELS["pign"]]
    framework_rank = next((i + 1 for i, w in enumerate(words) if label.startswith(w)), 0)
    order = list(BACKBONE_LABELS.values()) + list(DATASET_LABELS.values())
    item = next((i for i, w in enumerate(order) if w in label), len(order))
    return framework_rank, item, "%" in label, label


class PaperTable(ScoreLayout):
    def row_order(self, label: str, first: FinishedRun, varying: list[str]) -> tuple:
        return paper_order(label)

    def column_order(self, label: str) -> tuple:
        return paper_order(label)


@register_layout("table5")
class Table5(PaperTable):
    def place(self, run: FinishedRun, metric: str, varying: list[str], options: Options) -> Place:
        p = run.params
        row = backbone(p) if run.model == "gnn" else f"{framework(run.model, p)} with {backbone(p)}"
        noise = float(p.get("noise", 0.0))
        column = DATASET_LABELS.get(p.get("dataset", ""), p.get("dataset", "")) + (f"-{100 * noise:g}%" if noise > 0 else "")
        return Place(row, column, {"model", "form", "backbone", "dataset", "noise"})


@register_layout("table1")
class Table1(PaperTable):
    def place(self, run: FinishedRun, metric: str, varying: list[str], options: Options) -> Place:
        return Place(framework(run.model, run.params), backbone(run.params), {"model", "form", "backbone"})
