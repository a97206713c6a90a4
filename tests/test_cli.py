"""The command line end to end: train -> iterate -> check-contraction, and every bad input."""

import json

import pytest
import torch

from cli_checks import one_line_error, run

CSBM = ["--csbm-nodes", "200", "--csbm-classes", "3", "--hidden", "16"]


def _no_constants(name):
    raise AssertionError(f"--json printed {name}, which is not JSON")


def strict_json(text):
    """Parse as strict JSON: Infinity and NaN are not JSON."""
    return json.loads(text, parse_constant=_no_constants)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("pign")
    res = run("train", "pign", "--backbone", "sage", *CSBM, "--epochs", 20, "--out", out, "--json", "--device", "cpu")
    assert res.exit_code == 0, res.output
    return out, strict_json(res.stdout)


def test_train_writes_checkpoint_and_metrics(trained):
    out, metrics = trained
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["val_accuracy"] == metrics["val_accuracy"] and "test_accuracy" in on_disk
    assert (out / "ckpt.pt").is_file() and metrics["out"] == str(out)


def test_train_help_lists_registered_models():
    res = run("train", "--help")
    assert res.exit_code == 0
    for name in ("pign", "gnn", "itergnn"):
        assert name in res.stdout


def test_train_prints_a_summary_table(tmp_path):
    res = run("train", "gnn", *CSBM, "--epochs", 5, "--out", tmp_path, "--device", "cpu")
    assert res.exit_code == 0 and "test_accuracy" in res.stdout and "ckpt.pt" in res.stdout


def test_iterate_json_and_plot(trained, tmp_path):
    out, _ = trained
    png = tmp_path / "conv.png"
    res = run("iterate", out / "ckpt.pt", "--max-iter", 30, "--tol", 1e-5, "--plot", png, "--json", "--device", "cpu")
    result = strict_json(res.stdout)
    assert res.exit_code == (0 if result["converged_at"] is not None else 1), res.output  # 1: not converged, the check failed
    its = result["iterations"]
    assert its[0]["k"] == 0 and its[0]["residual"] is None
    assert all({"k", "residual", "accuracy"} <= set(r) for r in its)
    residuals = [r["residual"] for r in its[1:]]
    if result["converged_at"] is not None:
        assert residuals[-1] <= 1e-5 and result["converged_at"] == len(residuals)
    else:
        assert len(residuals) == 30
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_iterate_human_output_and_anderson(trained):
    out, _ = trained
    res = run("iterate", out / "ckpt.pt", "--solver", "anderson", "--max-iter", 40, "--tol", 1e-6, "--device", "cpu")
    assert "residual (rel)" in res.stdout and ("converged at k" in res.stdout or "not converged" in res.stdout)
    assert res.exit_code == (0 if "converged at k" in res.stdout else 1), res.output


def test_check_contraction_json(trained):
    out, _ = trained
    res = run("check-contraction", out / "ckpt.pt", "--samples", 3, "--iters", 30, "--json", "--device", "cpu")
    assert res.exit_code in (0, 1), res.output
    r = strict_json(res.stdout)
    assert {"local_norm", "spectral_radius", "empirical_ratio", "certified_bound", "contractive"} <= set(r)
    assert r["local_norm"]["min"] <= r["local_norm"]["median"] <= r["local_norm"]["max"]
    assert r["certified_bound"] is None or r["certified_bound"] >= r["empirical_ratio"]
    assert res.exit_code == (0 if r["contractive"] else 1)


def test_contractive_pign_is_certified(tmp_path):
    res = run("train", "pign", "--contractive", "--gamma", 0.8, *CSBM, "--epochs", 10, "--out", tmp_path, "--device", "cpu")
    assert res.exit_code == 0, res.output
    res = run("check-contraction", tmp_path / "ckpt.pt", "--samples", 3, "--iters", 30, "--require-certificate", "--json")
    assert res.exit_code == 0, res.output
    r = strict_json(res.stdout)
    assert r["verdict"] == "certified" and r["certified_bound"] < 1 and r["contractive"]
    assert r["local_norm"]["max"] <= r["certified_bound"]


def test_threshold_below_the_estimates_fails_the_check(trained):
    out, _ = trained
    res = run("check-contraction", out / "ckpt.pt", "--samples", 2, "--iters", 20, "--threshold", 1e-6)
    assert res.exit_code == 1 and "not contractive" in res.stdout
    res = run("check-contraction", out / "ckpt.pt", "--samples", 2, "--iters", 20, "--threshold", 1e-6, "--json")
    assert res.exit_code == 1 and strict_json(res.stdout)["contractive"] is False


def test_bad_inputs_are_one_line_errors(tmp_path, trained):
    out, _ = trained
    one_line_error(run("iterate", tmp_path / "missing.pt"), "does not exist")
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 100)
    one_line_error(run("check-contraction", tmp_path / "junk.pt"), "not a readable checkpoint")
    one_line_error(run("train", "pign", "--backbone", "gin", "--epochs", 1, "--out", tmp_path / "r"), "backbone", "gcn, gat, sage")
    one_line_error(run("train", "pign", "--dataset", "cora", "--data-root", tmp_path, "--epochs", 1, "--out", tmp_path / "r"),
                   "raw files not found", "FIXPT_DATA")
    one_line_error(run("train", "pign", "--backbone", "gat", "--contractive", "--out", tmp_path / "r"), "contractive")
    one_line_error(run("train", "pign", "--noise", 50, "--out", tmp_path / "r"), "'noise' must be >= 0 and <= 1", "0.5 is the paper's 50 %")
    assert not (tmp_path / "r").exists()
    one_line_error(run("iterate", out / "ckpt.pt", "--solver", "newton"), "newton", "picard, anderson")
    one_line_error(run("iterate", out / "ckpt.pt", "--max-iter", 0), "'max_iter' must be >= 1")
    one_line_error(run("iterate", out / "ckpt.pt", "--alpha", 1.0), "alpha")
    one_line_error(run("check-contraction", out / "ckpt.pt", "--samples", 0), "'samples' must be >= 1")
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    ckpt["model"] = "transformer9000"
    torch.save(ckpt, tmp_path / "unknown.pt")
    one_line_error(run("iterate", tmp_path / "unknown.pt"), "unknown model 'transformer9000'")


def test_unknown_model_and_option_are_usage_errors():
    res = run("train", "nosuchmodel")
    assert res.exit_code == 2
    res = run("train", "pign", "--hiden", "3")
    assert res.exit_code == 2


def test_plain_gnn_has_no_fixed_point_view(tmp_path):
    assert run("train", "gnn", *CSBM, "--epochs", 2, "--out", tmp_path, "--device", "cpu").exit_code == 0
    one_line_error(run("iterate", tmp_path / "ckpt.pt"), "no fixed-point iteration", "pign")


def test_divergence_is_exit_2_and_keeps_earlier_results(tmp_path):
    assert run("train", "gnn", *CSBM, "--epochs", 2, "--out", tmp_path, "--device", "cpu").exit_code == 0
    before = (tmp_path / "ckpt.pt").read_bytes(), (tmp_path / "metrics.json").read_text()
    res = run("train", "pign", "--alpha", 0.0, "--max-iter", 60, "--lr", 1e6, *CSBM, "--epochs", 30, "--out", tmp_path, "--device", "cpu")
    one_line_error(res, "already holds a run", "--overwrite")  # refused before any work
    res = run("train", "pign", "--alpha", 0.0, "--max-iter", 60, "--lr", 1e6, *CSBM, "--epochs", 30, "--out", tmp_path, "--device", "cpu",
              "--overwrite")
    one_line_error(res, "non-finite")  # overwriting allowed, but a diverged run replaces nothing
    assert ((tmp_path / "ckpt.pt").read_bytes(), (tmp_path / "metrics.json").read_text()) == before


def test_version():
    res = run("--version")
    assert res.exit_code == 0 and "fixpt" in res.stdout


@pytest.mark.parametrize("kind", ["foreign", "newer", "truncated"])
def test_every_bad_checkpoint_is_exit_2_on_both_commands(kind, trained, tmp_path):
    out, _ = trained
    path = tmp_path / f"{kind}.pt"
    if kind == "foreign":
        torch.save({"state_dict": {}}, path)
    elif kind == "newer":
        ckpt = torch.load(out / "ckpt.pt", weights_only=True)
        ckpt["format_version"] = 99
        torch.save(ckpt, path)
    else:
        data = (out / "ckpt.pt").read_bytes()
        path.write_bytes(data[: len(data) // 3])
    needle = {"foreign": "not a fixpt checkpoint", "newer": "upgrade fixpt", "truncated": "truncated or corrupt"}[kind]
    one_line_error(run("iterate", path), needle)
    one_line_error(run("check-contraction", path), needle)
