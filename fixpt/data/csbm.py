r"""A contextual stochastic block model (Deshpande et al., 2018): a small graph made offline.

Nodes get a class :math:`c_v` uniformly; each class has a mean :math:`\mu_c` (a random direction,
scaled so that the distance between two means is ``signal`` noise standard deviations), and

.. math::
    x_v = \mu_{c_v} + \varepsilon_v, \qquad \varepsilon_v \sim \mathcal{N}(0, I_F).

Edges: ``degree * N / 2`` undirected edges, a fraction ``homophily`` of them between two nodes of
the same class and the rest between different classes. Split: 20 training nodes per class,
500 validation nodes (at most half of the rest on small graphs), the rest test (the Planetoid
convention).
"""

from __future__ import annotations

import torch
from torch_geometric.data import Data
from torch_geometric.utils import coalesce, to_undirected


def make_csbm(cfg) -> Data:
    g = torch.Generator().manual_seed(cfg.csbm_seed)
    n, c, f = cfg.csbm_nodes, cfg.csbm_classes, cfg.csbm_features
    y = torch.randint(0, c, (n,), generator=g)
    means = torch.randn(c, f, generator=g)
    means = means / means.norm(dim=1, keepdim=True) * (cfg.csbm_signal / 2 ** 0.5)
    x = means[y] + torch.randn(n, f, generator=g)

    # edges: intra-class partners drawn uniformly inside the source's class, inter-class ones
    # drawn uniformly and kept when the classes differ
    n_edges = int(cfg.csbm_degree * n / 2)
    n_intra = int(round(cfg.csbm_homophily * n_edges))
    order = torch.argsort(y)
    counts = torch.bincount(y, minlength=c)
    starts = torch.cumsum(counts, 0) - counts
    src = torch.randint(0, n, (n_intra,), generator=g)
    offset = (torch.rand(n_intra, generator=g) * counts[y[src]]).long()
    intra = torch.stack([src, order[starts[y[src]] + offset]])
    cand = torch.randint(0, n, (2, 4 * (n_edges - n_intra) + 16), generator=g)
    inter = cand[:, y[cand[0]] != y[cand[1]]][:, : n_edges - n_intra]
    edge_index = torch.cat([intra, inter], dim=1)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    edge_index = coalesce(to_undirected(edge_index, num_nodes=n), num_nodes=n)

    perm = torch.randperm(n, generator=g)
    train_mask = torch.zeros(n, dtype=torch.bool)
    for k in range(c):
        train_mask[perm[y[perm] == k][:20]] = True
    rest = perm[~train_mask[perm]]
    val_mask = torch.zeros(n, dtype=torch.bool)
    val_mask[rest[: min(500, len(rest) // 2)]] = True
    test_mask = ~(train_mask | val_mask)
    return Data(x=x, edge_index=edge_index, y=y, train_mask=train_mask, val_mask=val_mask, test_mask=test_mask)
