"""The package's import graph: every module imports on its own, and the imports
form no cycle (a cycle makes import order matter and hides which module owns
what), counting the imports inside functions too: those are deferred on purpose
(the CLI's start-up cost), never to hide a cycle. A package's ``__init__``
importing its submodules counts; a submodule's import of its own package does
not (that is how Python loads it). The modules that keep a run going (the pane
classifier, the supervisor, recovery, the monitor loop, resume and the hooks that
call them) are also in a fixed order among themselves."""

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


def _is_type_checking(node: ast.stmt) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _all_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every import the module can run, at module level or inside a function
    (``if TYPE_CHECKING:`` blocks are never run and are skipped)."""
    found: set[str] = set()
    todo: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in known:
                found.add(node.module)
            found.update(
                f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known
            )
        for child in ast.iter_child_nodes(node):
            if not (isinstance(child, ast.If) and _is_type_checking(child)):
                todo.append(child)
    found.discard(name)
    return {m for m in found if not name.startswith(m + ".")}


def _cycle_through(graph: dict[str, set[str]], start: str) -> list[str]:
    """A shortest import path from ``start`` back to itself, or [] when there is none."""
    came: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt: list[str] = []
        for mod in frontier:
            for dep in sorted(graph.get(mod, ())):
                if dep == start:
                    path = [mod]
                    while path[-1] != start:
                        path.append(came[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if dep not in came:
                    came[dep] = mod
                    nxt.append(dep)
        frontier = nxt
    return []


# The modules that keep a run going: no import cycle passes through any of them,
# whether the imports are at module level or inside functions.
RUN_KEEPERS = (
    "autorun_py.panes",
    "autorun_py.supervisor",
    "autorun_py.stalls",
    "autorun_py.recovery",
    "autorun_py.monitor",
    "autorun_py.resume",
    "autorun_py.hooks",
    "autorun_py.cli.monitor_env",
)


def test_the_monitor_modules_are_in_no_cycle_even_counting_function_level_imports() -> None:
    mods = _modules()
    graph = {m: _all_imports(m, p, set(mods)) for m, p in mods.items()}
    assert set(RUN_KEEPERS) <= set(mods)
    cycles = [c for c in (_cycle_through(graph, m) for m in RUN_KEEPERS) if c]
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
    # and among themselves, in one order: the classifier and the supervisor below
    # recovery, recovery below the loop and resume
    among = {m: graph[m] & set(RUN_KEEPERS) for m in RUN_KEEPERS}
    order = list(TopologicalSorter(among).static_order())
    assert order.index("autorun_py.panes") < order.index("autorun_py.recovery")
    assert order.index("autorun_py.supervisor") < order.index("autorun_py.recovery")
    assert order.index("autorun_py.recovery") < order.index("autorun_py.monitor")
    assert order.index("autorun_py.recovery") < order.index("autorun_py.resume")
    assert order.index("autorun_py.stalls") < order.index("autorun_py.monitor")
    assert not graph["autorun_py.panes"], "the pane classifier imports nothing of autorun"


def test_the_checker_finds_a_function_level_cycle(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.py", tmp_path / "b.py", tmp_path / "c.py"
    a.write_text("def f():\n    from autorun_py.b import x\n")
    b.write_text("class K:\n    def g(self):\n        import autorun_py.a\n")
    c.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from autorun_py.a import K\n"
    )
    known = {"autorun_py.a", "autorun_py.b", "autorun_py.c"}
    graph = {m: _all_imports(m, tmp_path / f"{m[-1]}.py", known) for m in known}
    assert _cycle_through(graph, "autorun_py.a") == ["autorun_py.a", "autorun_py.b", "autorun_py.a"]
    assert graph["autorun_py.c"] == set()  # a TYPE_CHECKING import is never run
    assert _cycle_through(graph, "autorun_py.c") == []


def test_the_package_has_no_import_cycle_even_counting_function_level_imports() -> None:
    mods = _modules()
    graph = {m: _all_imports(m, p, set(mods)) for m, p in mods.items()}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        # the shortest cycle through the module graphlib named, to read
        cycle = _cycle_through(graph, exc.args[1][0]) or exc.args[1]
        raise AssertionError(f"import cycle: {' -> '.join(cycle)}") from None
    # and the layers the docs name (docs/architecture.md): the config and the
    # launchers' names at the bottom, the launchers below launch, the gate below merge
    order = list(TopologicalSorter(graph).static_order())
    below = [
        ("autorun_py.launchers.spec", "autorun_py.config"),
        ("autorun_py.config", "autorun_py.launchers"),
        ("autorun_py.launchers", "autorun_py.launch"),
        ("autorun_py.gate", "autorun_py.merge"),
        ("autorun_py.merge_queue", "autorun_py.merge"),
        ("autorun_py.launch", "autorun_py.merge"),
    ]
    for low, high in below:
        assert order.index(low) < order.index(high), f"{low} should be below {high}"
    reach = _reachable(graph, "autorun_py.launchers")
    assert not reach & {"autorun_py.launch", "autorun_py.merge"}, sorted(reach)
    assert not _reachable(graph, "autorun_py.gate") & {"autorun_py.merge", "autorun_py.launch"}


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for dep in graph.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


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


def test_every_dataclass_has_a_docstring() -> None:
    """A dataclass without one gets a generated ``__doc__`` from ``inspect.signature``
    when its module is imported (~0.4 ms each, in every process that imports it:
    issue 16); with one, it also says what it is for."""
    missing = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            decorated = any(
                "dataclass" in ast.unparse(d.func if isinstance(d, ast.Call) else d)
                for d in node.decorator_list
            )
            if decorated and ast.get_docstring(node) is None:
                missing.append(f"{name}.{node.name} (line {node.lineno})")
    assert missing == [], missing
