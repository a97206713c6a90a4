"""The package's shape, checked: no import cycle, no family named in the generic layers, every module
importable on its own, no function over 60 lines outside the kernels."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "fixpt"
MODULES = {".".join(p.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__"): p for p in sorted(ROOT.rglob("*.py"))}
FAMILY_WORDS = ("ddpm", "diffusion", "recycle", "alphafold", "pign", "gat", "gnn", "node-classification")
GENERIC = [p for name, p in MODULES.items() if name.startswith(("fixpt.cli", "fixpt.report")) or name in ("fixpt.train", "fixpt.sweep")]


def _resolve(module: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The fixpt modules an import statement in ``module`` loads (the most specific existing name)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = (package + "." + node.module if node.module else package) if node.level else node.module
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    return [n for n in names if n in MODULES]


def import_graph() -> dict[str, set[str]]:
    """Every import of every module, at the top or inside a function, as edges between fixpt modules."""
    graph = {}
    for name, path in MODULES.items():
        nodes = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, (ast.Import, ast.ImportFrom))]
        graph[name] = {target for n in nodes for target in _resolve(name, n)} - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_has_no_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_module_imports_alone():
    """Each module imported first, with no fixpt module loaded before it (so nothing hides a cycle): one
    interpreter, fixpt's modules dropped from ``sys.modules`` before each (torch and PyG stay loaded)."""
    code = ("import importlib, sys\n"
            "for m in sys.argv[1:]:\n"
            "    for k in [k for k in sys.modules if k == 'fixpt' or k.startswith('fixpt.')]:\n"
            "        del sys.modules[k]\n"
            "    try:\n"
            "        importlib.import_module(m)\n"
            "    except Exception as e:\n"
            "        print(m, type(e).__name__, e)\n")
    names = [m for m in MODULES if m != "fixpt.__main__"]  # the program, not a module to import
    res = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and res.stdout == "", res.stdout + res.stderr[-2000:]


def _code_without_strings(path: Path) -> str:
    """The module's source with docstrings, string literals (help texts, messages) and comments blanked."""
    tree = ast.parse(path.read_text())
    lines = path.read_text().splitlines()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for i in range(node.lineno - 1, node.end_lineno):
                lines[i] = " " * len(lines[i]) if node.lineno != node.end_lineno else (
                    lines[i][:node.col_offset] + " " * (node.end_col_offset - node.col_offset) + lines[i][node.end_col_offset:])
    return "\n".join(re.sub(r"#.*", "", line) for line in lines)


@pytest.mark.parametrize("path", GENERIC, ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_generic_layers_name_no_family_and_probe_nothing(path):
    code = _code_without_strings(path)
    named = [w for w in FAMILY_WORDS if re.search(rf"\b{re.escape(w)}\b", code, re.IGNORECASE)]
    assert not named, f"{path.name} names the families {named}"
    assert not re.search(r"\b(hasattr|getattr)\(", code), f"{path.name} probes objects with hasattr/getattr"


def test_no_function_over_60_lines_outside_the_kernels():
    long = []
    for name, path in MODULES.items():
        if name.startswith("fixpt.models.kernels"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                long.append(f"{name}.{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []
