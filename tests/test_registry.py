"""Every registered model, through the same generic paths: its example run (``register(..., example=)``) as a
sweep point, its checkpoint rebuilt, and its view's contraction check. A family is tested here by
registering it; the one model without an example says why."""

from __future__ import annotations

import json

import pytest

from fixpt.registry import get_spec, list_models
from fixpt.sweep import Run, execute, resolve
from fixpt.train import load_trained

NO_EXAMPLE = {"alphafold-recycle": "needs ColabFold results; tests/test_recycle.py runs it on a stand-in of colabfold_batch"}


def test_every_model_has_an_example_or_says_why():
    missing = [n for n in list_models() if get_spec(n).example is None and n not in NO_EXAMPLE]
    assert missing == []


@pytest.mark.parametrize("name", [n for n in list_models() if n not in NO_EXAMPLE])
def test_example_runs_through_the_generic_paths(name, tmp_path):
    spec = get_spec(name)
    params = spec.example(tmp_path / "data") if callable(spec.example) else dict(spec.example)
    run = Run(model=name, params=params)
    resolve(run)  # every example key is a config key of the model, its data or its training
    result = execute(run, tmp_path / "sweep", device="cpu", save_ckpt=True)
    assert result["status"] == "done", result.get("error")
    folder = tmp_path / "sweep" / "runs" / run.id
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["model"] == name and metrics["task"] == run.configs["task"]
    trained = load_trained(folder / "ckpt.pt", device="cpu")
    assert trained.spec is spec and not trained.model.training
    if spec.view is not None:
        opts = spec.view.contraction_options(samples=1, iters=5)
        spec.view.check_contraction(opts)
        result = spec.view.contraction(trained, opts)
        assert result.data["model"] == name and result.tables and isinstance(result.ok, bool)
