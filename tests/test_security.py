"""Nothing a data folder or a checkpoint holds runs as code (issue 15, item 1).

A crafted ``ind.cora.x`` (a pickle whose loading calls ``exec``) sits in an otherwise real Planetoid
folder. Through every path that reads data (``train --data-root``, ``iterate --data-root``, a
checkpoint whose data config names the folder, a preset's ``data_root``), the marker file it would
write never appears."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fixpt.cli import app
from fixpt.data.safe_pickle import check_pickle
from fixpt.errors import FixptError

runner = CliRunner()
REAL = Path(os.environ.get("FIXPT_DATA", "")) / "planetoid" / "Cora" / "raw"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="needs FIXPT_DATA with planetoid/Cora/raw")


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


@pytest.fixture()
def crafted(tmp_path, monkeypatch):
    """A Planetoid root whose ind.cora.x runs code when unpickled; a private cache, so nothing is reused."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    raw = tmp_path / "evil" / "planetoid" / "Cora" / "raw"
    shutil.copytree(REAL, raw)
    marker = tmp_path / "marker"
    (raw / "ind.cora.x").write_bytes(pickle.dumps(_Exploit(marker), protocol=2))
    return tmp_path / "evil", marker


def one_line_error(res, *words):
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1, res.output
    for w in words:
        assert w in res.output, res.output


def test_the_unpickler_refuses_code_and_reads_real_files(crafted):
    root, marker = crafted
    with pytest.raises(FixptError, match=r"ind\.cora\.x asks to run the Python object builtins\.exec"):
        check_pickle(root / "planetoid" / "Cora" / "raw" / "ind.cora.x")
    for f in REAL.glob("ind.cora.*"):
        if not f.name.endswith("test.index"):
            check_pickle(f)  # the real files hold only arrays, sparse matrices and lists
    assert not marker.exists()


def test_train_with_a_crafted_data_root(crafted, tmp_path):
    root, marker = crafted
    res = runner.invoke(app, ["train", "gnn", "--dataset", "cora", "--data-root", str(root), "--epochs", "1",
                              "--out", str(tmp_path / "run"), "--device", "cpu"])
    one_line_error(res, "ind.cora.x", "builtins.exec")
    assert not marker.exists()


def test_a_checkpoint_never_chooses_the_data_root(crafted, tmp_path):
    root, marker = crafted
    res = runner.invoke(app, ["train", "pign", "--dataset", "cora", "--epochs", "2", "--hidden", "8", "--out", str(tmp_path / "run"),
                              "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    ckpt = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=True)
    ckpt["data"]["data_root"] = str(root)  # a checkpoint pointing at the crafted folder
    torch.save(ckpt, tmp_path / "evil.pt")
    res = runner.invoke(app, ["iterate", str(tmp_path / "evil.pt"), "--max-iter", "2", "--device", "cpu", "--json"])
    assert res.exit_code in (0, 1) and res.stdout, res.output  # ran (1: not converged in 2 iterations); read from $FIXPT_DATA, the user's root, not the checkpoint's
    assert json.loads(res.stdout)["iterations"][0]["accuracy"] is not None and not marker.exists()
    res = runner.invoke(app, ["check-contraction", str(tmp_path / "evil.pt"), "--data-root", str(root), "--device", "cpu"])
    one_line_error(res, "builtins.exec")  # the user's own --data-root is read, safely
    assert not marker.exists()


def test_a_presets_data_root(crafted, tmp_path):
    root, marker = crafted
    preset = tmp_path / "p.yaml"
    preset.write_text(f"model: gnn\nbase: {{dataset: cora, data_root: {root}, epochs: 1}}\n")
    res = runner.invoke(app, ["sweep", str(preset), "--out", str(tmp_path / "sw"), "--device", "cpu", "--json"])
    assert res.exit_code == 1 and json.loads(res.stdout)["failed"] == 1  # the run fails, recorded in its error.json
    (error,) = (tmp_path / "sw" / "runs").glob("*/error.json")
    assert "builtins.exec" in json.loads(error.read_text())["message"] and not marker.exists()
