"""What an installed fixpt needs beyond the code: the presets shipped inside the package and found by name,
and a command line that starts without importing the heavy libraries."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fixpt.errors import FixptError
from fixpt.presets import FOLDER, builtin_presets, find_preset
from fixpt.sweep import load_preset

REPO = Path(__file__).resolve().parents[1]


def test_the_presets_ship_inside_the_package():
    assert FOLDER.parent == REPO / "fixpt"  # package data, installed with the code
    assert {"table5", "table1", "fig2", "recycle"} <= set(builtin_presets())
    assert not (REPO / "presets").exists()  # one copy only


def test_a_preset_is_found_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no presets/ folder here
    assert find_preset("table5") == FOLDER / "table5.yaml"
    assert find_preset("table5.yaml") == FOLDER / "table5.yaml"
    mine = tmp_path / "table5.yaml"
    mine.write_text("model: gnn\n")
    assert find_preset("table5.yaml") == Path("table5.yaml")  # an existing file wins over the built-in name
    assert find_preset(mine) == mine
    with pytest.raises(FixptError, match="built-in presets .*table5"):
        find_preset("tabel5")
    with pytest.raises(FixptError, match="neither a file"):
        find_preset("presets/table5.yaml")  # a path with a folder is only ever that file


def test_sweep_takes_a_builtin_preset_by_name(tmp_path):
    """Through the program itself, from a folder with no presets in it."""
    res = subprocess.run([sys.executable, "-m", "fixpt", "sweep", "table5", "--dry-run", "--json", "--out", str(tmp_path / "s")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    runs = json.loads(res.stdout)["runs"]
    assert [r["id"] for r in runs] == [r.id for r in load_preset(FOLDER / "table5.yaml").runs]
