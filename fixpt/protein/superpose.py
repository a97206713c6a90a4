"""Optimal rigid superposition (Kabsch), batched over many weightings at once.

For points :math:`p_i, q_i` and weights :math:`w_i \\ge 0`, the rotation and translation minimising
:math:`\\sum_i w_i \\lVert R p_i + t - q_i \\rVert^2` are, with weighted centroids
:math:`\\bar p, \\bar q` and :math:`H = \\sum_i w_i (p_i - \\bar p)(q_i - \\bar q)^T = U S V^T`,

.. math:: R = V \\operatorname{diag}(1, 1, \\operatorname{sign}\\det(V U^T))\\, U^T, \\qquad t = \\bar q - R \\bar p .

The sign keeps R a proper rotation (no reflection). :func:`kabsch` takes a batch of weight
vectors for one pair of point sets, so the seed-fragment searches of GDT and TM-score solve
thousands of superpositions with a few matrix products.
"""

from __future__ import annotations

import numpy as np


def kabsch(p: np.ndarray, q: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(R, t)`` superposing ``p`` onto ``q`` (both ``(n, 3)``) for each weight vector: ``w`` of shape
    ``(n,)`` gives ``R (3, 3)``, ``t (3,)``; ``w`` of shape ``(S, n)`` gives ``(S, 3, 3)`` and ``(S, 3)``."""
    single = w is None or np.ndim(w) == 1
    w = np.atleast_2d(np.ones(len(p)) if w is None else np.asarray(w, dtype=np.float64))
    total = w.sum(1)[:, None]
    pc, qc = (w @ p) / total, (w @ q) / total
    # H = sum_i w_i p_i q_i^T - W pc qc^T, as one product with the n outer products p_i q_i^T
    h = (w @ (p[:, :, None] * q[:, None, :]).reshape(len(p), 9)).reshape(-1, 3, 3) - total[:, :, None] * pc[:, :, None] * qc[:, None, :]
    u, _, vt = np.linalg.svd(h)
    v, ut = np.swapaxes(vt, 1, 2), np.swapaxes(u, 1, 2)
    d = np.sign(np.linalg.det(v @ ut))
    v[:, :, 2] *= np.where(d == 0, 1.0, d)[:, None]
    r = v @ ut
    t = qc - np.einsum("sij,sj->si", r, pc)
    return (r[0], t[0]) if single else (r, t)


def apply(r: np.ndarray, t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """:math:`R x + t` for points ``x`` ``(n, 3)``: ``(n, 3)`` for one ``(R, t)``, ``(S, n, 3)`` for a batch."""
    return x @ np.swapaxes(r, -1, -2) + t[..., None, :]


def superposed_rmsd(p: np.ndarray, q: np.ndarray) -> float:
    """RMSD between two matched point sets after their optimal superposition."""
    if len(p) == 0:
        return float("nan")
    r, t = kabsch(p, q)
    return float(np.sqrt(((apply(r, t, p) - q) ** 2).sum(-1).mean()))
