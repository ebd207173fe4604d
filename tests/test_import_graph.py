"""The package's import graph: every module imports on its own, and the
module-level imports form no cycle (a cycle makes import order matter and hides
which module owns what). Imports inside functions are deferred on purpose (the
CLI's start-up cost) and are not part of this graph."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "autorun_py"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _module_level_imports(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:  # module level only; `if TYPE_CHECKING:` blocks are skipped
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in known:
                found.add(node.module)
            found.update(
                f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known
            )
    found.discard(name)
    # A submodule's import of its own package's __init__ is how Python loads it anyway.
    return {m for m in found if not name.startswith(m + ".")}


def test_module_level_imports_have_no_cycle() -> None:
    mods = _modules()
    graph = {m: _module_level_imports(m, p, set(mods)) for m, p in mods.items()}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_the_checker_finds_a_cycle(tmp_path: Path) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from autorun_py.b import x\n")
    b.write_text("import autorun_py.a\n")
    known = {"autorun_py.a", "autorun_py.b"}
    graph = {
        "autorun_py.a": _module_level_imports("autorun_py.a", a, known),
        "autorun_py.b": _module_level_imports("autorun_py.b", b, known),
    }
    try:
        TopologicalSorter(graph).prepare()
    except CycleError:
        return
    raise AssertionError("a two-module cycle was not found")


def test_every_module_imports_on_its_own() -> None:
    """Each module in a fresh interpreter (no earlier import hides a missing one)."""
    names = sorted(m for m in _modules() if m != "autorun_py.__main__")
    script = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    for loaded in [m for m in sys.modules if m.startswith('autorun_py')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, *names],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert importlib.import_module("autorun_py.plan").load_plan
