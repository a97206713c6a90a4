"""Benchmark: what one Cora run costs, ours against torch-geometric's message passing, same process.

    FIXPT_DATA=../shared/data python benchmarks/cora_run.py [--epochs 20] [--noise 0.0]

1. Per epoch (a training step and the evaluation pass) of PIGN on Cora, GCN, GraphSAGE and GAT
   blocks: ours (CSR sparse products for propagation, attention aggregation and the sparse input
   features) against the same model with torch-geometric's ``GCNConv(cached=True)`` /
   ``SAGEConv`` / ``GATConv`` blocks and a dense input layer with non-zero-only dropout (fixpt 0.1). The weights are copied across, and the
   two forward passes are checked to agree before anything is timed. Variants alternate in
   rounds; medians are reported, and their ratio.
2. Loading: the first ``load_graph`` of a process (raw files -> PyG processing -> row
   normalisation -> noise) against every later one (the per-process cache a sweep relies on).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import torch
from torch import nn

warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*")

from torch_geometric.nn import GATConv, GCNConv, SAGEConv  # noqa: E402

from fixpt.data.graph import GraphDataConfig, _load_cached, load_graph  # noqa: E402
from fixpt.train import build, evaluate  # noqa: E402


class FeatureDropout(nn.Module):
    """fixpt 0.1's input dropout: masks drawn on the non-zero entries only, into a dense output."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        flat = x.reshape(-1)
        nonzero = flat.nonzero().squeeze(1)
        kept = nonzero[torch.rand(nonzero.shape[0], device=x.device) >= self.p]
        out = torch.zeros_like(flat)
        out[kept] = flat[kept] / (1.0 - self.p)
        return out.reshape(x.shape)


def pyg_twin(model):
    """A copy of ``model`` whose block and input layer are fixpt 0.1's (torch-geometric), same weights."""
    import copy

    twin = copy.deepcopy(model)
    hidden = model.cfg.hidden
    if model.cfg.backbone == "gcn":
        conv = GCNConv(hidden, hidden, cached=True)
        conv.lin.weight.data.copy_(model.block.lin.weight.data)
        conv.bias.data.copy_(model.block.bias.data)
    elif model.cfg.backbone == "gat":
        conv = GATConv(hidden, hidden // model.cfg.heads, heads=model.cfg.heads, dropout=model.cfg.attn_dropout)
        conv.load_state_dict(model.block.state_dict())
    else:
        conv = SAGEConv(hidden, hidden)
        for name in ("lin_l", "lin_r"):
            getattr(conv, name).load_state_dict(getattr(model.block, name).state_dict())
    twin.block = conv
    lin = nn.Linear(model.encoder[0].in_features, hidden)
    lin.load_state_dict({"weight": model.encoder[0].weight.data, "bias": model.encoder[0].bias.data})
    twin.encoder = nn.Sequential(FeatureDropout(model.cfg.dropout), lin, nn.ReLU())
    return twin


def epoch(model, task, data, opt) -> float:
    t = time.perf_counter()
    model.train()
    opt.zero_grad(set_to_none=True)
    task.loss(model(data), data).backward()
    opt.step()
    evaluate(model, task, data)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--noise", type=float, default=0.0)
    args = ap.parse_args()
    if not os.environ.get("FIXPT_DATA"):
        raise SystemExit("this benchmark needs Cora: set FIXPT_DATA to the folder holding planetoid/")
    graph = {"dataset": "cora", "noise": args.noise}
    print(f"Cora (noise {args.noise}), PIGN defaults (hidden 64, 10 iterations), torch threads {torch.get_num_threads()}")

    t = time.perf_counter()
    load_graph(GraphDataConfig(**graph))
    first = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(10):
        load_graph(GraphDataConfig(**graph))
    cached = (time.perf_counter() - t) / 10
    print(f"  load_graph: first {1e3 * first:.1f} ms, cached {1e3 * cached:.2f} ms  ({first / cached:.0f}x)")
    _load_cached.cache_clear()

    for backbone in ("gcn", "sage", "gat"):
        torch.manual_seed(0)
        _, task, ours, data, _, _ = build("pign", {"backbone": backbone}, graph, torch.device("cpu"))
        twin = pyg_twin(ours)
        ours.eval(), twin.eval()
        with torch.no_grad():
            err = float((ours(data) - twin(data)).abs().max())
        assert err < 1e-4, f"the two implementations disagree by {err}"
        runs = {"ours (CSR)": ours, "torch-geometric (0.1)": twin}
        opts = {k: torch.optim.Adam(m.parameters(), lr=0.01) for k, m in runs.items()}
        times = {k: [] for k in runs}
        for k, m in runs.items():
            epoch(m, task, data, opts[k])  # warm-up
        for _ in range(args.epochs):
            for k, m in runs.items():
                times[k].append(epoch(m, task, data, opts[k]))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"  PIGN-{backbone}: outputs agree to {err:.1e}")
        for k, v in med.items():
            print(f"    {k:24s} {1e3 * v:7.1f} ms / epoch")
        print(f"    speed-up {med['torch-geometric (0.1)'] / med['ours (CSR)']:.2f}x")


if __name__ == "__main__":
    main()
