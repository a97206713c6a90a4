r"""Dropout and the input layer of the graph models, in the backend chosen when they are built.

:class:`Dropout` is the dropout of every graph model (features, hidden layers, the PIGN loop):
with the fast kernels, masks from random bits (:func:`fixpt.models.kernels.dropout`), and on a
sparse input (bag-of-words features, a :class:`~fixpt.models.kernels.SparseMatrix`) masks on the
non-zeros only, which has the same distribution as dropout on the dense matrix; with the reference
kernels, ``torch.nn.functional.dropout``. Either way an entry is kept with probability
:math:`1 - p` (fast: :math:`\operatorname{round}((1 - p) 2^{16}) / 2^{16}`) and scaled by the
inverse of that probability, so :math:`E[\mathrm{out}] = x`.

:class:`InputLinear` is :math:`\mathrm{dropout}(X) W^\top + b` on input features, a CSR product
when they are sparse.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from . import kernels
from .kernels import SparseMatrix


class Dropout(nn.Module):
    """Dropout of a dense tensor or of a sparse matrix's non-zeros (a drop-in for ``nn.Dropout``).

    Args:
        p: probability of an entry being zeroed (default: 0.5).
        backend: ``fast`` or ``reference`` (default: :func:`fixpt.models.kernels.backend`).
    """

    def __init__(self, p: float = 0.5, backend: str | None = None):
        super().__init__()
        self.p, self.backend = p, kernels.backend(backend)

    def forward(self, x: Tensor | SparseMatrix) -> Tensor | SparseMatrix:
        if self.backend == "reference":
            return F.dropout(x, self.p, self.training)
        if isinstance(x, SparseMatrix):
            return kernels.dropout_nonzeros(x, self.p, self.training)
        return kernels.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}" + (", backend=reference" if self.backend == "reference" else "")


class InputLinear(nn.Linear):
    """``Linear(dropout(x))`` on input features ``x`` (a tensor, or a sparse matrix: a CSR product).

    In a seed batch (``seed_batched``, set by :func:`fixpt.models.base.seed_batch_mode`) the seeds share
    dense features, and their products are one wide product (:func:`fixpt.models.kernels.input_product`);
    a plain run keeps ``F.linear``, bit for bit as before seed batches existed.
    """

    seed_batched = False

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.0, bias: bool = True,
                 backend: str | None = None):
        super().__init__(in_features, out_features, bias=bias)
        self.p, self.backend = dropout, kernels.backend(backend)
        self.drop = Dropout(dropout, self.backend)

    def forward(self, x: Tensor | SparseMatrix) -> Tensor:
        x = self.drop(x)
        if isinstance(x, SparseMatrix) or not self.seed_batched:
            return kernels.linear(x, self.weight, self.bias)
        out = kernels.input_product(x, self.weight)  # a seed batch (under vmap): one wide product
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return super().extra_repr() + f", dropout={self.p}"
