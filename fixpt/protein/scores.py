"""Structure-comparison scores of a model against a reference, and between successive recycles.

All scores compare CA atoms of residues matched by :mod:`fixpt.protein.matching`, except the
all-atom lDDT and TM-align's score (its own structural alignment). ``n_ref`` below is the number
of reference residues (with a CA atom); a reference residue the model lacks counts as a miss in
GDT, TM-score and lDDT, so a model of half the protein cannot score 100.

- **CA-RMSD** after the optimal superposition (Kabsch) of the matched CA atoms.
- **GDT** (LGA's global distance test): for a cutoff d, :math:`P_d` is the largest fraction of
  the reference residues whose CA lies within d of the model's after *some* superposition,
  each cutoff searched on its own. GDT-TS = mean of :math:`P_1, P_2, P_4, P_8`, GDT-HA = mean of
  :math:`P_{0.5}, P_1, P_2, P_4`, in percent. The search (as in LGA and the TM-score program)
  starts from seed fragments (every window of length L = m, m/2, m/4, ... >= 4 matched
  residues), superposes on the seed, then repeatedly on all residues within d, and keeps the best
  count seen.
- **TM-score with the fixed residue correspondence** (``tm_fixed``), normalised by the reference
  length: the maximum over superpositions of
  :math:`\\frac{1}{L_{ref}} \\sum_i 1 / (1 + (d_i / d_0)^2)` over the matched residues, with
  :math:`d_0 = 1.24 \\sqrt[3]{L_{ref} - 15} - 1.8` (at least 0.5), searched the same way with the
  selection cutoff :math:`d_0` clipped to [4.5, 8] A, as the TM-score program does. The
  correspondence is the residue matching's, not searched: TM-align's score (``tm_align``,
  :mod:`fixpt.protein.tmalign`, when ``tmtools`` is installed) also searches it, and is higher
  where a shifted correspondence superposes better.
- **lDDT** (superposition-free, :mod:`fixpt.protein.lddt_score`): ``lddt_no_stereochecks`` over all
  heavy atoms with the symmetric side-chain atoms resolved, without the lDDT program's
  stereochemistry checks; ``lddt_ca`` over CA atoms only.
- Between recycles: ``residual_rmsd``, the CA-RMSD after superposition, and ``residual_tol``,
  ColabFold's early-stopping ``tol``: the RMS difference of the CA distance matrices,
  :math:`\\sqrt{\\operatorname{mean}_{ij} (D_{ij} - D'_{ij})^2 + 10^{-8}}` over all pairs.
"""

from __future__ import annotations

import numpy as np

from .lddt_score import LDDT_RADIUS, LDDT_THRESHOLDS, lddt  # noqa: F401  (re-exported)
from .matching import match_residues
from .structure import Chain
from .superpose import apply, kabsch, superposed_rmsd
from .tmalign import tm_align_score

GDT_TS_CUTOFFS = (1.0, 2.0, 4.0, 8.0)
GDT_HA_CUTOFFS = (0.5, 1.0, 2.0, 4.0)
TM_FOLD_THRESHOLD = 0.5  # TM-score below this: a different fold (Xu & Zhang 2010)
SAME_PROTEIN_IDENTITY = 0.3  # below this share of identical matched residues the reference is another protein


def seed_fragments(m: int, min_len: int = 4) -> np.ndarray:
    """Boolean masks ``(S, m)`` of every window of length m, m/2, m/4, ... (>= ``min_len``)."""
    lengths, length = [], m
    while length >= min(min_len, m) and length > 0:
        lengths.append(length)
        length //= 2
    masks = [np.arange(m)[None, :] - np.arange(m - L + 1)[:, None] for L in lengths]
    return np.concatenate([(mk >= 0) & (mk < L) for mk, L in zip(masks, lengths)])


def _distances(p: np.ndarray, q: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(S, m)`` distances between q and p superposed on each row of ``mask``."""
    r, t = kabsch(p, q, mask.astype(np.float64))
    diff = apply(r, t, p) - q
    return np.sqrt(np.einsum("smi,smi->sm", diff, diff))


def _unique_rows(mask: np.ndarray) -> np.ndarray:
    """The distinct rows of a boolean matrix (compared as packed bits: sorting bytes, not booleans)."""
    packed = np.packbits(mask, axis=1)
    _, first = np.unique(packed.view(np.dtype((np.void, packed.shape[1]))).ravel(), return_index=True)
    return mask[np.sort(first)]


def _best_superposition_score(p, q, select_cutoff, score, max_iter: int = 20) -> float:
    """max over the seed-fragment search of ``score(distances)``; the selection is ``d < select_cutoff``.
    Seeds whose selection stopped changing leave the batch, and seeds that reach the same selection
    go on as one."""
    mask = seed_fragments(len(p))
    best = -np.inf
    for _ in range(max_iter):
        d = _distances(p, q, mask)
        best = max(best, float(score(d).max()))
        new = d < select_cutoff
        new = np.where(new.sum(1, keepdims=True) >= 3, new, mask)  # too few to superpose on: keep the last set
        moving = (new != mask).any(1)
        if not moving.any():
            break
        mask = _unique_rows(new[moving])
    return best


def gdt_fractions(p: np.ndarray, q: np.ndarray, n_ref: int, cutoffs) -> dict[float, float]:
    """:math:`P_d` for each cutoff d: the best fraction of the ``n_ref`` reference residues within d."""
    if len(p) < 3:
        return {c: 0.0 for c in cutoffs}
    return {c: _best_superposition_score(p, q, c, lambda d, c=c: (d < c).sum(1)) / n_ref for c in cutoffs}


def gdt(p: np.ndarray, q: np.ndarray, n_ref: int, cutoffs=GDT_TS_CUTOFFS) -> float:
    """GDT in percent, the mean of :math:`P_d` over ``cutoffs``, for matched model CA ``p`` and reference CA ``q``."""
    return gdt_from(gdt_fractions(p, q, n_ref, cutoffs), cutoffs)


def gdt_from(fractions: dict[float, float], cutoffs) -> float:
    """GDT in percent from the fractions :math:`P_d` (a superset of ``cutoffs`` may be given)."""
    return 100.0 * float(np.mean([fractions[c] for c in cutoffs]))


def tm_d0(n_ref: int) -> float:
    return max(0.5, 1.24 * np.cbrt(n_ref - 15.0) - 1.8)


def tm_score(p: np.ndarray, q: np.ndarray, n_ref: int) -> float:
    """TM-score of matched CA ``p`` (model) against ``q`` (reference), normalised by ``n_ref``."""
    if len(p) < 3:
        return 0.0
    d0 = tm_d0(n_ref)
    search = float(np.clip(d0, 4.5, 8.0))
    return _best_superposition_score(p, q, search, lambda d: (1.0 / (1.0 + (d / d0) ** 2)).sum(1) / n_ref)


def compare(model: Chain, ref: Chain, match: str = "number") -> dict:
    """Every score of ``model`` against ``ref``: rmsd (A), gdt_ts and gdt_ha (percent), tm_fixed
    (TM-score with the fixed residue correspondence), tm_align (TM-align's TM-score; None without
    ``tmtools``), lddt_no_stereochecks and lddt_ca (fractions), the model's mean pLDDT (its
    B-factors), how many residues were matched out of the reference's, and the share of matched
    pairs that are the same amino acid (``identity``: near 1 for the right reference, near chance
    (about 0.06) for another protein). The module docstring defines each."""
    im, ir = match_residues(model, ref, match)
    p, q, n_ref = model.ca[im], ref.ca[ir], len(ref)
    frac = gdt_fractions(p, q, n_ref, sorted(set(GDT_TS_CUTOFFS) | set(GDT_HA_CUTOFFS)))
    same = sum(model.sequence[i] == ref.sequence[j] for i, j in zip(im.tolist(), ir.tolist()))
    return {
        "n_matched": int(len(im)),
        "n_ref": int(n_ref),
        "identity": same / len(im),
        "rmsd": superposed_rmsd(p, q),
        "gdt_ts": gdt_from(frac, GDT_TS_CUTOFFS),
        "gdt_ha": gdt_from(frac, GDT_HA_CUTOFFS),
        "tm_fixed": tm_score(p, q, n_ref),
        "tm_align": tm_align_score(model, ref),
        "lddt_no_stereochecks": lddt(model, ref, im, ir),
        "lddt_ca": lddt(model, ref, im, ir, ca_only=True),
        "plddt": float(model.bfactor.mean()),
    }


def distance_matrix_rms(a: np.ndarray, b: np.ndarray) -> float:
    """ColabFold's ``tol``: :math:`\\sqrt{\\operatorname{mean}_{ij}(\\lVert a_i - a_j\\rVert - \\lVert b_i - b_j\\rVert)^2 + 10^{-8}}`."""
    da = np.linalg.norm(a[:, None] - a[None], axis=-1)
    db = np.linalg.norm(b[:, None] - b[None], axis=-1)
    return float(np.sqrt(((da - db) ** 2).mean() + 1e-8))


def residual(prev: Chain, curr: Chain) -> dict:
    """The Picard residual between two successive recycles of the same prediction."""
    im, ir = match_residues(curr, prev, "number")
    a, b = prev.ca[ir], curr.ca[im]
    return {"residual_rmsd": superposed_rmsd(b, a), "residual_tol": distance_matrix_rms(a, b)}
