"""Reading one protein chain from a PDB or mmCIF file.

We read with gemmi: one C++ parser for both PDB and mmCIF (and gzipped files), fast enough to
read thousands of recycle files, with insertion codes, alternate locations and modified residues
(selenomethionine ``MSE``) handled the way the wwPDB defines them. Biopython would do too, but it
is slower and its mmCIF reader needs separate code paths.

A :class:`Chain` keeps the residues that have a CA atom (waters and ligands drop out), in file
order, each with its residue number and insertion code, its one-letter code, its heavy atoms and
its B-factor (ColabFold writes the per-residue pLDDT there).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FixptError

ResidueId = tuple[int, str]  # (sequence number, insertion code or "")


@dataclass
class Chain:
    name: str
    source: str
    ids: list[ResidueId]
    resnames: list[str]
    sequence: str
    ca: np.ndarray  # (n, 3) float64, Angstrom
    atoms: list[dict[str, np.ndarray]]  # per residue: heavy-atom name -> (3,) coordinates
    bfactor: np.ndarray  # (n,) the CA atom's B-factor (pLDDT in AlphaFold / ColabFold files)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: np.ndarray) -> "Chain":
        index = np.asarray(index, dtype=int)
        return Chain(self.name, self.source, [self.ids[i] for i in index], [self.resnames[i] for i in index],
                     "".join(self.sequence[i] for i in index), self.ca[index], [self.atoms[i] for i in index],
                     self.bfactor[index])

    def transformed(self, r: np.ndarray, t: np.ndarray) -> "Chain":
        """A copy with every atom moved rigidly, :math:`x \\mapsto R x + t`."""
        atoms = [{k: r @ v + t for k, v in res.items()} for res in self.atoms]
        return Chain(self.name, self.source, list(self.ids), list(self.resnames), self.sequence, self.ca @ r.T + t, atoms,
                     self.bfactor.copy())

    def with_ca(self, ca: np.ndarray) -> "Chain":
        """A copy with CA coordinates ``ca``, each residue's other atoms moved by its CA's displacement."""
        shift = np.asarray(ca, dtype=np.float64) - self.ca
        atoms = [{k: v + shift[i] for k, v in res.items()} for i, res in enumerate(self.atoms)]
        return Chain(self.name, self.source, list(self.ids), list(self.resnames), self.sequence, shift + self.ca, atoms,
                     self.bfactor.copy())


def _one_letter(resname: str) -> str:
    import gemmi

    info = gemmi.find_tabulated_residue(resname)
    code = info.one_letter_code.upper() if info is not None else " "
    return code if code.strip() and code != "?" else "X"


def _check_not_truncated(path: Path) -> None:
    """A PDB-format file ends with END (or ENDMDL, TER, CONECT, MASTER); one whose last record is
    an atom was cut short (an interrupted copy or a predictor killed while writing)."""
    if path.suffix.lower() not in (".pdb", ".ent"):
        return  # mmCIF: gemmi's parser itself rejects a cut-off loop
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - 400))
        tail = [line for line in fh.read().decode("latin-1").splitlines() if line.strip()]
    if tail and tail[-1][:6].strip() in ("ATOM", "HETATM", "ANISOU"):
        raise FixptError(f"structure file {path} is truncated (it stops inside its atom records, with no END line); "
                         "regenerate or re-download it")


def read_chain(path: str | Path, chain: str | None = None) -> Chain:
    """The residues with a CA atom of one chain (the first chain with any, if ``chain`` is None)
    of the first model, first alternate location of each atom; hydrogens are dropped.

    Errors name the file: a missing, empty, truncated or unparsable file, or a chain that is not
    there (the message lists the chains that are)."""
    import gemmi

    path = Path(path)
    if not path.is_file():
        raise FixptError(f"structure file {path} does not exist")
    if path.stat().st_size == 0:
        raise FixptError(f"structure file {path} is empty; regenerate or re-download it")
    _check_not_truncated(path)
    try:
        st = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError) as e:
        raise FixptError(f"cannot read structure file {path} ({str(e).splitlines()[0]}); is it a PDB or mmCIF file?") from None
    if len(st) == 0:
        raise FixptError(f"structure file {path} has no atoms (empty or truncated file); regenerate or re-download it")
    st.remove_alternative_conformations()
    st.remove_hydrogens()
    model = st[0]
    with_ca = [c for c in model if any(r.find_atom("CA", "*") is not None for r in c)]
    names = [c.name for c in model]
    if chain is None:
        if not with_ca:
            raise FixptError(f"structure file {path} has no residue with a CA atom (empty or truncated file?)")
        picked = with_ca[0]
    else:
        matches = [c for c in model if c.name == chain]
        if not matches:
            raise FixptError(f"chain {chain!r} is not in {path}; its chains are: {', '.join(names) or 'none'} (use --chain)")
        picked = matches[0]
    ids, resnames, seq, ca, atoms, bfac = [], [], [], [], [], []
    for res in picked:
        a = res.find_atom("CA", "*")
        if a is None:
            continue
        ids.append((res.seqid.num, res.seqid.icode.strip()))
        resnames.append(res.name)
        seq.append(_one_letter(res.name))
        ca.append(a.pos.tolist())
        atoms.append({at.name: np.array(at.pos.tolist()) for at in res})
        bfac.append(a.b_iso)
    if not ids:
        raise FixptError(f"chain {picked.name!r} of {path} has no residue with a CA atom (empty or truncated file?)")
    return Chain(picked.name, str(path), ids, resnames, "".join(seq), np.asarray(ca, dtype=np.float64), atoms,
                 np.asarray(bfac, dtype=np.float64))
