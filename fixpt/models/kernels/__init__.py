"""The compute kernels of the graph models, and the one choice between their two backends.

* ``fast`` (default): message passing as CSR products (:mod:`.csr`), GAT's aggregation as one
  block-diagonal CSR product (:mod:`.gat`), dropout from random bits and on the non-zeros of sparse
  features (:mod:`.dropout`), each with the ``vmap`` rules that seed batches need.
* ``reference``: torch-geometric's ``GCNConv`` / ``SAGEConv`` / ``GATConv`` message passing
  (:mod:`.reference`), ``torch.nn.functional.dropout`` and ``F.linear``: public API only, slower,
  and no seed batches. Same parameters, so a checkpoint loads into either.

Beyond the three blocks, :mod:`.pyg` opens the reference side to any ``torch_geometric.nn``
convolution by class name (PIGN's ``--backbone pyg:NAME``): built square, checked when built,
always run by torch-geometric.

A block takes its backend when it is built, from :func:`backend`: the ``FIXPT_KERNELS`` environment
variable (``fast`` or ``reference``). Before the fast kernels are first used they are checked on
a tiny graph against dense products (:func:`self_check`); if that fails (say a torch upgrade broke
CSR tensors), blocks are built with the reference backend and one warning says why: the runs
slow down instead of breaking.
"""

from __future__ import annotations

import functools
import os
import warnings

import torch

from ...errors import FixptError
from .csr import SparseMatrix, linear, propagation_matrix
from .dropout import dropout, dropout_nonzeros, input_product
from .gat import AttentionGraph, attention
from .graph import Graph, GraphCache, as_graph
from .reference import ReferenceConv

BACKENDS = ("fast", "reference")
ENV = "FIXPT_KERNELS"

__all__ = ["BACKENDS", "AttentionGraph", "Graph", "GraphCache", "ReferenceConv", "SparseMatrix", "as_graph", "attention",
           "backend", "dropout", "dropout_nonzeros", "input_product", "linear", "propagation_matrix", "self_check"]


def backend(name: str | None = None) -> str:
    """The backend for a block being built: ``name``, else ``$FIXPT_KERNELS``, else ``fast``; ``fast``
    becomes ``reference`` (with one warning) when the fast kernels fail :func:`self_check`."""
    name = name or os.environ.get(ENV) or "fast"
    if name not in BACKENDS:
        raise FixptError(f"unknown kernel backend {name!r} ({ENV}); valid: {', '.join(BACKENDS)}")
    return name if name == "reference" or _fast_kernels_work() else "reference"


@functools.cache
def _fast_kernels_work() -> bool:
    why = self_check()
    if why is not None:
        warnings.warn(f"fixpt: the fast graph kernels failed their self-check ({why}); using the reference backend "
                      f"(torch-geometric convolutions), which is slower. Set {ENV}=reference to choose it explicitly.",
                      RuntimeWarning, stacklevel=3)
    return why is None


def self_check() -> str | None:
    """Run the fast kernels on a 5-node graph against dense float64 products: the CSR product with its
    backward and forward-mode rules, GAT's aggregation with its backward, and bit dropout's values.
    Returns None when they agree, else what failed."""
    try:
        with torch.random.fork_rng(devices=[]), torch.inference_mode(False), torch.enable_grad():  # no trace left behind
            checks = _check_products() | _check_attention() | _check_dropout()
        for what, (a, b) in checks.items():
            if not torch.allclose(a, b, atol=1e-10):
                return f"{what} disagrees with its dense computation"
        return None
    except Exception as err:  # noqa: BLE001: any failure of the fast kernels means: use the reference ones
        return f"{type(err).__name__}: {err}"


_EDGES = torch.tensor([[0, 1, 1, 2, 3, 4, 4], [1, 0, 2, 3, 4, 0, 2]])  # 5 nodes, source first


def _check_products() -> dict:
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    M = propagation_matrix(_EDGES, 5, "gcn")
    dense = M.to_dense().double()
    (grad,) = torch.autograd.grad((M @ x).sum(), x)
    _, tangent = torch.func.jvp(lambda z: M @ z, (x.detach(),), (x.detach(),))
    return {"CSR product": (M @ x, dense @ x), "CSR backward": (grad, dense.sum(0)[:, None].expand(5, 3)),
            "CSR forward mode": (tangent, dense @ x.detach())}


def _check_attention() -> dict:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    att_src, att_dst = torch.randn(2, 1, 1, 3, dtype=torch.float64, generator=g)
    out = attention(AttentionGraph(_EDGES, 5), x.view(5, 1, 3), att_src, att_dst, 0.2, 0.0, False)[:, 0]
    mask = torch.eye(5, dtype=torch.bool)
    mask[_EDGES[1], _EDGES[0]] = True  # row = target, column = source
    e = torch.nn.functional.leaky_relu((x * att_dst[0]).sum(-1)[:, None] + (x * att_src[0]).sum(-1)[None, :], 0.2)
    ref = torch.softmax(e.masked_fill(~mask, -torch.inf), dim=1) @ x
    grads = [torch.autograd.grad(y.square().sum(), x)[0] for y in (out, ref)]
    return {"GAT aggregation": (out, ref), "GAT backward": tuple(grads)}


def _check_dropout() -> dict:
    out = dropout(torch.ones(64, dtype=torch.float64), 0.5)
    return {"bit dropout": (((out == 0) | (out == 2)).double(), torch.ones(64, dtype=torch.float64))}
