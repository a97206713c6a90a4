"""The AlphaFold recycle runner: ColabFold's layouts, the stand-in predictor end to end, the real RfaH run."""

import csv
import json
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

from fixpt.errors import FixptError
from fixpt.protein import read_chain
from fixpt.recycle import RecycleRunConfig, colabfold_command, find_trajectories, read_fasta
from fixpt.recycle.runner import parse_models

from cli_checks import run

HERE = Path(__file__).resolve().parent
STEM = "RfaH_unrelaxed_rank_001_alphafold2_model_2_seed_003"
ROW_KEYS = {"target", "model", "seed", "recycle", "rmsd", "gdt_ts", "gdt_ha", "tm_fixed", "tm_align", "lddt_no_stereochecks", "lddt_ca",
            "plddt", "residual_rmsd", "residual_tol"}


def one_line_error(res, *needles):
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture()
def standin(tmp_path, pdb_dir, monkeypatch):
    """An executable ``colabfold_batch`` stand-in (tests/colabfold_standin.py) and a FASTA of three real
    proteins; 1AKI is planted as the non-converging target."""
    exe = tmp_path / "bin" / "colabfold_batch"
    exe.parent.mkdir()
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "colabfold_standin.py"}" "$@"\n')
    exe.chmod(0o755)
    fasta = tmp_path / "targets.fasta"
    fasta.write_text("".join(f">{n} real sequence\n{read_chain(pdb_dir / f'{n}.pdb').sequence}\n" for n in ("1CRN", "1UBQ", "1AKI")))
    monkeypatch.setenv("STANDIN_STRUCTURES", str(pdb_dir))
    monkeypatch.setenv("STANDIN_DIVERGE", "1AKI")
    monkeypatch.setenv("STANDIN_CALLS", str(tmp_path / "calls.txt"))
    return exe, fasta


def test_command_line_is_colabfolds(tmp_path):
    cmd = colabfold_command("colabfold_batch", Path("in.fasta"), Path("out"), RecycleRunConfig(max_recycles=20, models="2-4", seeds=5), seed=7)
    assert cmd[:3] == ["colabfold_batch", "in.fasta", "out"]
    for flag, value in [("--num-recycle", "20"), ("--num-models", "3"), ("--model-order", "2,3,4"), ("--num-seeds", "5"),
                        ("--random-seed", "7"), ("--model-type", "auto"), ("--recycle-early-stop-tolerance", "0")]:
        assert cmd[cmd.index(flag) + 1] == value
    assert "--save-recycles" in cmd
    assert parse_models("1,3,5") == [1, 3, 5]
    for bad in ("0-2", "1-6", "a", "1,1"):
        with pytest.raises(FixptError):
            parse_models(bad)


def test_fasta_reading(tmp_path):
    f = tmp_path / "x.fasta"
    f.write_text(">T1104 some protein\nMKV\nLLA\n>cplx|A B\nAAA:CCC\n")
    assert read_fasta(f) == [("T1104", "MKVLLA"), ("cplx_A", "AAA:CCC")]
    f.write_text("MKV\n")
    with pytest.raises(FixptError, match="before the first"):
        read_fasta(f)


def test_missing_colabfold_says_how_to_install(tmp_path, pdb_dir):
    fasta = tmp_path / "t.fasta"
    fasta.write_text(">1CRN\nTTCCPSIVARSNFNVCRLPGTPEAICATYTGCIIIPGATCPGDYAN\n")
    res = run("recycle", "run", fasta, "--out", tmp_path / "out", "--colabfold", "no-such-colabfold_batch")
    one_line_error(res, "no-such-colabfold_batch", "install ColabFold")


def test_standin_run_score_report(tmp_path, standin, pdb_dir):
    exe, fasta = standin
    out = tmp_path / "out"
    res = run("recycle", "run", fasta, "--out", out, "--max-recycles", 5, "--models", "1-2", "--seeds", 2, "--colabfold", exe, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["finished"] == ["1CRN", "1UBQ", "1AKI"]
    # ColabFold's exact names, ranked, every recycle 0..5 plus the final model identical to r5
    names = {p.name for p in (out / "1UBQ").iterdir()}
    for rank in range(1, 5):
        assert sum(n.startswith(f"1UBQ_unrelaxed_rank_{rank:03d}_alphafold2_ptm_model_") for n in names) == 7
    assert "1UBQ.done.txt" in names
    trajs = [t for t in find_trajectories(out) if t.target == "1UBQ"]
    assert sorted((t.model, t.seed) for t in trajs) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert all(sorted(t.recycles) == list(range(6)) for t in trajs)

    # resumable: a finished target is not redone (the stand-in is not even called)
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert len(calls) == 3
    res = run("recycle", "run", fasta, "--out", out, "--max-recycles", 5, "--models", "1-2", "--seeds", 2, "--colabfold", exe, "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["skipped"] == ["1CRN", "1UBQ", "1AKI"]
    assert len((tmp_path / "calls.txt").read_text().splitlines()) == 3

    res = run("recycle", "score", out, "--reference", pdb_dir, "--json")
    rows = json.loads(res.stdout)
    assert res.exit_code == 1 and any(r["flagged"] for r in rows), res.output  # flagged trajectories: the check failed
    assert len(rows) == 3 * 4 * 6 and all(ROW_KEYS <= set(r) for r in rows)
    last = [r for r in rows if r["recycle"] == 5]
    assert all(r["residual_rmsd"] is None and r["residual_tol"] is None for r in last)
    flagged = {r["target"] for r in rows if r["flagged"]}
    assert flagged == {"1AKI"}  # the planted non-converging target, and only it
    # the stand-in contracts with ratio 0.6 towards the experimental structure (1.5 for the planted one)
    ratios = [r["contraction_ratio"] for r in rows if r["contraction_ratio"] is not None]
    assert all(abs(x - 0.6) < 0.02 or abs(x - 1.5) < 0.05 for x in ratios)
    ubq = [r for r in rows if r["target"] == "1UBQ" and r["model"] == 1 and r["seed"] == 0]
    assert [r["rmsd"] for r in ubq] == sorted([r["rmsd"] for r in ubq], reverse=True) and ubq[-1]["gdt_ts"] == 100.0
    with open(out / "recycle_scores.csv") as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)
    res = run("recycle", "score", out, "--reference", pdb_dir)
    assert res.exit_code == 1 and "4 of 12 trajectories flagged" in res.stdout and "not contracting" in res.stdout


def test_standin_through_sweep_and_report(tmp_path, standin, pdb_dir):
    exe, fasta = standin
    sweep_dir, figures = tmp_path / "sweep", tmp_path / "figures"
    res = run("sweep", "recycle", "--out", sweep_dir, "--set", f"fasta={fasta}",
              "--set", f"reference={pdb_dir}", "--set", "target=[1CRN,1UBQ,1AKI]", "--set", "max_recycles=4",
              "--set", "models=1", "--set", "seeds=2", "--set", f"colabfold={exe}", "--set", "model_type=auto")
    assert res.exit_code == 0, res.output
    res = run("report", sweep_dir, "--plot", figures)
    assert res.exit_code == 0, res.output
    table = res.stdout
    assert "| 1AKI | 2 |" in table and "2 of 2 |" in table.split("| 1AKI")[1].splitlines()[0]
    assert "0 of 2 |" in table.split("| 1UBQ")[1].splitlines()[0]
    assert "1AKI: model 1 seed 0: not contracting" in table
    for name in ("recycle_per_target.png", "recycle_mean.png", "recycle_residuals.png"):
        assert (figures / name).stat().st_size > 10_000
    res = run("report", sweep_dir, "--format", "json")
    records = json.loads(res.stdout)
    gdt_last = {r["target"]: r["mean"] for r in records if r["column"] == "GDT-TS last"}
    assert gdt_last["1UBQ"] > 95 > 60 > gdt_last["1AKI"]
    last = {(r["target"], r["column"]): r["mean"] for r in records}
    assert last["1UBQ", "TM fixed-match last"] > 0.95 and 0.8 < last["1UBQ", "lDDT no-stereochecks last"] <= 1
    if find_spec("tmtools") is not None:  # an extra: without it the column is there, empty
        assert last["1UBQ", "TM-align last"] > 0.95


def test_recycle_report_refuses_compare_paper(tmp_path, standin, pdb_dir):
    exe, fasta = standin
    sweep_dir = tmp_path / "sweep"
    res = run("sweep", "recycle", "--out", sweep_dir, "--set", f"fasta={fasta}",
              "--set", f"reference={pdb_dir}", "--set", "target=[1CRN]", "--set", "max_recycles=2", "--set", "models=1",
              "--set", "seeds=1", "--set", f"colabfold={exe}", "--set", "model_type=auto")
    assert res.exit_code == 0, res.output
    one_line_error(run("report", sweep_dir, "--compare", "paper"), "figures only")


def test_real_rfah_run(tmp_path, rfah_dir):
    """The real ColabFold run: per-recycle CA-RMSD and residuals as af2/SOURCES.md lists them (computed
    independently there), nothing flagged against the fold it converges to; the wrong fold is obvious."""
    out = tmp_path / "RfaH"
    fasta = tmp_path / "rfah.fasta"
    fasta.write_text(f">RfaH\n{read_chain(rfah_dir / f'{STEM}.r0.pdb').sequence}\n")
    res = run("recycle", "run", fasta, "--out", out, "--backend", "precomputed", "--predictions", rfah_dir)
    assert res.exit_code == 0, res.output
    res = run("recycle", "score", out, "--reference", rfah_dir / "experimental" / "2oug_C.pdb", "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["recycle"] for r in rows] == [0, 1, 2, 3]
    assert [round(r["rmsd"], 2) for r in rows] == [7.06, 4.77, 3.51, 3.56]
    assert [round(r["residual_rmsd"], 3) for r in rows[:3]] == [6.916, 6.153, 3.738]
    assert [round(r["residual_tol"], 3) for r in rows[:3]] == [5.256, 3.685, 2.700]
    assert [round(r["plddt"], 2) for r in rows] == [69.21, 72.40, 78.25, 81.48]
    assert not any(r["flagged"] for r in rows) and rows[-1]["tm_fixed"] > 0.8

    res = run("recycle", "score", out, "--reference", rfah_dir / "experimental" / "6c6s_D.pdb", "--json")
    wrong = json.loads(res.stdout)
    assert res.exit_code == 1  # flagged: exit 1, as check-contraction on a non-contraction (was 0)
    assert [round(r["rmsd"], 2) for r in wrong] == [14.04, 16.75, 17.59, 17.56]
    assert wrong[-1]["flagged"] and "converges to another structure" in wrong[-1]["verdict"]
    assert wrong[-1]["gdt_ts"] < rows[-1]["gdt_ts"] - 20 and wrong[-1]["tm_fixed"] < rows[-1]["tm_fixed"] - 0.25


def test_unranked_names_of_an_interrupted_run(tmp_path, rfah_dir):
    """Before ranking, ColabFold names files without rank_NNN_; a ranked file of the same recycle wins."""
    for k in range(4):
        (tmp_path / f"RfaH_unrelaxed_alphafold2_model_2_seed_003.r{k}.pdb").symlink_to(rfah_dir / f"{STEM}.r{k}.pdb")
    (trajectory,) = find_trajectories(tmp_path)
    assert trajectory.model_type == "alphafold2" and sorted(trajectory.recycles) == [0, 1, 2, 3]
    (tmp_path / f"{STEM}.r0.pdb").symlink_to(rfah_dir / f"{STEM}.r0.pdb")
    (trajectory,) = find_trajectories(tmp_path)
    assert trajectory.recycles[0].name == f"{STEM}.r0.pdb" and trajectory.recycles[1].name.startswith("RfaH_unrelaxed_alphafold2")


def test_score_reads_a_folder_in_place(tmp_path, rfah_dir):
    """A results folder made elsewhere (here the read-only shared copy) is scored where it lies; the table goes to --csv."""
    table = tmp_path / "rfah.csv"
    res = run("recycle", "score", rfah_dir, "--reference", rfah_dir / "experimental" / "2oug_C.pdb", "--csv", table)
    assert res.exit_code == 0, res.output
    assert "141/141" in res.stdout and "converging" in res.stdout and "0 of 1 trajectories flagged" in res.stdout
    assert len(table.read_text().splitlines()) == 5 and not (rfah_dir / "recycle_scores.csv").exists()


def test_score_reports_both_tm_scores(tmp_path, rfah_dir):
    """recycle score names both TM-scores: the one with the fixed residue correspondence and TM-align's,
    the latter equal to tmtools' TM-align (normalised by the reference) to 1e-6 in the rows, the CSV
    and the table; the fold verdict says which one it read."""
    tmtools = pytest.importorskip("tmtools")
    ref_path = rfah_dir / "experimental" / "2oug_C.pdb"
    table = tmp_path / "rfah.csv"
    res = run("recycle", "score", rfah_dir, "--reference", ref_path, "--csv", table, "--json")
    assert res.exit_code == 0, res.output
    rows, ref = json.loads(res.stdout), read_chain(ref_path)
    for row in rows:
        model = read_chain(rfah_dir / f"{STEM}.r{row['recycle']}.pdb")
        expected = tmtools.tm_align(model.ca, ref.ca, model.sequence, ref.sequence).tm_norm_chain2
        assert row["tm_align"] == pytest.approx(expected, abs=1e-6) and row["tm_align"] > row["tm_fixed"]
    written = list(csv.DictReader(table.open()))
    assert [float(r["tm_align"]) for r in written] == pytest.approx([r["tm_align"] for r in rows], abs=1e-12)
    assert {"tm_fixed", "lddt_no_stereochecks", "lddt_ca"} <= set(written[0]) and "tm_score" not in written[0]
    res = run("recycle", "score", rfah_dir, "--reference", ref_path, "--csv", table)
    header = next(line for line in res.stdout.splitlines() if "TM-align rN" in line)
    assert "TM fixed-match rN" in header and f"{rows[-1]['tm_align']:.3f}" in res.stdout and "not computed" not in res.stdout


def test_fold_verdict_names_the_tm_score_it_read(tmp_path, rfah_dir):
    """The "different fold" note reads TM-align's score where it was computed, else the fixed-correspondence
    one, and names it (the real rows, with the last recycle's TM-scores set on either side of 0.5)."""
    from fixpt.recycle.score import ScoreOptions, assess

    res = run("recycle", "score", rfah_dir, "--reference", rfah_dir / "experimental" / "2oug_C.pdb", "--csv", tmp_path / "t.csv", "--json")
    rows = json.loads(res.stdout)
    rows[-1].update(tm_fixed=0.62, tm_align=0.41)
    assert "different fold from the reference (TM-align TM-score 0.41 < 0.5)" in assess(rows, ScoreOptions())[0]
    rows[-1].update(tm_fixed=0.41, tm_align=0.62)
    assert "different fold" not in assess(rows, ScoreOptions())[0]
    rows[-1].update(tm_fixed=0.41, tm_align=None)
    assert "different fold from the reference (TM-score with fixed residue correspondence 0.41 < 0.5)" in assess(rows, ScoreOptions())[0]


def test_score_without_tmtools_says_tm_align_was_not_computed(tmp_path, rfah_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "tmtools", None)  # as if not installed
    ref_path = rfah_dir / "experimental" / "2oug_C.pdb"
    res = run("recycle", "score", rfah_dir, "--reference", ref_path, "--csv", tmp_path / "t.csv", "--json")
    assert res.exit_code == 0, res.output
    assert all(r["tm_align"] is None and r["tm_fixed"] > 0.6 for r in json.loads(res.stdout))
    res = run("recycle", "score", rfah_dir, "--reference", ref_path, "--csv", tmp_path / "t.csv")
    assert res.exit_code == 0, res.output
    assert 'TM-align rN: not computed, tmtools is not installed (pip install "fixpt[tmalign]")' in res.stdout


def test_precomputed_folder_per_recycle_count(tmp_path, rfah_dir):
    """The paper's layout: one run per recycle count, each folder's final model is that recycle."""
    for k in range(4):
        d = tmp_path / f"recycles_{k}"
        d.mkdir()
        (d / f"{STEM}.pdb").symlink_to(rfah_dir / f"{STEM}.r{k}.pdb")
    (trajectory,) = find_trajectories(tmp_path)
    assert (trajectory.target, trajectory.model, trajectory.seed) == ("RfaH", 2, 3) and sorted(trajectory.recycles) == [0, 1, 2, 3]
    res = run("recycle", "score", tmp_path, "--reference", rfah_dir / "experimental" / "2oug_C.pdb", "--json")
    assert [round(r["rmsd"], 2) for r in json.loads(res.stdout)] == [7.06, 4.77, 3.51, 3.56]


def test_bad_inputs_one_line_each(tmp_path, rfah_dir, pdb_dir):
    good = tmp_path / "good"
    good.mkdir()
    for k in range(4):
        (good / f"{STEM}.r{k}.pdb").symlink_to(rfah_dir / f"{STEM}.r{k}.pdb")
    ref = rfah_dir / "experimental" / "2oug_C.pdb"
    one_line_error(run("recycle", "score", tmp_path / "empty-dir-that-is-not-there", "--reference", ref), "is not a folder")
    (tmp_path / "nothing").mkdir()
    one_line_error(run("recycle", "score", tmp_path / "nothing", "--reference", ref), "no recycle files")
    one_line_error(run("recycle", "score", good, "--reference", ref, "--chain", "Z"), "chain 'Z'", "chains are: C")
    (tmp_path / "a-file").write_text("")
    one_line_error(run("recycle", "score", good, "--reference", ref, "--csv", tmp_path / "a-file" / "scores.csv"), "cannot write", "--csv")
    # a reference numbered apart from the model: nothing in common by number
    import gemmi

    st = gemmi.read_structure(str(pdb_dir / "1CRN.pdb"))
    for res in st[0][0]:
        res.seqid.num += 5000
    far = tmp_path / "renumbered.pdb"
    st.write_pdb(str(far))
    one_line_error(run("recycle", "score", good, "--reference", far), "no residues in common", "--align")
    # an empty and a truncated recycle file
    for name, content in (("empty", b""), ("truncated", (rfah_dir / f"{STEM}.r2.pdb").read_bytes()[:5000])):
        bad = tmp_path / name
        bad.mkdir()
        for k in range(4):
            (bad / f"{STEM}.r{k}.pdb").symlink_to(rfah_dir / f"{STEM}.r{k}.pdb")
        (bad / f"{STEM}.r2.pdb").unlink()
        (bad / f"{STEM}.r2.pdb").write_bytes(content)
        one_line_error(run("recycle", "score", bad, "--reference", ref), f"{STEM}.r2.pdb", "empty" if name == "empty" else "truncated")
    # a trajectory with a hole
    holed = tmp_path / "holed"
    holed.mkdir()
    for k in (0, 1, 3):
        (holed / f"{STEM}.r{k}.pdb").symlink_to(rfah_dir / f"{STEM}.r{k}.pdb")
    one_line_error(run("recycle", "score", holed, "--reference", ref), "lacks recycle(s) 2")


def test_precomputed_backend_in_a_sweep(tmp_path, rfah_dir):
    sweep_dir = tmp_path / "sweep"
    res = run("sweep", "recycle", "--out", sweep_dir, "--set", "backend=precomputed",
              "--set", f"predictions={rfah_dir}", "--set", f"reference={rfah_dir / 'experimental' / '2oug_C.pdb'}",
              "--set", "target=[RfaH]")
    assert res.exit_code == 0, res.output
    res = run("report", sweep_dir, "--format", "json")
    cells = {r["column"]: r for r in json.loads(res.stdout)}
    assert cells["GDT-TS last"]["mean"] == pytest.approx(81.56, abs=0.01) and cells["GDT-TS last"]["flagged"] == 0
    assert cells["CA-RMSD r0 (A)"]["mean"] == pytest.approx(7.056, abs=0.001)


def test_a_reference_of_another_protein_is_flagged_on_the_terminal(tmp_path, rfah_dir, pdb_dir):
    """Ubiquitin as the reference of RfaH's recycles: residues match by number, but hardly any is the same
    amino acid; the verdict says so, the trajectory is flagged and the terminal shows it (before: only a CSV note)."""
    out = tmp_path / "RfaH"
    fasta = tmp_path / "rfah.fasta"
    fasta.write_text(f">RfaH\n{read_chain(rfah_dir / f'{STEM}.r0.pdb').sequence}\n")
    assert run("recycle", "run", fasta, "--out", out, "--backend", "precomputed", "--predictions", rfah_dir).exit_code == 0
    rows = json.loads(run("recycle", "score", out, "--reference", pdb_dir / "1UBQ.pdb", "--json").stdout)
    assert rows[-1]["identity"] < 0.15 and rows[-1]["flagged"] and rows[-1]["verdict"].startswith("wrong reference?")
    res = run("recycle", "score", out, "--reference", pdb_dir / "1UBQ.pdb")
    assert "flagged: RfaH" in res.output and "wrong reference?" in res.output.replace("\n", " ")
    right = json.loads(run("recycle", "score", out, "--reference", rfah_dir / "experimental" / "2oug_C.pdb", "--json").stdout)
    assert right[-1]["identity"] > 0.9 and not right[-1]["flagged"]
