"""The parts of the training loops: the best-epoch tracker and the run folder."""

from __future__ import annotations

import json

from fixpt.errors import DivergenceError
from fixpt.training.parts import BestEpoch
from fixpt.training.rundir import RunDir


def ev(score: float, loss: float) -> dict:
    return {"val_acc": score, "val_loss": loss}


def test_best_epoch_maximises_or_minimises_by_direction_and_breaks_ties_on_the_loss():
    up = BestEpoch("acc", higher_is_better=True, patience=10)
    for epoch, (score, loss) in enumerate([(0.5, 1.0), (0.7, 0.9), (0.7, 0.8), (0.7, 0.85), (0.6, 0.1)], 1):
        up.update(epoch, ev(score, loss))
    assert up.best["epoch"] == 3 and up.last == ev(0.6, 0.1) and up.epochs_run == 5  # 0.7 with the lowest loss
    down = BestEpoch("acc", higher_is_better=False, patience=10)
    for epoch, (score, loss) in enumerate([(0.5, 1.0), (0.2, 0.9), (0.3, 0.1)], 1):
        down.update(epoch, ev(score, loss))
    assert down.best["epoch"] == 2


def test_patience_counts_epochs_without_a_better_one():
    t = BestEpoch("acc", higher_is_better=True, patience=2)
    assert t.update(1, ev(0.5, 1.0), state="w1") and t.best["state"] == "w1"
    assert not t.update(2, ev(0.4, 1.0)) and not t.exhausted
    assert not t.update(3, ev(0.5, 1.0)) and t.exhausted  # an equal score with an equal loss is not better


def test_run_folder_status_and_its_files(tmp_path):
    d = RunDir(tmp_path / "run")
    assert d.status() == "pending"
    d.start({"model": "x"})
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == {"model": "x"}
    line = d.write_error(DivergenceError("loss became nan\nsecond line"))
    assert line == "DivergenceError: loss became nan" and d.status() == "failed"
    d.start({"model": "x"})  # a retry forgets the failure
    assert d.status() == "pending"
    d.write_metrics({"test_acc": 0.5})
    assert d.status() == "done" and not list((tmp_path / "run").glob("*.tmp"))


def test_a_run_kept_in_memory_writes_nothing(tmp_path):
    d = RunDir(None)
    d.write_metrics({"a": 1})
    assert d.write_error(ValueError("bad")) == "ValueError: bad" and list(tmp_path.iterdir()) == []


def test_an_infeasible_epoch_is_chosen_only_while_no_feasible_one_exists():
    t = BestEpoch("acc", higher_is_better=True, patience=10)
    t.update(1, ev(0.6, 1.0), feasible=False)
    assert t.best["epoch"] == 1  # nothing feasible yet: the best infeasible one
    t.update(2, ev(0.4, 1.0), feasible=True)
    assert t.best["epoch"] == 2  # feasible beats a better score that breaks the constraint
    t.update(3, ev(0.9, 0.1), feasible=False)
    t.update(4, ev(0.5, 1.0), feasible=True)
    assert t.best["epoch"] == 4


def test_patience_waits_for_a_feasible_epoch():
    t = BestEpoch("acc", higher_is_better=True, patience=2)
    t.update(1, ev(0.6, 1.0), feasible=False)
    for epoch in (2, 3, 4):
        t.update(epoch, ev(0.5, 1.0), feasible=False)
    assert not t.exhausted  # no feasible epoch yet: keep training
    t.update(5, ev(0.4, 1.0), feasible=True)
    t.update(6, ev(0.3, 1.0), feasible=True)
    assert not t.exhausted
    t.update(7, ev(0.3, 1.0), feasible=True)
    assert t.exhausted
