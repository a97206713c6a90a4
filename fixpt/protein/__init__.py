"""Protein structures: reading chains, matching residues, and the scores of structure prediction
(CA-RMSD, GDT-TS/HA, TM-score with the fixed residue correspondence and TM-align's, lDDT without
stereochemistry checks), for the AlphaFold recycle runner (:mod:`fixpt.recycle`)."""

from .matching import align_sequences, match_residues
from .scores import compare, distance_matrix_rms, gdt, gdt_fractions, lddt, residual, tm_score
from .structure import Chain, read_chain
from .superpose import apply, kabsch, superposed_rmsd
from .tmalign import tm_align_available, tm_align_score

__all__ = ["Chain", "read_chain", "match_residues", "align_sequences", "compare", "gdt", "gdt_fractions", "tm_score", "tm_align_score",
           "tm_align_available", "lddt",
           "residual", "distance_matrix_rms", "kabsch", "apply", "superposed_rmsd"]
