"""TM-align's TM-score, through ``tmtools`` (Python bindings of Zhang's TM-align; an optional extra).

fixpt's own TM-score (:func:`fixpt.protein.scores.tm_score`) keeps the residue correspondence
fixed by the residue matching (by number, or ``--align``'s sequence alignment) and searches only
the superposition. TM-align (Zhang & Skolnick, Nucleic Acids Res. 2005) also searches the
correspondence: a structural alignment, sequence-independent, by dynamic programming on the
superposed distances. Its score is therefore at least as high where its search finds the optimum,
and it is the number the literature means by "TM-score" for fold comparisons (the 0.5 fold
threshold of Xu & Zhang 2010). The two agree when the fixed correspondence is the structural one
(e.g. successive recycles of one prediction); they differ when the structures need a shift
against each other (RfaH r3 against 2OUG: 0.865 fixed, 0.899 TM-align).

Both are normalised by the reference length (TM-align's ``tm_norm_chain2``, the reference being
its second chain), over the reference residues with a CA atom.

``tmtools`` is GPL-3 licensed and not needed by anything else in fixpt, so it is an extra:
``pip install "fixpt[tmalign]"``. Without it :func:`tm_align_score` returns None and the outputs
say that TM-align was not computed.
"""

from __future__ import annotations

from importlib.util import find_spec

from .structure import Chain

INSTALL_HINT = 'pip install "fixpt[tmalign]"'


def tm_align_available() -> bool:
    """Whether ``tmtools`` is installed."""
    return find_spec("tmtools") is not None


def tm_align_score(model: Chain, ref: Chain) -> float | None:
    """TM-align's TM-score of the model's CA trace against the reference's, normalised by the
    reference length; None when ``tmtools`` is not installed."""
    if not tm_align_available():
        return None
    import tmtools

    result = tmtools.tm_align(model.ca, ref.ca, model.sequence, ref.sequence)
    return float(result.tm_norm_chain2)
