"""`fixpt report`: aggregation, the paper layouts, --compare paper, formats, plots and bad input."""

import csv
import io
import json
import statistics

import pytest
from typer.testing import CliRunner

from fixpt.cli import app
from fixpt.registry import LAYOUTS
from fixpt.report import Cell, Note, NumberFormat, Row, Table, make_report, paper_results, render

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def make_sweep(root, runs, report="table5", varying=("model", "backbone", "dataset", "noise"), task=None):
    """A sweep directory as `fixpt sweep` writes it: index.json and runs/<id>/{config,metrics}.json (the
    config without its task unless ``task`` is given: a run older than that record)."""
    root.mkdir(parents=True, exist_ok=True)
    index = []
    for i, (model, params, metrics) in enumerate(runs):
        rid = f"{model}-{i:08x}"
        index.append({"id": rid, "model": model, "params": params})
        if metrics is not None:
            d = root / "runs" / rid
            d.mkdir(parents=True)
            (d / "config.json").write_text(json.dumps({"model": model, "params": params, **({"task": task} if task else {})}))
            (d / "metrics.json").write_text(json.dumps(metrics))
    (root / "index.json").write_text(json.dumps({"name": "t", "report": report, "varying": list(varying), "runs": index}))
    return root


SCORES = {  # (model, backbone, dataset, noise) -> test accuracies over seeds
    ("gnn", "gcn", "cora", 0.0): [0.80, 0.82, 0.81],
    ("gnn", "gcn", "cora", 0.5): [0.30, 0.36, 0.33],
    ("pign", "gcn", "cora", 0.0): [0.77, 0.78, 0.76],
    ("pign", "gcn", "cora", 0.5): [0.45, 0.41, 0.44],
    ("pign", "gat", "citeseer", 0.5): [0.35, 0.33],
}


@pytest.fixture
def table5_dir(tmp_path):
    runs = [(m, {"backbone": b, "dataset": d, "noise": n, "seed": s, **({"form": "paper"} if m == "pign" else {})},
             {"test_accuracy": v}) for (m, b, d, n), vals in SCORES.items() for s, v in enumerate(vals)]
    runs.append(("gnn", {"backbone": "gat", "dataset": "cora", "noise": 0.0, "seed": 0}, None))  # planned, unfinished
    return make_sweep(tmp_path, runs)


def test_table5_layout_mean_std_and_bold(table5_dir):
    res = run("report", table5_dir, "--format", "json")
    assert res.exit_code == 0, res.output
    cells = {(c["row"], c["column"]): c for c in json.loads(res.stdout)["cells"]}
    for (m, b, d, n), vals in SCORES.items():
        label = {"gcn": "GCN", "gat": "GAT"}[b]
        row = label if m == "gnn" else f"PIGN with {label}"
        col = {"cora": "Cora", "citeseer": "CiteSeer"}[d] + ("-50%" if n else "")
        c = cells[row, col]
        assert c["mean"] == pytest.approx(statistics.mean(vals)) and c["std"] == pytest.approx(statistics.stdev(vals))
        assert c["n"] == len(vals)
    assert cells["GCN", "Cora"]["best"] and not cells["PIGN with GCN", "Cora"]["best"]
    assert cells["PIGN with GCN", "Cora-50%"]["best"]
    md = run("report", table5_dir).stdout
    lines = md.splitlines()
    assert lines[0].split("|")[2:-1] == [" Cora ", " Cora-50% ", " CiteSeer-50% "]  # the paper's column order
    assert [line.split("|")[1].strip() for line in lines[2:5]] == ["GCN", "PIGN with GCN", "PIGN with GAT"]
    assert "**81.0 ± 1.0**" in md and "**43.3 ± 2.1**" in md
    assert "1 of" not in md and "5 of 6" not in md  # the note goes to stderr


def test_compare_paper_puts_published_numbers_and_differences(table5_dir):
    res = run("report", table5_dir, "--compare", "paper", "--format", "csv")
    assert res.exit_code == 0, res.output
    rows = {(r["row"], r["column"]): r for r in csv.DictReader(io.StringIO(res.stdout))}
    published = paper_results()["table5"]["cells"]
    for (row, col), r in rows.items():
        mean, _ = published[row][col]
        assert float(r["paper_mean"]) == pytest.approx(mean / 100)
        assert float(r["diff"]) == pytest.approx(float(r["mean"]) - mean / 100)
    md = run("report", table5_dir, "--compare", "paper").stdout
    assert "(paper 43.4, -0.1)" in md and "Table 5" in md  # PIGN with GCN on Cora-50%: 43.33 vs 43.4


def test_latex_escapes_and_bolds(table5_dir):
    tex = run("report", table5_dir, "--format", "latex").stdout
    assert r"\begin{tabular}" in tex and r"Cora-50\%" in tex and r"\textbf{81.0 $\pm$ 1.0}" in tex


def test_table1_layout_is_fractions_by_backbone(tmp_path):
    runs = [(m, {"backbone": b, "seed": s, "form": "paper"}, {"test_f1": v}) for m, b, vals in
            [("gnn", "sage", [0.30, 0.31]), ("pign", "sage", [0.35, 0.36]), ("pign", "gcn", [0.18, 0.19])]
            for s, v in enumerate(vals)]
    d = make_sweep(tmp_path, runs, report="table1", varying=("model", "backbone"))
    md = run("report", d, "--compare", "paper").stdout
    assert "| f1, mean ± std over 2 seeds, best-val epoch | GCN | GraphSAGE |" in md
    assert "| PIGN | **0.1850 ± 0.0071** (paper 0.1831, +0.0019) | **0.3550 ± 0.0071** (paper 0.3560, -0.0010) |" in md


def test_plots_are_written(tmp_path):
    runs = [("pign", {"backbone": "gcn", "alpha": a, "max_iter": k, "seed": s},
             {"test_accuracy": 0.5 + 0.01 * k + 0.001 * s, "residual_trace": [0.5 ** j for j in range(1, k + 1)]})
            for a in (0.5, 0.8) for k in (1, 2, 4) for s in range(2)]
    runs += [("gnn", {"backbone": "gcn", "seed": s}, {"test_accuracy": 0.25}) for s in range(2)]
    d = make_sweep(tmp_path / "sw", runs, report="generic", varying=("model", "alpha", "max_iter"))
    res = run("report", d, "--plot", tmp_path / "fig")
    assert res.exit_code == 0, res.output
    for name in ("score_vs_iterations.png", "residuals.png"):
        assert (tmp_path / "fig" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "pign alpha=0.5 max_iter=4" in res.stdout  # generic rows: one per combination


def test_metrics_without_config_is_not_a_finished_run(table5_dir):
    """A metrics.json alone is not a complete run (e.g. written into a directory that was being removed)."""
    first = next((table5_dir / "runs").iterdir())
    (first / "config.json").unlink()
    cells = json.loads(run("report", table5_dir, "--format", "json").stdout)["cells"]
    assert sum(c["n"] for c in cells) == sum(len(v) for v in SCORES.values()) - 1


def test_bad_input_is_one_line_and_exit_2(tmp_path, table5_dir):
    for args, needle in [((tmp_path / "nowhere",), "not a sweep directory"),
                         ((table5_dir, "--format", "xml"), "unknown format"),
                         ((table5_dir, "--compare", "arxiv"), "only reference is 'paper'"),
                         ((table5_dir, "--layout", "table9"), "unknown layout")]:
        res = run("report", *args)
        assert res.exit_code == 2 and needle in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.output
    empty = make_sweep(tmp_path / "empty", [("gnn", {"seed": 0}, None)])
    res = run("report", empty)
    assert res.exit_code == 2 and "no finished runs" in res.stderr
    generic = make_sweep(tmp_path / "g", [("gnn", {"seed": 0}, {"test_accuracy": 0.5})], report="generic", varying=())
    res = run("report", generic, "--compare", "paper")
    assert res.exit_code == 2 and "no numbers for the 'generic' layout" in res.stderr


def test_lower_is_better_for_mse(tmp_path):
    """An error metric (test_mse) bolds the smallest mean, not the largest."""
    runs = [("vit", {"n_iter": k, "seed": s}, {"test_mse": v}) for k, vals in ((1, [0.30, 0.32]), (3, [0.10, 0.12])) for s, v in enumerate(vals)]
    res = run("report", make_sweep(tmp_path, runs, report="generic", varying=("n_iter",)), "--format", "json")
    assert res.exit_code == 0, res.output
    best = {c["row"]: c["best"] for c in json.loads(res.stdout)["cells"]}
    assert best == {"n_iter=1": False, "n_iter=3": True}


def test_a_single_run_shows_no_spread(tmp_path):
    runs = [("pign", {"max_iter": k, "seed": 0}, {"test_accuracy": 0.5 + k / 100}) for k in (1, 2)]
    res = run("report", make_sweep(tmp_path, runs, report="generic", varying=("max_iter",)))
    assert res.exit_code == 0, res.output
    assert "| max_iter=1 | 51.0 |" in res.stdout and "| max_iter=2 | **52.0** |" in res.stdout and "± 0.0" not in res.stdout


def test_an_ablation_base_row_is_named_and_one_seed_is_singular(tmp_path):
    """The base run of an ablation sets none of the varying keys: its row says it runs the defaults."""
    runs = [("anie", {"n_iter": 4, "seed": 0}, {"test_mse": 0.09}),
            ("anie", {"n_iter": 4, "residual": True, "seed": 0}, {"test_mse": 0.2})]
    res = run("report", make_sweep(tmp_path, runs, report="generic", varying=("residual",)))
    assert res.exit_code == 0, res.output
    assert "| anie (defaults) | **0.0900** |" in res.stdout and "| residual=True | 0.2000 |" in res.stdout, res.stdout
    assert "mean ± std over 1 seed," in res.stdout and "2 runs," in res.stdout
    one = run("report", make_sweep(tmp_path / "one", runs[:1], report="generic", varying=()))
    assert "1 run," in one.stdout and "1 runs" not in one.stdout, one.stdout


def tuning_sweep(root):
    """PIGN on noisy Cora with two settings: alpha=0.2 is better on validation, alpha=0.8 on test;
    GCN has one setting. Validation must choose, never test."""
    scores = {  # (model, alpha) -> [(val, test, val_loss) per seed]
        ("pign", 0.2): [(0.50, 0.40, 1.0), (0.52, 0.42, 1.0), (0.54, 0.38, 1.0)],
        ("pign", 0.8): [(0.45, 0.60, 0.9), (0.47, 0.62, 0.9), (0.46, 0.61, 0.9)],
        ("gnn", None): [(0.30, 0.31, 1.5), (0.32, 0.33, 1.5), (0.31, 0.35, 1.5)],
    }
    runs = []
    for (model, alpha), vals in scores.items():
        for s, (val, test, loss) in enumerate(vals):
            params = {"backbone": "gcn", "dataset": "cora", "noise": 0.5, "seed": s, **({"alpha": alpha} if alpha else {})}
            runs.append((model, params, {"val_accuracy": val, "test_accuracy": test, "val_loss": loss, "seconds": 2.0}))
    return make_sweep(root, runs, varying=("model", "alpha"))


def test_select_chooses_each_cells_setting_on_validation(tmp_path):
    root = tuning_sweep(tmp_path)
    without = run("report", root, "--format", "json")
    rows = {c["row"] for c in json.loads(without.stdout)["cells"]}
    assert rows == {"GCN", "PIGN (fixed-point) with GCN (alpha=0.2)", "PIGN (fixed-point) with GCN (alpha=0.8)"}  # without --select: every setting
    res = run("report", root, "--select", "--format", "json")
    assert res.exit_code == 0, res.output
    cells = {c["row"]: c for c in json.loads(res.stdout)["cells"]}
    pign = cells["PIGN (fixed-point) with GCN"]
    assert pign["setting"] == "alpha=0.2" and pign["settings_compared"] == 2
    assert pign["mean"] == pytest.approx(0.40) and pign["val_mean"] == pytest.approx(0.52)  # not alpha=0.8's 0.61 test
    assert cells["GCN"]["setting"] == "" and cells["GCN"]["settings_compared"] == 1
    md = run("report", root, "--select").stdout
    assert "| PIGN (fixed-point) with GCN | **40.0 ± 2.0** |" in md
    assert "- PIGN (fixed-point) with GCN, Cora-50%: alpha=0.2 (validation 52.0, best of 2)" in md
    assert "9 runs, 0.3 min of training in all" in md  # the settings not chosen were trained too
    rows = list(csv.DictReader(io.StringIO(run("report", root, "--select", "--format", "csv").stdout)))
    assert {r["row"]: r["setting"] for r in rows} == {"GCN": "", "PIGN (fixed-point) with GCN": "alpha=0.2"}
    assert "% - PIGN (fixed-point) with GCN, Cora-50%: alpha=0.2" in run("report", root, "--select", "--format", "latex").stdout


def test_select_breaks_ties_on_the_validation_loss(tmp_path):
    runs = [("pign", {"alpha": a, "seed": 0}, {"val_accuracy": 0.5, "test_accuracy": t, "val_loss": loss})
            for a, t, loss in ((0.2, 0.1, 0.7), (0.5, 0.2, 0.6), (0.8, 0.3, 0.9))]
    res = run("report", make_sweep(tmp_path, runs, report="generic", varying=("alpha",)), "--select", "--format", "json")
    assert res.exit_code == 0, res.output
    (cell,) = json.loads(res.stdout)["cells"]
    assert cell["setting"] == "alpha=0.5" and cell["mean"] == pytest.approx(0.2)


def test_select_needs_validation_scores(tmp_path, table5_dir):
    res = run("report", make_sweep(tmp_path / "noval", [("gnn", {"alpha": a, "seed": 0}, {"test_accuracy": 0.5}) for a in (1, 2)],
                                    report="generic", varying=("alpha",)), "--select")
    assert res.exit_code == 2 and "val_accuracy" in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.output
    res = run("report", table5_dir, "--select", "--layout", "recycle")
    assert res.exit_code == 2 and "--select" in res.stderr, res.output


def _protocol_sweep(root):
    """PIGN in both forms on Cora-50%, with per-cell settings for the paper form, and both protocols recorded."""
    runs = []
    for s, (best, last) in enumerate([(0.50, 0.40), (0.54, 0.44)]):
        runs.append(("pign", {"form": "paper", "backbone": "gcn", "dataset": "cora", "noise": 0.5, "alpha": 0.6, "max_iter": 7,
                              "seed": s},
                     {"test_accuracy": best, "test_accuracy_last_epoch": last, "val_accuracy": 0.5, "val_accuracy_last_epoch": 0.4}))
        runs.append(("pign", {"form": "paper", "backbone": "gcn", "dataset": "cora", "noise": 0.0, "alpha": 0.9, "max_iter": 2,
                              "seed": s},
                     {"test_accuracy": 0.8, "test_accuracy_last_epoch": 0.7, "val_accuracy": 0.8, "val_accuracy_last_epoch": 0.7}))
        runs.append(("pign", {"backbone": "gcn", "dataset": "cora", "noise": 0.5, "seed": s},
                     {"test_accuracy": 0.30, "test_accuracy_last_epoch": 0.25, "val_accuracy": 0.3, "val_accuracy_last_epoch": 0.2}))
    return make_sweep(root, runs, varying=("backbone", "dataset", "noise", "alpha", "max_iter", "seed"))


def test_forms_have_their_own_rows_and_only_the_paper_form_meets_the_paper(tmp_path):
    d = _protocol_sweep(tmp_path)
    res = run("report", d, "--compare", "paper", "--format", "json")
    assert res.exit_code == 0, res.output
    cells = {(c["row"], c["column"]): c for c in json.loads(res.stdout)["cells"]}
    assert set(cells) == {("PIGN with GCN", "Cora-50%"), ("PIGN with GCN", "Cora"), ("PIGN (fixed-point) with GCN", "Cora-50%")}
    assert cells["PIGN with GCN", "Cora-50%"]["paper_mean"] == pytest.approx(0.434)
    assert "paper_mean" not in cells["PIGN (fixed-point) with GCN", "Cora-50%"]  # the paper ran Algorithm 1, not this form
    # one setting per cell: the row stays one row, each cell's setting is listed under the table
    assert cells["PIGN with GCN", "Cora-50%"]["setting"] == "alpha=0.6, max_iter=7"
    md = run("report", d).stdout
    assert "Settings per cell:" in md and "- PIGN with GCN, Cora: alpha=0.9, max_iter=2" in md
    assert "seeds, best-val epoch |" in md


def test_protocols_report_best_validation_or_last_epoch(tmp_path):
    d = _protocol_sweep(tmp_path)
    for protocol, expected in [("best-val", 0.52), ("last-epoch", 0.42)]:
        res = run("report", d, "--format", "json", "--protocol", protocol)
        assert res.exit_code == 0, res.output
        doc = json.loads(res.stdout)
        cells = {(c["row"], c["column"]): c for c in doc["cells"]}
        assert doc["protocol"] == protocol and cells["PIGN with GCN", "Cora-50%"]["mean"] == pytest.approx(expected)
    assert "seeds, last epoch |" in run("report", d, "--protocol", "last-epoch").stdout


def test_select_under_the_last_epoch_protocol_chooses_on_last_epoch_validation(tmp_path):
    runs = []
    for s in range(2):  # setting a wins on best-epoch validation, setting b on last-epoch validation
        runs.append(("gnn", {"backbone": "gcn", "dataset": "cora", "dropout": 0.5, "seed": s},
                     {"test_accuracy": 0.8, "val_accuracy": 0.9, "val_loss": 1.0, "test_accuracy_last_epoch": 0.6,
                      "val_accuracy_last_epoch": 0.5}))
        runs.append(("gnn", {"backbone": "gcn", "dataset": "cora", "dropout": 0.8, "seed": s},
                     {"test_accuracy": 0.7, "val_accuracy": 0.8, "val_loss": 1.0, "test_accuracy_last_epoch": 0.75,
                      "val_accuracy_last_epoch": 0.7}))
    d = make_sweep(tmp_path, runs, varying=("dropout", "seed"))
    best = json.loads(run("report", d, "--select", "--format", "json").stdout)["cells"][0]
    last = json.loads(run("report", d, "--select", "--protocol", "last-epoch", "--format", "json").stdout)["cells"][0]
    assert (best["setting"], best["mean"]) == ("dropout=0.5", pytest.approx(0.8))
    assert (last["setting"], last["mean"]) == ("dropout=0.8", pytest.approx(0.75))


def test_last_epoch_protocol_on_old_runs_says_what_to_do(table5_dir):
    for args, needle in [(("--protocol", "last-epoch"), "did not record test_accuracy_last_epoch"),
                         (("--protocol", "final"), "unknown protocol")]:
        res = run("report", table5_dir, *args)
        assert res.exit_code == 2 and needle in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.output


def test_table1_in_latex_csv_and_json(tmp_path):
    runs = [(m, {"backbone": b, "seed": s, "form": "paper"}, {"test_f1": v, "seconds": 4.0}) for m, b, vals in
            [("gnn", "gcn", [0.15, 0.16]), ("pign", "gcn", [0.18, 0.19]), ("itergnn", "gat", [0.11, 0.13])] for s, v in enumerate(vals)]
    d = make_sweep(tmp_path, runs, report="table1", varying=("model", "backbone"))
    tex = run("report", d, "--format", "latex").stdout.splitlines()
    assert tex[:3] == [r"\begin{tabular}{lcc}", r"\toprule", r" & GCN & GAT \\"]
    assert r"PIGN & \textbf{0.1850 $\pm$ 0.0071} & - \\" in tex and tex[-1] == "% f1, best-val epoch"
    rows = list(csv.DictReader(io.StringIO(run("report", d, "--format", "csv").stdout)))
    assert [(r["row"], r["column"], r["n"], r["best"]) for r in rows] == [
        ("w/o iterations", "GCN", "2", "False"), ("IterGNN", "GAT", "2", "True"), ("PIGN", "GCN", "2", "True")]
    doc = json.loads(run("report", d, "--format", "json").stdout)
    assert (doc["metric"], doc["protocol"], doc["source"]) == ("f1", "best-val", "")
    assert doc["cells"][0]["values"] == [0.15, 0.16] and doc["cells"][0]["seconds_mean"] == 4.0


def test_generic_in_latex_and_csv(tmp_path):
    runs = [("pign", {"alpha": a, "seed": s}, {"test_accuracy": 0.5 + a / 10 + s / 100}) for a in (0.2, 0.8) for s in range(2)]
    d = make_sweep(tmp_path, runs, report="generic", varying=("alpha",))
    tex = run("report", d, "--format", "latex").stdout
    assert r" & test accuracy \\" in tex and r"alpha=0.8 & \textbf{58.5 $\pm$ 0.7} \\" in tex
    rows = list(csv.DictReader(io.StringIO(run("report", d, "--format", "csv").stdout)))
    assert [(r["row"], r["column"], r["metric"]) for r in rows] == [("alpha=0.2", "test accuracy", "accuracy"),
                                                                     ("alpha=0.8", "test accuracy", "accuracy")]


def ddpm_metrics(T, s, fid=True):
    m = {"task": "image-generation", "timesteps": T, "train_loss": 0.1 + T / 1000, "test_loss_area": 1.0 / T + s / 1000,
         "loss_per_timestep": [[t / (T - 1), 0.5 / (1 + t)] for t in range(0, T, T // 4)], "loss_curve": [[1, 1.0], [2, 0.5]],
         "quality": 0.5, "fid_kind": "digits-classifier (not comparable with published FID)"}
    return {**m, "fid": 30.0 - T / 10 + s} if fid else m


def fig2_sweep(root):
    runs = [("ddpm", {"timesteps": T, "size": size, "seed": s}, ddpm_metrics(T, s, fid=size == "small"))
            for size in ("small", "tiny") for T in (20, 40) for s in range(2 if T == 20 else 1)]
    runs.append(("ddpm", {"timesteps": 80, "size": "small", "seed": 0}, None))  # planned, unfinished
    return make_sweep(root, runs, report="fig2", varying=("timesteps", "size"))


def test_fig2_layout_in_every_format(tmp_path):
    d = fig2_sweep(tmp_path)
    md = run("report", d)
    assert md.exit_code == 0, md.output
    lines = md.stdout.splitlines()
    assert lines[0] == "| T | group | runs | test loss area | train loss | FID | quality |"
    assert lines[2] == "| 20 | size=small | 2 | 0.0505 ± 0.0007 | 0.1200 ± 0.0000 | 28.5000 ± 0.7071 | 0.5000 ± 0.0000 |"
    assert lines[5] == "| 40 | size=tiny | 1 | 0.0250 | 0.1400 | - | 0.5000 |"  # no FID recorded; one run: no spread
    assert lines[-1] == "FID features: digits-classifier (not comparable with published FID)"
    assert "note: 6 of 7 planned runs are finished" in md.stderr
    tex = run("report", d, "--format", "latex").stdout.splitlines()
    assert tex[2] == r"T & group & runs & test loss area & train loss & FID & quality \\"
    assert tex[-1] == "% FID features: digits-classifier (not comparable with published FID)"
    rows = list(csv.DictReader(io.StringIO(run("report", d, "--format", "csv").stdout)))
    assert list(rows[0]) == ["T", "group", "column", "mean", "std", "n", "fid_kind"] and len(rows) == 4 * 4
    fid = {(r["T"], r["group"]): r for r in rows if r["column"] == "FID"}
    assert fid["40", "size=tiny"]["n"] == "0" and fid["40", "size=tiny"]["mean"] == "nan"
    records = json.loads(run("report", d, "--format", "json").stdout)
    empty = next(r for r in records if r["T"] == 40 and r["group"] == "size=tiny" and r["column"] == "FID")
    assert empty["mean"] is None and empty["std"] is None and empty["n"] == 0  # NaN is written as null


def test_fig2_figures(tmp_path):
    res = run("report", fig2_sweep(tmp_path / "sw"), "--plot", tmp_path / "fig")
    assert res.exit_code == 0, res.output
    for name in ("fig2_loss_fid.png", "fig8_loss_per_timestep.png"):
        assert (tmp_path / "fig" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and name in res.stderr


def recycle_sweep(root):
    def trajectory(target, model, seed, flagged):
        return {"target": target, "model": model, "seed": seed, "gdt_ts": [50.0 + seed, 90.0 + model], "rmsd": [4.0, 1.0 + seed],
                "tm_score": [0.5, 0.9], "lddt": [70.0, 80.0], "plddt": [None, None], "contraction_ratio": [None, 0.5 + seed, None],
                "residual_rmsd": [1.0, None], "verdict": "not contracting" if flagged else "converging", "flagged": flagged}

    runs = [("alphafold-recycle", {"target": "1AKI", "seed": 0},
             {"test_gdt_ts": 0.9, "trajectories": [trajectory("1AKI", 1, s, s == 0) for s in range(2)]}),
            ("alphafold-recycle", {"target": "1CRN", "seed": 0}, {"test_gdt_ts": 0.9, "trajectories": [trajectory("1CRN", 2, 0, False)]})]
    return make_sweep(root, runs, report="recycle", varying=("target",), task="structure-recycling")


def test_recycle_layout_in_every_format(tmp_path):
    d = recycle_sweep(tmp_path)
    md = run("report", d).stdout.splitlines()
    assert md[0] == ("| target | trajectories | GDT-TS r0 | GDT-TS last | CA-RMSD r0 (A) | CA-RMSD last (A) | TM fixed-match last "
                     "| TM-align last | lDDT no-stereochecks last | pLDDT last | last residual ratio | flagged |")
    assert md[2] == ("| 1AKI | 2 | 50.50 ± 0.71 | 91.00 ± 0.00 | 4.00 ± 0.00 | 1.50 ± 0.71 | 0.90 ± 0.00 | - | - | - "
                     "| 1.00 ± 0.71 | 1 of 2 |")
    assert md[3].startswith("| 1CRN | 1 | 50.00 ± 0.00 |")  # the recycle table shows the spread of one trajectory too
    assert md[-2:] == ["Flagged (not converging):", "- 1AKI: model 1 seed 0: not contracting"]
    tex = run("report", d, "--format", "latex").stdout.splitlines()
    assert tex[-1] == r"\end{tabular}" and r"1AKI & 2 & 50.50 $\pm$ 0.71" in tex[4]  # no notes in LaTeX
    rows = list(csv.DictReader(io.StringIO(run("report", d, "--format", "csv").stdout)))
    assert list(rows[0]) == ["target", "column", "mean", "std", "n", "flagged"]
    plddt = [r for r in rows if r["column"] == "pLDDT last"]
    assert [(r["n"], r["mean"], r["flagged"]) for r in plddt] == [("2", "nan", "1"), ("1", "nan", "0")]  # n: trajectories
    records = json.loads(run("report", d, "--format", "json").stdout)
    assert records[0] == {"target": "1AKI", "column": "GDT-TS r0", "mean": 50.5, "std": pytest.approx(0.7071, abs=1e-4),
                          "n": 2, "flagged": 1}


def test_metric_direction_comes_from_the_task(tmp_path):
    """A DDPM sweep in the generic layout bolds the smallest loss area: its task ranks lower scores higher
    (before, only a metric named mse did)."""
    runs = [("ddpm", {"timesteps": T, "seed": 0}, ddpm_metrics(T, 0)) for T in (20, 40)]
    res = run("report", make_sweep(tmp_path, runs, report="generic", varying=("timesteps",)), "--format", "json")
    assert res.exit_code == 0, res.output
    assert {c["row"]: c["best"] for c in json.loads(res.stdout)["cells"]} == {"timesteps=20": False, "timesteps=40": True}


def test_options_that_do_not_apply_name_the_layouts_that_take_them(tmp_path):
    d = fig2_sweep(tmp_path)
    for args, message in [(("--select",), "--select chooses settings in the generic, table1 and table5 layouts, not in fig2"),
                          (("--protocol", "last-epoch"), "--protocol last-epoch applies to the generic, table1 and table5 layouts, not to fig2"),
                          (("--compare", "paper"), "the paper shows its DDPM results as figures only"),
                          (("--layout", "table9"), "unknown layout 'table9'; valid: fig2, generic, recycle, table1, table5")]:
        res = run("report", d, *args)
        assert res.exit_code == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.output


def test_make_report_returns_text_notes_and_figures(tmp_path):
    report = make_report(fig2_sweep(tmp_path / "sw"), fmt="csv", plot=tmp_path / "fig")
    assert report.text.startswith("T,group,column,mean,std,n,fid_kind")
    assert report.notes == ["note: 6 of 7 planned runs are finished; the table covers those"]
    assert [p.name for p in report.written] == ["fig2_loss_fid.png", "fig8_loss_per_timestep.png"]
    generic = make_report(make_sweep(tmp_path / "g", [("gnn", {"seed": 0}, {"test_accuracy": 0.5})], report="generic", varying=()),
                          plot=tmp_path / "none")
    assert generic.written == [] and generic.notes == ["no figure applies: max_iter does not vary and no run recorded a residual trace or a history"]


def test_every_layout_is_registered_with_what_it_supports():
    assert LAYOUTS.names() == ["fig2", "generic", "recycle", "table1", "table5"]
    assert {n: LAYOUTS.get(n).chooses_settings for n in LAYOUTS.names()} == {
        "fig2": False, "generic": True, "recycle": False, "table1": True, "table5": True}
    assert set(paper_results()) == {"table5", "table1"}
    assert all(LAYOUTS.get(n).paper_absent for n in ("fig2", "recycle"))


def test_one_table_model_renders_in_every_format():
    """The renderers know no layout: a hand-made table, its cells' sample std, a text column, a note."""
    table = Table(["n", "score"], [Row("a", {"score": Cell([1.0, 2.0, 4.0])}, text={"n": "3"}), Row("b", {"score": Cell([])}, text={"n": "0"})],
                  NumberFormat(decimals=2), corner="name", higher_is_better=False, notes=[Note(["50% done"], latex=False)])
    assert Cell([1.0, 2.0, 4.0]).std == pytest.approx(statistics.stdev([1.0, 2.0, 4.0]))
    assert render(table, "md") == "| name | n | score |\n|---|---|---|\n| a | 3 | **2.33 ± 1.53** |\n| b | 0 | - |\n\n50% done\n"
    assert render(table, "latex").splitlines()[2:5] == [r"name & n & score \\", r"\midrule", r"a & 3 & \textbf{2.33 $\pm$ 1.53} \\"]
    assert json.loads(render(table, "json"))[1] == {"row": "b", "column": "score", "mean": None, "std": None, "n": 0, "best": False}
    assert render(table, "csv").splitlines()[0] == "row,column,mean,std,n,best"


def test_runs_of_fixpt_train_are_reported_without_a_sweep(tmp_path, monkeypatch):
    """`fixpt train` writes config.json beside metrics.json; `fixpt report` on a run folder, or on a folder of
    them, compares the runs by the settings they differ in (seeds pooled as in a sweep); a folder of neither
    kind is one line, exit 2, and a run without config.json is left out with a note."""
    monkeypatch.chdir(tmp_path)
    base = ["--dataset", "csbm", "--csbm-nodes", "120", "--epochs", "2", "--device", "cpu"]
    for hidden, seed in ((8, 0), (8, 1), (16, 0)):
        res = run("train", "gnn", *base, "--hidden", str(hidden), "--seed", str(seed), "--out", f"runs/h{hidden}s{seed}")
        assert res.exit_code == 0, res.output
    config = json.loads((tmp_path / "runs/h8s0/config.json").read_text())
    assert config["model"] == "gnn" and config["model_config"]["hidden"] == 8 and config["train"]["seed"] == 0
    res = run("report", "runs", "--format", "json")
    assert res.exit_code == 0, res.output
    cells = {c["row"]: c for c in json.loads(res.stdout)["cells"]}
    assert set(cells) == {"hidden=8", "hidden=16"} and cells["hidden=8"]["n"] == 2 and cells["hidden=16"]["n"] == 1
    scores = [json.loads((tmp_path / f"runs/h8s{s}/metrics.json").read_text())["test_accuracy"] for s in (0, 1)]
    assert cells["hidden=8"]["mean"] == pytest.approx(sum(scores) / 2)
    one = run("report", "runs/h16s0", "--format", "json")
    assert one.exit_code == 0 and [c["row"] for c in json.loads(one.stdout)["cells"]] == ["gnn"], one.output
    # two models: a shared option that differs (backbone) is shown; one model's own options (pign's alpha, ...) are not
    ok_runs = [run("train", m, *base, "--hidden", "8", "--backbone", b, "--out", f"mixed/{m}") for m, b in (("gnn", "gcn"), ("pign", "sage"))]
    assert all(r.exit_code == 0 for r in ok_runs), [r.output for r in ok_runs]
    mixed = run("report", "mixed", "--format", "json")
    assert mixed.exit_code == 0, mixed.output
    assert {c["row"] for c in json.loads(mixed.stdout)["cells"]} == {"gnn backbone=gcn", "pign backbone=sage"}
    (tmp_path / "runs/h16s0/config.json").unlink()  # a run from before config.json was written
    res = run("report", "runs")
    assert res.exit_code == 0 and "runs/h16s0/config.json is missing" in res.output.replace("\\", "/"), res.output
    (tmp_path / "empty").mkdir()
    res = run("report", "empty")
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and "not a sweep directory" in lines[0], res.output
