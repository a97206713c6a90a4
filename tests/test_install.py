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


HEAVY = ("torch", "torch_geometric", "diffusers", "timm", "gemmi", "matplotlib", "torchvision", "sklearn", "scipy")


@pytest.mark.parametrize("argv", [["--help"], ["--version"], []])
def test_the_program_starts_without_the_heavy_libraries(argv):
    """``fixpt --help`` (which lists every family's commands) and ``--version`` run the real program in a fresh
    interpreter; afterwards none of the heavy libraries is in ``sys.modules`` (torch alone takes 1-2 s to import)."""
    code = ("import sys\n"
            f"sys.argv = ['fixpt', *{argv!r}]\n"
            "from fixpt.cli import main\n"
            "try:\n"
            "    main()\n"
            "except SystemExit as e:\n"
            "    assert e.code in (0, None, 2), e.code\n"  # no arguments: the help, exit code 2 (click's usage rule)
            "print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1:])))\n")
    res = subprocess.run([sys.executable, "-c", code, *HEAVY], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "LOADED []" in res.stdout, res.stdout[-500:]
    if argv == ["--help"]:
        for command in ("train", "iterate", "check-contraction", "sweep", "report", "data", "recycle"):
            assert f" {command} " in res.stdout  # the families' commands are listed without importing them


def test_the_deferred_commands_list_the_help_they_are_built_with():
    """The root lists train / iterate / check-contraction by a placeholder; the built command has the same help."""
    from fixpt.cli.root import DEFERRED

    for d in DEFERRED:
        assert d.build().help == d.placeholder().help == d.help
