"""lDDT, the local distance difference test (Mariani, Biasini, Barbato & Schwede, Bioinformatics 2013).

Superposition-free. Over the pairs :math:`(a, b)` of atoms of *different* residues whose distance
in the reference is below the inclusion radius :math:`R_0 = 15` A, the preserved fraction at a
threshold t is the share of pairs with :math:`|d^{model}_{ab} - d^{ref}_{ab}| \\le t`; lDDT is the
mean over :math:`t \\in \\{0.5, 1, 2, 4\\}` A, pooled over all pairs (the global score of the lDDT
program, of OpenStructure's ``lDDTScorer`` and of ``biotite.structure.lddt``). The pairs come
from the reference only, so an atom the model lacks makes all of its pairs misses.

Symmetric side chains: the names of chemically equivalent atoms (Asp OD1/OD2, Glu OE1/OE2,
Leu CD1/CD2, Val CG1/CG2, Arg NH1/NH2, Phe and Tyr CD1/CD2 + CE1/CE2, the list of the lDDT
program and OpenStructure) are arbitrary in a model. For every such residue the model's two
namings are scored on the pairs from its symmetric atoms to the atoms that are not symmetric,
and the better one is kept (a tie keeps the model's naming), as OpenStructure's lDDT does; then
the score is computed. Since those pairs never join two symmetric atoms, each residue's choice is
independent of the others'. Swaps are made only where both atoms of a pair are in the model and
in the reference.

Not done: the stereochemistry checks of the lDDT program (bond lengths, angles and clashes
against tabulated values, which remove offending residues from the model before scoring). Our
all-atom score is therefore OpenStructure's ``--lddt-no-stereochecks`` flavour, named
``lddt_no_stereochecks`` in fixpt's outputs; on a model with broken local geometry it is higher
than the stereochemistry-checked lDDT that CASP reports. The CA-only score (``lddt_ca``) has
no side chains and no checks: it is AlphaFold's ``lddt`` on CA atoms.
"""

from __future__ import annotations

import numpy as np

from .structure import Chain

LDDT_THRESHOLDS = (0.5, 1.0, 2.0, 4.0)
LDDT_RADIUS = 15.0
SYMMETRIC_ATOMS = {
    "ASP": (("OD1", "OD2"),),
    "GLU": (("OE1", "OE2"),),
    "LEU": (("CD1", "CD2"),),
    "VAL": (("CG1", "CG2"),),
    "ARG": (("NH1", "NH2"),),
    "PHE": (("CD1", "CD2"), ("CE1", "CE2")),
    "TYR": (("CD1", "CD2"), ("CE1", "CE2")),
}


def preserved_counts(model_d: np.ndarray, ref_d: np.ndarray) -> np.ndarray:
    """Per pair, how many of the thresholds its distance difference stays within (0-4); a NaN model
    distance (a missing atom) preserves none."""
    diff = np.abs(model_d - ref_d)
    return sum((diff <= t).astype(np.int64) for t in LDDT_THRESHOLDS)


def _atom_table(model: Chain, ref: Chain, im: np.ndarray, ir: np.ndarray, ca_only: bool):
    """Reference and model coordinates atom by atom over the reference's atoms (model NaN where it
    lacks the atom), each atom's residue, which atoms are symmetric ones by the reference's names,
    and the swappable pairs ``(k, a, b)``: residue k, atom indices a and b."""
    partner = dict(zip(ir.tolist(), im.tolist()))
    ref_xyz, model_xyz, residue, symmetric, pairs = [], [], [], [], []
    for j, atoms in enumerate(ref.atoms):
        names = ["CA"] if ca_only else list(atoms)
        sym_names = {name for pair in SYMMETRIC_ATOMS.get(ref.resnames[j], ()) for name in pair}
        m = partner.get(j)
        m_atoms = model.atoms[m] if m is not None else {}
        where = {name: len(ref_xyz) + k for k, name in enumerate(names)}
        for name in names:
            ref_xyz.append(atoms[name])
            model_xyz.append(m_atoms.get(name, np.full(3, np.nan)))
            residue.append(j)
            symmetric.append(name in sym_names)
        if m is None or model.resnames[m] != ref.resnames[j]:
            continue
        for a, b in SYMMETRIC_ATOMS.get(ref.resnames[j], ()):
            if a in where and b in where and a in m_atoms and b in m_atoms:
                pairs.append((j, where[a], where[b]))
    return (np.asarray(model_xyz, float).reshape(-1, 3), np.asarray(ref_xyz, float).reshape(-1, 3), np.asarray(residue),
            np.asarray(symmetric, bool), pairs)


def _contacts(ref_xyz: np.ndarray, residue: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scored pairs ``(i, j, d_ref)``, i < j: other residues, reference distance strictly below the
    radius. A k-d tree of the reference finds them, so the cost grows with the number of neighbours,
    not with the square of the atom count."""
    from scipy.spatial import cKDTree

    pairs = cKDTree(ref_xyz).query_pairs(LDDT_RADIUS, output_type="ndarray").reshape(-1, 2)
    i, j = pairs[:, 0], pairs[:, 1]
    dr = np.linalg.norm(ref_xyz[i] - ref_xyz[j], axis=1)
    keep = (residue[i] != residue[j]) & (dr < LDDT_RADIUS)
    return i[keep], j[keep], dr[keep]


def resolve_symmetric_atoms(model_xyz, i, j, dr, symmetric, pairs) -> tuple[np.ndarray, list[int]]:
    """``model_xyz`` with the better naming of every symmetric residue (module docstring), and the
    residues (reference indices) whose atoms were swapped. ``symmetric`` marks every atom named in
    :data:`SYMMETRIC_ATOMS` (swappable or not): pairs between two of them never decide a swap."""
    if not pairs:
        return model_xyz, []
    group, a, b = (np.asarray(col) for col in zip(*pairs))
    n = len(model_xyz)
    swap_to = np.arange(n)
    swap_to[a], swap_to[b] = b, a
    owner = np.full(n, -1)  # the residue of each swappable atom
    owner[a] = owner[b] = group
    # each pair of a swappable atom and a non-symmetric one, the swappable atom first
    s, o = np.where(symmetric[i], i, j), np.where(symmetric[i], j, i)
    one = (symmetric[i] != symmetric[j]) & (owner[s] >= 0)
    s, o = s[one], o[one]
    as_is = preserved_counts(np.linalg.norm(model_xyz[s] - model_xyz[o], axis=1), dr[one])
    swapped = preserved_counts(np.linalg.norm(model_xyz[swap_to[s]] - model_xyz[o], axis=1), dr[one])
    residues = np.unique(group)
    slot = np.searchsorted(residues, owner[s])
    gain = np.bincount(slot, swapped - as_is, minlength=len(residues))
    better = set(residues[gain > 0].tolist())
    chosen = np.array([k in better for k in group.tolist()])
    out = model_xyz.copy()
    out[a[chosen]], out[b[chosen]] = model_xyz[b[chosen]], model_xyz[a[chosen]]
    return out, sorted(better)


def lddt(model: Chain, ref: Chain, im: np.ndarray, ir: np.ndarray, ca_only: bool = False,
         symmetric_swaps: bool = True) -> float:
    """lDDT (a fraction) of ``model`` against ``ref`` with residues matched as ``im[k] <-> ir[k]``:
    all heavy atoms matched by name, or CA only; ``symmetric_swaps=False`` scores the model's atom
    names as they are (``biotite.structure.lddt``'s definition)."""
    model_xyz, ref_xyz, residue, symmetric, pairs = _atom_table(model, ref, im, ir, ca_only)
    i, j, dr = _contacts(ref_xyz, residue)
    if len(i) == 0:
        return 0.0
    if symmetric_swaps:
        model_xyz, _ = resolve_symmetric_atoms(model_xyz, i, j, dr, symmetric, pairs)
    dm = np.linalg.norm(model_xyz[i] - model_xyz[j], axis=1)
    return float(preserved_counts(dm, dr).sum() / (len(LDDT_THRESHOLDS) * len(i)))
