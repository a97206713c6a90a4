r"""A generated long-range benchmark: the label sits ``distance`` hops away from the node that needs it.

The graph is ``longrange_graphs`` disjoint paths :math:`s = v_0 - v_1 - \dots - v_d = t` with
:math:`d` = ``distance``. Each path draws a class :math:`c \in \{0, \dots, C-1\}`; only the source
:math:`s` carries it, as a one-hot block of its features. Every node also gets two flags (source,
target) and Gaussian noise of standard deviation ``noise_std``:

.. math::
    x_s = [e_c, 1, 0] + \varepsilon_s, \qquad x_{v_i} = [0, 0, 0] + \varepsilon_{v_i},
    \qquad x_t = [0, 0, 1] + \varepsilon_t.

The task is to classify the targets :math:`t` (all nodes are labelled :math:`c`, but the masks
hold targets only; paths are split 50 / 25 / 25 % into train / validation / test). An L-layer
message-passing GNN computes :math:`t`'s output from its L-hop neighbourhood; for
:math:`L < d` that neighbourhood holds no feature that depends on :math:`c`, so the output is
independent of the label and the expected accuracy is exactly chance, 1/C. Each Picard iteration
of a GNN block moves information one hop, so an iterative model can reach :math:`s` once it runs
at least :math:`d` iterations.
"""

from __future__ import annotations

import torch
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected


def make_longrange(cfg) -> Data:
    g = torch.Generator().manual_seed(cfg.longrange_seed)
    n_paths, d, c = cfg.longrange_graphs, cfg.longrange_distance, cfg.longrange_classes
    per_path = d + 1
    n = n_paths * per_path
    y_path = torch.randint(0, c, (n_paths,), generator=g)
    y = y_path.repeat_interleave(per_path)  # (n,)
    node = torch.arange(n)
    pos = node % per_path  # 0 = source, d = target
    x = torch.zeros(n, c + 2)
    src = pos == 0
    x[src, y[src]] = 1.0
    x[src, c] = 1.0
    x[pos == d, c + 1] = 1.0
    x = x + cfg.longrange_noise_std * torch.randn(n, c + 2, generator=g)

    chain = node[pos < d]
    edge_index = to_undirected(torch.stack([chain, chain + 1]), num_nodes=n)

    perm = torch.randperm(n_paths, generator=g)
    n_train, n_val = n_paths // 2, n_paths // 4
    targets = torch.arange(n_paths) * per_path + d
    masks = []
    for part in (perm[:n_train], perm[n_train:n_train + n_val], perm[n_train + n_val:]):
        m = torch.zeros(n, dtype=torch.bool)
        m[targets[part]] = True
        masks.append(m)
    return Data(x=x, edge_index=edge_index, y=y, train_mask=masks[0], val_mask=masks[1], test_mask=masks[2])
