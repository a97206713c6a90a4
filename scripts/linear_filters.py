r"""What a *linear* contraction can express on a node-classification graph, against what truncated iterations
compute: logistic regression (chosen on validation) on the features filtered by a polynomial in the
propagation matrix :math:`P`,

.. math::
    h(P)\,X = \sum_{j \ge 0} c_j P^j X .

The filters compared:

* ``hops k``: :math:`c = e_k`, i.e. :math:`P^k X`, what :math:`k` unconstrained iterations from the input compute;
* ``geometric r``: :math:`c_j = (1 - r) r^j`, the fixed point of :math:`z = r P z + (1 - r) X` (one channel of a
  linear contraction with factor :math:`r`; personalized PageRank);
* ``combination r_1, .., r_m``: :math:`c = \sum_i a_i (1 - r_i) r_i^{\,j}` with :math:`a` the null vector that
  cancels hops :math:`0 .. m-2`: channels contracting at different factors :math:`r_i \le \gamma`, combined by a
  linear readout. A map with ``Lip <= gamma`` can hold such channels side by side (block-diagonal weights), so
  these filters are within reach of a contraction; the readout's coefficients grow with :math:`m`.

``fixpt check-contraction`` and ``--jac-penalty`` measure the undamped operator :math:`P(z) = T(z) + f`; damping
with ``alpha`` changes how fast Picard iteration gets to the fixed point, not the fixed point. A PIGN held to a
local norm ``k`` (0.9, the penalty's target in issue 18) therefore has channels of factor up to
:math:`\gamma = k`. This is a linear probe, not a bound on nonlinear models; it says which frequency responses a
contraction can have, and how well each separates the classes.

    FIXPT_DATA=../shared/data python scripts/linear_filters.py [--dataset csbm] [--gamma 0.9]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

HOPS = 120  # terms kept of a geometric series: 0.9^120 = 3.2e-6


def propagation(edge_index: torch.Tensor, n: int, kind: str) -> torch.Tensor:
    """Sparse :math:`P` with self-loops: ``sym`` :math:`D^{-1/2}(A+I)D^{-1/2}` (GCN's) or ``mean`` :math:`D^{-1}(A+I)`."""
    loops = torch.arange(n).repeat(2, 1)
    src, dst = torch.cat([edge_index, loops], 1).unique(dim=1)
    deg = torch.zeros(n, dtype=torch.float64).index_add_(0, src, torch.ones(len(src), dtype=torch.float64))
    w = (deg[src] * deg[dst]).rsqrt() if kind == "sym" else 1.0 / deg[src]
    return torch.sparse_coo_tensor(torch.stack([src, dst]), w, (n, n)).coalesce()


def geometric(r: float, hops: int = HOPS) -> torch.Tensor:
    return torch.tensor([(1 - r) * r**j for j in range(hops)], dtype=torch.float64)


def combination(ratios: tuple[float, ...], hops: int = HOPS) -> torch.Tensor:
    """Coefficients of the combination of geometric filters with these ratios that is zero on hops 0 .. m-2,
    scaled to max |c_j| = 1 (one ratio: the geometric filter itself, scaled)."""
    m = torch.stack([geometric(r, hops) for r in ratios], 1)
    a = torch.ones(1, dtype=torch.float64) if len(ratios) == 1 else torch.linalg.svd(m[: len(ratios) - 1])[2][-1]
    c = m @ a
    return c / c.abs().max()


def apply_filters(p: torch.Tensor, cs: list[torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
    """:math:`\\sum_j c_j P^j X` for every coefficient vector in ``cs``, in one pass over the hops."""
    outs, term = [torch.zeros_like(x) for _ in cs], x
    for j in range(max(len(c) for c in cs)):
        outs = [o + c[j] * term if j < len(c) else o for o, c in zip(outs, cs)]
        term = torch.sparse.mm(p, term)
    return outs


def probe(z: torch.Tensor, data, steps: int = 300, lr: float = 0.05, wd: float = 5e-3) -> tuple[float, float]:
    """(validation, test) accuracy of logistic regression on ``z`` at its best-validation step."""
    z, y = z.float(), data.y
    classes = int(y.max()) + 1
    w = torch.zeros(z.shape[1], classes, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt, best = torch.optim.Adam([w, b], lr=lr), (0.0, 0.0)
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(z[data.train_mask] @ w + b, y[data.train_mask]) + wd * w.pow(2).sum()
        loss.backward()
        opt.step()
        with torch.no_grad():
            pred = (z @ w + b).argmax(1)
            acc = [(pred[m] == y[m]).float().mean().item() for m in (data.val_mask, data.test_mask)]
        best = max(best, tuple(acc), key=lambda t: t[0])
    return best


def filters(gamma: float) -> list[tuple[str, torch.Tensor]]:
    out = [(f"hops {k}", torch.eye(HOPS, dtype=torch.float64)[k]) for k in (0, 1, 2, 5, 10)]
    out += [(f"geometric {r:g}", geometric(r)) for r in sorted({0.5, round(gamma, 3)})]
    for ratios in ((gamma, 0.75 * gamma), (gamma, 0.75 * gamma, 0.5 * gamma), (gamma, 0.875 * gamma, 0.75 * gamma, 0.625 * gamma)):
        out.append(("combination " + ", ".join(f"{r:.2f}" for r in ratios), combination(ratios)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="csbm", help="graph data set (csbm, cora, citeseer, pubmed)")
    ap.add_argument("--gamma", type=float, default=0.9, help="the largest contraction factor of a channel")
    ap.add_argument("--propagation", nargs="+", default=["sym", "mean"], help="sym (GCN's) and/or mean (SAGE's)")
    args = ap.parse_args()
    from fixpt.data.graph import GraphDataConfig, load_graph

    data = load_graph(GraphDataConfig(dataset=args.dataset))
    x = (data.x.to_dense() if data.x.is_sparse else data.x).double()
    print(f"| {args.dataset}: filter | peak hop | " + " | ".join(f"{k}: val / test" for k in args.propagation) + " |")
    print("|---|---:|" + "---:|" * len(args.propagation))
    named = filters(args.gamma)
    outs = [apply_filters(propagation(data.edge_index, data.num_nodes, k), [c for _, c in named], x) for k in args.propagation]
    for i, (name, c) in enumerate(named):
        cells = [probe(o[i], data) for o in outs]
        print(f"| {name} | {int(c.abs().argmax())} | " + " | ".join(f"{v:.3f} / {t:.3f}" for v, t in cells) + " |")


if __name__ == "__main__":
    main()
