r"""Wrap your own module as a fixed-point layer with :class:`fixpt.DEQ`, train it, and check it.

The step is a user-written module, a one-layer equilibrium cell

.. math::
    T(z, u) = \tanh(W z + u), \qquad W = \gamma V / \|V\|_2, \quad \gamma = 0.8,

so :math:`\|\partial_z T\|_2 \le \|W\|_2 \cdot \mathrm{Lip}(\tanh) = \gamma < 1` for every
:math:`z, u`: a contraction, whose fixed point :math:`z^*(u)` exists and is unique (Banach). The
module says so through ``certified_lipschitz()``, which ``DEQ.contraction`` reports as the
certified bound beside its empirical estimates.

The task: regress :math:`y = \sin(3 x_1) + x_2^2` from 2-D inputs, with an encoder
``Linear(2, 32)`` producing the injection :math:`u`, the equilibrium :math:`z^*` of the cell, and a
decoder ``Linear(32, 1)``; Anderson acceleration, implicit gradients (the default), 100 steps of Adam
(a few seconds on one CPU thread).

Run: ``python docs/examples/deq_wrapper.py`` (``tests/test_deq_wrapper.py`` runs it in CI). It
exits 1 when a check fails: the loss must fall to a third of its start, the solves must converge
and the measured local norms must lie below the certified bound.
"""

from __future__ import annotations

import sys
import time

import torch
from torch import nn

import fixpt


class TanhCell(nn.Module):
    """:math:`T(z, u) = \\tanh(W z + u)` with :math:`\\|W\\|_2 = \\gamma` exactly (a rescaled free matrix)."""

    def __init__(self, width: int, gamma: float = 0.8):
        super().__init__()
        self.V = nn.Parameter(torch.randn(width, width) / width**0.5)
        self.gamma = gamma

    def weight(self) -> torch.Tensor:
        return self.gamma * self.V / torch.linalg.matrix_norm(self.V, ord=2)

    def forward(self, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z @ self.weight().T + u)

    def certified_lipschitz(self) -> tuple[float, str]:
        bound = float(torch.linalg.matrix_norm(self.weight().detach().double(), ord=2)) * (1 + 1e-6)
        return bound, "||W||_2 * Lip(tanh) = ||W||_2 (W rescaled to norm gamma)"


def data(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = 2 * torch.rand(n, 2, generator=generator) - 1
    return x, (torch.sin(3 * x[:, 0]) + x[:, 1] ** 2)[:, None]


def main(steps: int = 100) -> int:
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and immune to a busy machine
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    (x, y), (x_test, y_test) = data(256, g), data(128, g)
    width = 32
    model = fixpt.DEQ(TanhCell(width), encoder=nn.Linear(2, width), decoder=nn.Linear(width, 1),
                      method="anderson", alpha=0.0, tol=1e-5, max_iter=60, grad="implicit")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with torch.no_grad():
        start_loss = float(nn.functional.mse_loss(model(x_test), y_test))
    begin = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    with torch.no_grad():
        test_loss = float(nn.functional.mse_loss(model(x_test), y_test))
    sol = model.last_solution
    report = model.contraction(x_test[:16], points=3, iters=50)
    local = max(report.local_norms)
    print(f"trained {steps} steps in {time.perf_counter() - begin:.1f} s: test MSE {start_loss:.4f} -> {test_loss:.4f}")
    print(f"last solve: {sol.n_iter} iterations, converged={sol.converged}, residual {float(sol.residual.max()):.2e}")
    print(f"contraction: local ||J||_2 max {local:.4f}, spectral radius {report.spectral_radius:.4f}, "
          f"empirical ratio {report.empirical_ratio:.4f}, certified bound {report.certified_bound:.4f} -> {report.verdict}")
    checks = {"the loss fell to a third": test_loss < start_loss / 3, "the solve converged": sol.converged,
              "local norms below the certified bound": local <= report.certified_bound, "verdict certified": report.verdict == "certified"}
    failed = [name for name, ok in checks.items() if not ok]
    print("checks: " + ("all passed" if not failed else "FAILED: " + ", ".join(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
