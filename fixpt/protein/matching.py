"""Which model residue corresponds to which reference residue.

Two rules:

- ``number`` (the default): same residue number and insertion code. Right for predictions of the
  deposited sequence in the author numbering (ColabFold numbers from 1; check the first residue);
- ``align``: a global Needleman-Wunsch alignment of the two one-letter sequences (match +2,
  mismatch -1, gap -2, free end gaps), for models numbered differently from the reference.

Either way the result is a pair of index arrays into the two chains, and its length is the number
of matched residues, which every score reports.
"""

from __future__ import annotations

import numpy as np

from ..errors import FixptError
from .structure import Chain

MATCH_MODES = ("number", "align")


def match_by_number(model: Chain, ref: Chain) -> tuple[np.ndarray, np.ndarray]:
    where = {rid: i for i, rid in enumerate(model.ids)}
    pairs = [(where[rid], j) for j, rid in enumerate(ref.ids) if rid in where]
    if not pairs:
        return np.zeros(0, int), np.zeros(0, int)
    a, b = zip(*pairs)
    return np.asarray(a), np.asarray(b)


def align_sequences(s: str, t: str, match: int = 2, mismatch: int = -1, gap: int = -2) -> list[tuple[int, int]]:
    """Index pairs of the aligned (match or mismatch) positions of a global alignment with free end
    gaps: the optimal score of :math:`H_{ij} = \\max(H_{i-1,j-1} + s(a_i, b_j), H_{i-1,j} + g, H_{i,j-1} + g)`."""
    n, m = len(s), len(t)
    a, b = np.frombuffer(s.encode(), np.uint8), np.frombuffer(t.encode(), np.uint8)
    sub = np.where(a[:, None] == b[None, :], match, mismatch)
    H = np.zeros((n + 1, m + 1))  # free leading gaps: first row and column are 0
    move = np.zeros((n + 1, m + 1), np.int8)  # 0 diagonal, 1 up (gap in t), 2 left (gap in s)
    move[1:, 0], move[0, 1:] = 1, 2
    for i in range(1, n + 1):  # one row at a time; the left move needs a running scan
        diag = H[i - 1, :-1] + sub[i - 1]
        up = H[i - 1, 1:] + gap
        row = np.maximum(diag, up)
        mv = np.where(diag >= up, 0, 1).astype(np.int8)
        for j in range(1, m + 1):
            left = H[i, j - 1] + gap
            if left > row[j - 1]:
                row[j - 1], mv[j - 1] = left, 2
            H[i, j] = row[j - 1]
        move[i, 1:] = mv
    # free trailing gaps: end at the best cell of the last row or column
    i, j = n, int(np.argmax(H[n]))
    if H[:, m].max() > H[n, j]:
        i, j = int(np.argmax(H[:, m])), m
    pairs = []
    while i > 0 and j > 0:
        if move[i, j] == 0:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif move[i, j] == 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def match_residues(model: Chain, ref: Chain, mode: str = "number") -> tuple[np.ndarray, np.ndarray]:
    """Index arrays ``(i_model, i_ref)`` of matched residues; no match at all is an error."""
    if mode == "number":
        im, ir = match_by_number(model, ref)
    elif mode == "align":
        pairs = align_sequences(model.sequence, ref.sequence)
        im, ir = (np.asarray([p[k] for p in pairs], int) for k in (0, 1))
    else:
        raise FixptError(f"unknown residue matching {mode!r}; use one of {', '.join(MATCH_MODES)}")
    if len(im) == 0:
        how = "residue numbers" if mode == "number" else "sequence alignment"
        hint = "; try --align" if mode == "number" else ""
        raise FixptError(f"{model.source} and {ref.source} have no residues in common by {how}{hint}")
    return im, ir
