"""Every numeric option of every command, driven with out-of-range and malformed values (hypothesis):
always exit 2, no traceback, and (for values that parse) one line naming the option (issue 15, item 11)."""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path

import pytest
from typer.testing import CliRunner

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fixpt.cli import app  # noqa: E402
from fixpt.registry import get_spec, list_models  # noqa: E402
from fixpt.tasks import get_task  # noqa: E402

runner = CliRunner()


def _numeric_fields(cls) -> list[tuple[dataclasses.Field, type]]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        typ = {int: int, float: float, typing.Optional[int]: int, typing.Optional[float]: float}.get(hints[f.name])
        if typ is not None and "choices" not in f.metadata:
            out.append((f, typ))
    return out


def _targets() -> list[tuple[list[str], dataclasses.Field, type]]:
    """(command prefix, field, type) for every numeric option of every train command and of both views."""
    targets = []
    for name in list_models():
        spec = get_spec(name)
        task = get_task(spec.task)
        if not task.trains:
            continue
        for cls in (spec.config, task.data_config, task.train_config):
            targets += [(["train", name], f, t) for f, t in _numeric_fields(cls)]
    view = get_spec("pign").view
    targets += [(["iterate", "{ckpt}"], f, t) for f, t in _numeric_fields(view.iterate_options)]
    targets += [(["check-contraction", "{ckpt}"], f, t) for f, t in _numeric_fields(view.contraction_options)]
    return targets


TARGETS = _targets()


def _invalid(f: dataclasses.Field, typ: type):
    """Values no such option accepts: past its bounds, non-finite, beyond 64 bits, or not a number at all."""
    m = f.metadata
    bad = [st.sampled_from(["abc", "", "1e", "[1]"])]
    if typ is float:
        bad.append(st.sampled_from(["nan", "inf", "-inf"]))
    else:
        bad.append(st.sampled_from(["1.5", str(2**70), str(-(2**70))]))
    if "min" in m:
        bad.append(st.integers(1, 10**6).map(lambda d: m["min"] - d))
    if "above" in m:
        bad.append(st.integers(0, 10**6).map(lambda d: m["above"] - d))
    if "max" in m:
        bad.append(st.integers(1, 10**6).map(lambda d: m["max"] + d))
    if "below" in m:
        bad.append(st.integers(0, 10**6).map(lambda d: m["below"] + d))
    return st.one_of(bad)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ckpt")
    res = runner.invoke(app, ["train", "pign", "--dataset", "csbm", "--csbm-nodes", "200", "--hidden", "8", "--epochs", "1",
                              "--out", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    return out / "ckpt.pt"


def test_every_numeric_option_is_covered():
    names = {(tuple(c), f.name) for c, f, _ in TARGETS}
    assert (("train", "pign"), "dropout") in names and len(TARGETS) > 60


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_bad_values_are_one_line_and_exit_2(ckpt, data):
    command, f, typ = data.draw(st.sampled_from(TARGETS))
    value = data.draw(_invalid(f, typ))
    flag = "--" + f.name.replace("_", "-")
    args = [str(ckpt) if a == "{ckpt}" else a for a in command] + [flag, str(value), "--device", "cpu"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, (args, res.output)
    assert res.exception is None or isinstance(res.exception, SystemExit), (args, res.exception)
    assert "Traceback" not in res.output
    parses = isinstance(value, int) or (typ is float and str(value) in ("nan", "inf", "-inf")) or str(value).lstrip("-").isdigit()
    if parses and not (typ is int and str(value) == "1.5"):
        assert len(res.output.strip().splitlines()) == 1 and f.name in res.output, (args, res.output)
