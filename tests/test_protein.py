"""Structure metrics on real structures, against closed forms, TM-align (tmtools) and independent code."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from fixpt.errors import FixptError
from fixpt.protein import align_sequences, compare, kabsch, lddt, match_residues, read_chain, residual, tm_score
from fixpt.protein.scores import GDT_HA_CUTOFFS, GDT_TS_CUTOFFS, gdt_fractions

NAMES = ["1CRN", "1UBQ", "1A8O", "1AKI", "1DIX"]
STEM = "RfaH_unrelaxed_rank_001_alphafold2_model_2_seed_003"


def rigid_copy(chain, seed=0):
    return chain.transformed(Rotation.random(random_state=seed).as_matrix(), np.array([12.0, -40.0, 7.5]))


def test_reads_real_structures(pdb_dir):
    sizes = {n: len(read_chain(pdb_dir / f"{n}.pdb")) for n in NAMES}
    assert sizes == {"1CRN": 46, "1UBQ": 76, "1A8O": 70, "1AKI": 129, "1DIX": 208}  # SEQRES counts of SOURCES.md
    capsid = read_chain(pdb_dir / "1A8O.pdb")
    mse = [i for i, name in enumerate(capsid.resnames) if name == "MSE"]
    assert len(mse) == 4 and all(capsid.sequence[i] == "M" for i in mse)  # HETATM selenomethionines are residues, read as M
    rnase = read_chain(pdb_dir / "1DIX.pdb")
    assert sum(icode != "" for _, icode in rnase.ids) > 0 and len(set(rnase.ids)) == 208  # insertion codes kept apart
    assert "HOH" not in rnase.resnames


def test_mmcif_reads_as_pdb(pdb_dir, tmp_path):
    """The same structure written as mmCIF gives the same chain: ids (insertion codes too), sequence, coordinates."""
    import gemmi

    st = gemmi.read_structure(str(pdb_dir / "1DIX.pdb"))
    st.setup_entities()
    cif = tmp_path / "1dix.cif"
    st.make_mmcif_document().write_file(str(cif))
    a, b = read_chain(pdb_dir / "1DIX.pdb"), read_chain(cif)
    assert a.ids == b.ids and a.sequence == b.sequence and np.allclose(a.ca, b.ca)
    assert compare(b, a)["rmsd"] < 1e-9


@pytest.mark.parametrize("name", NAMES)
def test_identity_and_rigid_copy_are_perfect(pdb_dir, name):
    chain = read_chain(pdb_dir / f"{name}.pdb")
    for other in (chain, rigid_copy(chain)):
        s = compare(other, chain)
        assert s["n_matched"] == s["n_ref"] == len(chain)
        assert s["rmsd"] < 1e-6
        assert s["gdt_ts"] == pytest.approx(100.0) and s["gdt_ha"] == pytest.approx(100.0)
        assert s["tm_fixed"] == pytest.approx(1.0, abs=1e-12)
        assert s["tm_align"] is None or s["tm_align"] == pytest.approx(1.0, abs=1e-6)
        assert s["lddt_no_stereochecks"] == pytest.approx(1.0) and s["lddt_ca"] == pytest.approx(1.0)


def independent_rmsd(p, q):
    """Textbook Kabsch via SVD on centred coordinates, written separately from fixpt's batched one."""
    p0, q0 = p - p.mean(0), q - q.mean(0)
    u, s, vt = np.linalg.svd(p0.T @ q0)
    d = np.sign(np.linalg.det(u @ vt))
    e = (p0 ** 2).sum() + (q0 ** 2).sum() - 2 * (s[0] + s[1] + d * s[2])
    return np.sqrt(max(e, 0.0) / len(p))


@pytest.mark.parametrize("name", NAMES)
def test_rmsd_matches_independent_svd(pdb_dir, name):
    chain = read_chain(pdb_dir / f"{name}.pdb")
    noisy = rigid_copy(chain).with_ca(rigid_copy(chain).ca + np.random.default_rng(1).normal(0, 1.5, chain.ca.shape))
    assert compare(noisy, chain)["rmsd"] == pytest.approx(independent_rmsd(noisy.ca, chain.ca), rel=1e-10)
    r, t = kabsch(noisy.ca, chain.ca)
    assert np.allclose(r @ r.T, np.eye(3)) and np.linalg.det(r) == pytest.approx(1.0)  # a rotation, never a reflection


def test_gdt_of_known_displacements(pdb_dir):
    """Half the residues untouched, a fifth moved 0.3 A (inside every cutoff), the rest moved 30 A in
    random directions (beyond every cutoff, for any superposition that keeps the untouched half):
    every P_d is 0.7, so GDT-TS = GDT-HA = 70 and the un-superposed fraction is the optimum."""
    chain = read_chain(pdb_dir / "1AKI.pdb")
    n, rng = len(chain), np.random.default_rng(0)
    order = rng.permutation(n)
    near, far = order[n // 2 : n // 2 + n // 5], order[n // 2 + n // 5 :]
    directions = rng.normal(size=(n, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    moved = chain.ca.copy()
    moved[near] += 0.3 * directions[near]
    moved[far] += 30.0 * directions[far]
    expected = (n - len(far)) / n
    model = rigid_copy(chain.with_ca(moved))
    fractions = gdt_fractions(model.ca, chain.ca, n, sorted(set(GDT_TS_CUTOFFS) | set(GDT_HA_CUTOFFS)))
    assert all(f == pytest.approx(expected) for f in fractions.values()), fractions
    s = compare(model, chain)
    assert s["gdt_ts"] == pytest.approx(100 * expected) and s["gdt_ha"] == pytest.approx(100 * expected)


def test_gdt_counts_missing_residues_against_the_reference(pdb_dir):
    chain = read_chain(pdb_dir / "1UBQ.pdb")
    half = chain.subset(np.arange(38))
    s = compare(half, chain)
    assert s["n_matched"] == 38 and s["n_ref"] == 76
    assert s["gdt_ts"] == pytest.approx(50.0) and s["rmsd"] < 1e-6


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("sigma", [0.5, 1.0])
def test_tm_score_agrees_with_tm_align(pdb_dir, name, sigma):
    tmtools = pytest.importorskip("tmtools")
    chain = read_chain(pdb_dir / f"{name}.pdb")
    noisy = rigid_copy(chain).with_ca(rigid_copy(chain).ca + np.random.default_rng(2).normal(0, sigma, chain.ca.shape))
    ref_tm = tmtools.tm_align(noisy.ca, chain.ca, noisy.sequence, chain.sequence).tm_norm_chain2
    assert compare(noisy, chain)["tm_fixed"] == pytest.approx(ref_tm, abs=0.01)


def test_tm_score_on_real_predictions(rfah_dir):
    """Successive real recycles agree with TM-align within 0.01. Against the experimental structure
    TM-align also re-aligns residues (so it may score higher), but on our fixed residue matching no
    superposition does better than ours: TM-align's own superposition scores at most ours."""
    tmtools = pytest.importorskip("tmtools")
    from fixpt.protein.scores import tm_d0

    recycles = [read_chain(rfah_dir / f"{STEM}.r{k}.pdb") for k in range(4)]
    for a, b in zip(recycles[1:], recycles[2:]):
        assert tm_score(a.ca, b.ca, len(b)) == pytest.approx(tmtools.tm_align(a.ca, b.ca, a.sequence, b.sequence).tm_norm_chain2, abs=0.01)
    ref = read_chain(rfah_dir / "experimental" / "2oug_C.pdb")
    for model in recycles:
        im, ir = match_residues(model, ref)
        p, q = model.ca[im], ref.ca[ir]
        res = tmtools.tm_align(p, q, "".join(model.sequence[i] for i in im), ref.sequence)
        d = np.linalg.norm(p @ res.u.T + res.t - q, axis=1)
        at_tm_align_superposition = (1 / (1 + (d / tm_d0(len(ref))) ** 2)).sum() / len(ref)
        assert at_tm_align_superposition <= tm_score(p, q, len(ref)) + 1e-9


def naive_lddt_ca(model_ca, ref_ca):
    kept = total = 0
    for i in range(len(ref_ca)):
        for j in range(len(ref_ca)):
            dr = np.linalg.norm(ref_ca[i] - ref_ca[j])
            if i == j or dr >= 15.0:
                continue
            dm = np.linalg.norm(model_ca[i] - model_ca[j])
            total += 4
            kept += sum(abs(dm - dr) <= t for t in (0.5, 1, 2, 4))
    return kept / total


def test_lddt_matches_a_naive_double_loop(pdb_dir):
    chain = read_chain(pdb_dir / "1CRN.pdb")
    noisy = chain.with_ca(chain.ca + np.random.default_rng(3).normal(0, 1.0, chain.ca.shape))
    im, ir = match_residues(noisy, chain)
    assert lddt(noisy, chain, im, ir, ca_only=True) == pytest.approx(naive_lddt_ca(noisy.ca, chain.ca), abs=1e-12)
    assert 0.2 < lddt(noisy, chain, im, ir) < 0.95  # all-atom: every heavy atom moves with its CA, so pairs within a residue stay


def test_tm_align_is_reported_and_is_tmtools(rfah_dir):
    """compare() reports TM-align's TM-score beside the fixed-correspondence one: on RfaH r3 against
    2OUG it is tmtools' TM-align to 1e-6 (normalised by the reference), and higher than the fixed one
    because TM-align also searches the residue correspondence."""
    tmtools = pytest.importorskip("tmtools")
    ref = read_chain(rfah_dir / "experimental" / "2oug_C.pdb")
    model = read_chain(rfah_dir / f"{STEM}.r3.pdb")
    s = compare(model, ref)
    expected = tmtools.tm_align(model.ca, ref.ca, model.sequence, ref.sequence).tm_norm_chain2
    assert s["tm_align"] == pytest.approx(expected, abs=1e-6)
    assert s["tm_align"] > s["tm_fixed"] + 0.02


def test_tm_align_is_none_without_tmtools(pdb_dir, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tmtools", None)  # as if not installed: find_spec gives None, import fails
    chain = read_chain(pdb_dir / "1CRN.pdb")
    s = compare(rigid_copy(chain), chain)
    assert s["tm_align"] is None and s["tm_fixed"] == pytest.approx(1.0)


# the symmetric side-chain atoms of the lDDT paper (Mariani et al. 2013) and OpenStructure, written out again here
SYMMETRIC = {"ASP": [("OD1", "OD2")], "GLU": [("OE1", "OE2")], "LEU": [("CD1", "CD2")], "VAL": [("CG1", "CG2")],
             "ARG": [("NH1", "NH2")], "PHE": [("CD1", "CD2"), ("CE1", "CE2")], "TYR": [("CD1", "CD2"), ("CE1", "CE2")]}


def with_symmetric_names_swapped(chain):
    """A copy whose symmetric atoms carry each other's names: the same molecule, named the other way."""
    out = chain.subset(np.arange(len(chain)))
    out.atoms = [dict(atoms) for atoms in out.atoms]
    for atoms, resname in zip(out.atoms, out.resnames):
        for a, b in SYMMETRIC.get(resname, []):
            if a in atoms and b in atoms:
                atoms[a], atoms[b] = atoms[b], atoms[a]
    return out


@pytest.mark.parametrize("name", ["1UBQ", "1DIX"])
def test_lddt_resolves_symmetric_atom_names(pdb_dir, name):
    """A rigid copy named the other way round in every symmetric side chain is the same structure:
    lDDT 1 with the swaps resolved, below 1 when the names are taken as they are."""
    chain = read_chain(pdb_dir / f"{name}.pdb")
    renamed = with_symmetric_names_swapped(rigid_copy(chain))
    im, ir = match_residues(renamed, chain)
    assert lddt(renamed, chain, im, ir) == pytest.approx(1.0, abs=1e-12)
    assert compare(renamed, chain)["lddt_no_stereochecks"] == pytest.approx(1.0, abs=1e-12)
    assert lddt(renamed, chain, im, ir, symmetric_swaps=False) < 0.99


def biotite_pair(model_path, ref_path):
    """The reference read by biotite (heavy atoms of residues with a CA) and the model's coordinates
    on the reference's atoms, by residue number, insertion code and atom name (NaN where missing)."""
    import biotite.structure.io.pdb as pdbio

    def heavy(path):
        atoms = pdbio.PDBFile.read(str(path)).get_structure(model=1, altloc="first")
        return atoms[atoms.element != "H"]

    ref, model = heavy(ref_path), heavy(model_path)
    with_ca = {(r, i) for r, i, n in zip(ref.res_id, ref.ins_code, ref.atom_name) if n == "CA"}
    ref = ref[np.array([(r, i) in with_ca for r, i in zip(ref.res_id, ref.ins_code)])]
    where = {key: k for k, key in enumerate(zip(model.res_id, model.ins_code, model.atom_name))}
    keys = list(zip(ref.res_id, ref.ins_code, ref.atom_name))
    coords = np.array([model.coord[where[key]] if key in where else [np.nan] * 3 for key in keys], dtype=np.float64)
    return ref, coords


def biotite_lddt_with_symmetry(ref, coords):
    """The published symmetry rule on top of biotite's lDDT: per symmetric residue, keep the naming
    whose contacts to non-symmetric atoms score better (a tie keeps the model's), then score globally."""
    import biotite.structure as struc

    symmetric = np.array([any(n in pair for pair in SYMMETRIC.get(r, [])) for r, n in zip(ref.res_name, ref.atom_name)])
    coords = coords.copy()
    residues = dict.fromkeys(zip(ref.res_id, ref.ins_code))
    for res in residues:
        in_res = (ref.res_id == res[0]) & (ref.ins_code == res[1])
        index = {n: k for k, n in zip(np.flatnonzero(in_res), ref.atom_name[in_res])}
        pairs = [(index[a], index[b]) for a, b in SYMMETRIC.get(ref.res_name[in_res][0], [])
                 if a in index and b in index and np.isfinite(coords[[index[a], index[b]]]).all()]
        if not pairs:
            continue
        mask = np.zeros(len(ref), bool)
        mask[[k for pair in pairs for k in pair]] = True
        as_is = struc.lddt(ref, coords, atom_mask=mask, partner_mask=~symmetric)
        swapped = coords.copy()
        for a, b in pairs:
            swapped[[a, b]] = coords[[b, a]]
        if struc.lddt(ref, swapped, atom_mask=mask, partner_mask=~symmetric) > as_is:
            coords = swapped
    return float(struc.lddt(ref, coords))


# biotite holds coordinates in float32: a distance difference within ~1e-5 A of a threshold may land on
# the other side, and each such pair moves the score by 1 / (4 n_pairs), ~1.4e-6 here; 1e-5 allows 7
TOL_BIOTITE = 1e-5


def test_lddt_agrees_with_biotite_on_real_predictions(rfah_dir):
    """Every RfaH recycle against 2OUG: fixpt's lDDT with the names as they are equals
    ``biotite.structure.lddt``; with the symmetric atoms resolved it equals biotite's lDDT after the
    published symmetry rule (applied in the test through biotite's own masked scores)."""
    struc = pytest.importorskip("biotite.structure")
    ref_path = rfah_dir / "experimental" / "2oug_C.pdb"
    ref = read_chain(ref_path)
    for k in range(4):
        model = read_chain(rfah_dir / f"{STEM}.r{k}.pdb")
        im, ir = match_residues(model, ref)
        atoms, coords = biotite_pair(rfah_dir / f"{STEM}.r{k}.pdb", ref_path)
        assert len(atoms) == sum(len(a) for a in ref.atoms)  # the same reference atoms on both sides
        assert lddt(model, ref, im, ir, symmetric_swaps=False) == pytest.approx(float(struc.lddt(atoms, coords)), abs=TOL_BIOTITE)
        if k == 3:
            resolved = compare(model, ref)["lddt_no_stereochecks"]
            assert resolved == pytest.approx(biotite_lddt_with_symmetry(atoms, coords), abs=TOL_BIOTITE)
            assert resolved > lddt(model, ref, im, ir, symmetric_swaps=False) + 0.01  # real models do name them the other way


def test_alignment_matching_recovers_renumbered_residues(pdb_dir):
    chain = read_chain(pdb_dir / "1UBQ.pdb")
    renumbered = chain.subset(np.arange(5, 70))
    renumbered.ids = [(i + 1000, "") for i in range(len(renumbered))]
    with pytest.raises(FixptError, match="no residues in common.*--align"):
        compare(renumbered, chain)
    s = compare(renumbered, chain, match="align")
    assert s["n_matched"] == 65 and s["rmsd"] < 1e-6
    assert align_sequences("ACDEFGHIK", "CDEFGHI") == [(i + 1, i) for i in range(7)]
    assert align_sequences("ACDEFGHIK", "ACDGHIK") == [(0, 0), (1, 1), (2, 2), (5, 3), (6, 4), (7, 5), (8, 6)]  # EF deleted


def test_rfah_matches_independent_values(rfah_dir):
    """CA-RMSD per recycle and the consecutive-recycle residuals listed in af2/SOURCES.md."""
    ref = read_chain(rfah_dir / "experimental" / "2oug_C.pdb")
    recycles = [read_chain(rfah_dir / f"{STEM}.r{k}.pdb") for k in range(4)]
    rmsd = [compare(m, ref)["rmsd"] for m in recycles]
    assert np.allclose(rmsd, [7.06, 4.77, 3.51, 3.56], atol=0.005)
    assert compare(recycles[0], ref)["n_matched"] == 141
    steps = [residual(a, b) for a, b in zip(recycles, recycles[1:])]
    assert np.allclose([s["residual_rmsd"] for s in steps], [6.916, 6.153, 3.738], atol=5e-4)
    assert np.allclose([s["residual_tol"] for s in steps], [5.256, 3.685, 2.700], atol=5e-4)
    assert np.array_equal(recycles[3].ca, read_chain(rfah_dir / f"{STEM}.pdb").ca)  # r3 is the final model


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("ATOM      1  N   MET A   1       1.614   1.245 -21.766  1.00 80.44           N\n"
     "ATOM      2  CA  MET A   1       0.424   1.824 -21.141  1.00 80.44", "truncated"),
    ("HEADER    NOTHING HERE\nEND\n", "no atoms|no residue with a CA"),
])
def test_bad_structure_files(tmp_path, content, message):
    path = tmp_path / "bad.pdb"
    path.write_text(content)
    with pytest.raises(FixptError, match=message):
        read_chain(path)


def test_missing_chain_names_the_chains(pdb_dir):
    with pytest.raises(FixptError, match=r"chain 'Z' is not in .*chains are: A"):
        read_chain(pdb_dir / "1UBQ.pdb", chain="Z")
