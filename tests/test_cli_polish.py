"""The command line's rough edges, each fixed with a test that failed before (issue 17, item 6): defaults written
in help texts, stdout of ``fixpt data navier-stokes``, exit 1 when ``iterate`` does not converge (``recycle
score`` on a flagged trajectory: tests/test_recycle.py), the cached digits classifier, labelled DDPM step
grids, the FID panel without FID, and help for every benchmark option."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from fixpt.cli import app
from fixpt.cli.root import DEFERRED

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
CSBM = ["--dataset", "csbm", "--csbm-nodes", "120", "--hidden", "8", "--device", "cpu"]


def _commands(group, path=()):
    """Every command of the app, as (argv path, command), the deferred ones built."""
    for name, cmd in group.commands.items():
        cmd = next((d.build() for d in DEFERRED if d.name == name), cmd) if not path else cmd
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


def _flat(text: str) -> str:
    """Help output without the panels' box characters and line wraps."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def test_defaults_written_in_help_texts_are_shown():
    written = 0
    for path, cmd in _commands(typer.main.get_command(app)):
        wanted = [_flat(m) for p in cmd.params for m in re.findall(r"\[default: [^\]]*\]", (p.help or "").replace("\\[", "["))]
        if wanted:
            res = runner.invoke(app, [*path, "--help"], env={"TERMINAL_WIDTH": "200"})
            assert res.exit_code == 0, res.output
            for text in wanted:
                assert text in _flat(res.stdout), f"fixpt {' '.join(path)} --help lost {text!r}"
                written += 1
    assert written >= 14  # train --out, iterate --solver/--tol/--alpha, data navier-stokes --n-samples/--resolution/--dt, ...


def test_navier_stokes_prints_only_the_path_on_stdout(tmp_path):
    args = ["data", "navier-stokes", "--n-samples", "2", "--t-final", "1", "--resolution", "8", "--out", str(tmp_path)]
    for _ in range(2):  # generated, then reused
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        path = Path(res.stdout.strip())
        assert res.stdout == f"{path}\n" and path.is_file() and path.is_relative_to(tmp_path)
        assert "vorticity" in res.stderr  # what was done: on stderr


@pytest.fixture(scope="module")
def pign(tmp_path_factory):
    out = tmp_path_factory.mktemp("pign") / "run"
    res = runner.invoke(app, ["train", "pign", *CSBM, "--contractive", "--gamma", "0.5", "--epochs", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out / "ckpt.pt"


def test_iterate_exits_1_when_the_solve_does_not_converge(pign):
    res = runner.invoke(app, ["iterate", str(pign), "--max-iter", "2", "--tol", "1e-12", "--json", "--device", "cpu"])
    assert json.loads(res.stdout)["converged_at"] is None and res.exit_code == 1, res.output
    res = runner.invoke(app, ["iterate", str(pign), "--max-iter", "2", "--tol", "1e-12", "--device", "cpu"])
    assert res.exit_code == 1 and "not converged within 2 iterations" in res.stdout, res.output
    res = runner.invoke(app, ["iterate", str(pign), "--max-iter", "200", "--tol", "1e-4", "--json", "--device", "cpu"])
    assert json.loads(res.stdout)["converged_at"] is not None and res.exit_code == 0, res.output  # a contraction (Lip <= 0.5)


# ---------------------------------------------------------------- the digits classifier's cache


def test_the_digits_classifier_is_cached_on_disk(tmp_path, monkeypatch):
    from fixpt.diffusion import metrics
    from fixpt.diffusion.data import ImageGenerationDataConfig, load_images

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cfg = ImageGenerationDataConfig()
    path = metrics.classifier_cache_path(load_images(cfg), 1)
    assert path.parent == tmp_path / "fixpt" / "digits-classifier"
    metrics._classifier.cache_clear()
    trained, accuracy = metrics.digits_classifier(cfg, epochs=1)
    assert path.is_file()  # written once ...
    metrics._classifier.cache_clear()  # ... and read by the next process instead of training again

    def no_training(*_):
        raise AssertionError("trained although the weights were cached")

    monkeypatch.setattr(metrics, "_train_classifier", no_training)
    loaded, again = metrics.digits_classifier(cfg, epochs=1)
    assert again == accuracy
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), loaded.state_dict().values()))
    assert metrics.classifier_cache_path(load_images(cfg), 2) != path  # keyed on what determines the weights
    monkeypatch.undo()

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path.write_bytes(b"half a file")  # damaged: trained again and rewritten
    metrics._classifier.cache_clear()
    rebuilt, _ = metrics.digits_classifier(cfg, epochs=1)
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), rebuilt.state_dict().values()))
    assert torch.load(path, weights_only=True).keys() == trained.state_dict().keys()
    metrics._classifier.cache_clear()


# ---------------------------------------------------------------- figures


def test_the_step_count_grids_are_labelled(tmp_path, monkeypatch):
    from fixpt import plots
    from fixpt.diffusion.data import ImageSet
    from fixpt.diffusion.model import DDPM, DDPMConfig
    from fixpt.diffusion.views import iterate_steps

    torch.manual_seed(0)
    model = DDPM(DDPMConfig(size="small", timesteps=4), (1, 8)).eval()
    images = torch.rand(6, 1, 8, 8) * 2 - 1
    data = ImageSet(images, images, images, name="stand-in")  # no classifier for these
    seen = []
    save = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: seen.append(
        ([ax.get_ylabel() for ax in fig.axes], fig._suptitle.get_text())) or save(fig, path))
    result = iterate_steps(model, data, None, [1, 4], n_samples=4, seed=0, out_dir=tmp_path)
    assert [r["steps"] for r in result["rows"]] == [1, 4]
    assert seen[0][0] == ["1 steps"] and "1 of T = 4" in seen[0][1]
    assert seen[1][0] == ["4 steps"] and "4 of T = 4" in seen[1][1]
    assert seen[2][0] == ["1 steps", "4 steps"] and "one row per number of steps" in seen[2][1]  # the overview
    assert all((tmp_path / name).read_bytes()[:4] == b"\x89PNG" for name in ("steps_1.png", "steps_4.png", "steps_overview.png"))


def _fig2_table(fid: list[float]):
    from fixpt.report import Cell, Row, Table

    rows = [Row(str(T), {"test loss area": Cell([0.1 * T]), "train loss": Cell([0.05]), "FID": Cell(fid)},
                fields={"T": T, "group": ""}, tail={"fid_kind": "digits-classifier" if fid else "none"}) for T in (10, 20)]
    return Table(["runs", "test loss area", "train loss", "FID"], rows, corner="T")


def test_the_fid_panel_says_so_when_there_is_no_fid():
    from fixpt.diffusion.report import fig2_figure

    empty = fig2_figure(_fig2_table([])).axes[2]
    assert not empty.lines and not empty.axison and any("no FID" in t.get_text() for t in empty.texts)
    shown = fig2_figure(_fig2_table([3.0])).axes[2]
    assert shown.lines and shown.get_ylabel() == "FID"


# ---------------------------------------------------------------- benchmarks


@pytest.mark.parametrize("script", sorted((REPO / "benchmarks").glob("*.py")), ids=lambda p: p.name)
def test_every_benchmark_option_has_help(script):
    calls = [n for n in ast.walk(ast.parse(script.read_text())) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute) and n.func.attr == "add_argument"]
    assert calls, f"{script.name} has no options"
    bare = [ast.literal_eval(c.args[0]) for c in calls if not any(k.arg == "help" for k in c.keywords)]
    assert bare == [], f"{script.name}: options without help: {bare}"
