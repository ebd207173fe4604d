"""Environment-backed options are read at the CLI edge (issue 12): no library module
reads ``os.environ`` (or ``os.getenv``); library functions take the values as
parameters (``environ: Mapping[str, str]`` where a function needs the caller's
environment, e.g. ``stage.find_context``, ``chain.chain``, ``install.cli_words``),
and a child's environment is built by the process wrapper (``proc.child_env``,
``proc.inherited``). The allow-list below is the whole set of places that may read
the process environment, each with its reason."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Optional

PACKAGE = Path(__file__).resolve().parents[1] / "autorun_py"

# Modules that may read the process environment anywhere.
EDGE = {
    "autorun_py.cli": "the CLI edge (click commands; click's envvar=)",
    "autorun_py.fastcli": "the CLI edge: the lean path of the bookkeeping calls",
    "autorun_py.__main__": "the entry point (`python -m autorun_py`)",
    "autorun_py.proc": "the process wrapper: builds children's environments",
    "autorun_py.git": "the git wrapper: strips the variables that redirect git",
    "autorun_py.tmux": "the tmux wrapper: its socket, the session and pane it runs in",
}
# Modules that may read it only inside these functions.
IN_FUNCTIONS = {
    "autorun_py.paths": {"from_env", "claude_config_dir"},  # AUTORUN_HOME, CLAUDE_CONFIG_DIR
    "autorun_py.hooks": {"main"},  # the hook entry point: hands `environ` on
    "autorun_py.standin": {"main"},  # the stand-in agent: its Steering, read once
}
# Not moved yet, each with what moving it takes. A module that stops reading the
# environment must leave this list (the test says so).
PENDING: dict[str, str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def env_reads(source: str) -> list[tuple[int, Optional[str]]]:
    """(line, enclosing top-level function or method name) of every use of
    ``os.environ``, ``os.environb`` or ``os.getenv`` (``import os as x`` and
    ``from os import environ`` included)."""
    tree = ast.parse(source)
    os_names: set[str] = set()
    env_names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            os_names.update(a.asname or a.name for a in node.names if a.name == "os")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            env_names.update(
                a.asname or a.name
                for a in node.names
                if a.name in ("environ", "environb", "getenv")
            )
    found: list[tuple[int, Optional[str]]] = []

    def visit(node: ast.AST, func: Optional[str]) -> None:
        for child in ast.iter_child_nodes(node):
            name = func
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = child.name
            if (
                isinstance(child, ast.Attribute)
                and child.attr in ("environ", "environb", "getenv")
                and isinstance(child.value, ast.Name)
                and child.value.id in os_names
            ) or (
                isinstance(child, ast.Name)
                and child.id in env_names
                and isinstance(child.ctx, ast.Load)
            ):
                found.append((child.lineno, name))
            visit(child, name)

    visit(tree, None)
    return found


def within(name: str, modules: dict[str, str]) -> Optional[str]:
    """The entry of ``modules`` that is ``name`` or a package holding it."""
    return next((m for m in modules if name == m or name.startswith(m + ".")), None)


def test_the_finder_finds_every_spelling() -> None:
    src = (
        "import os\nimport os as o\nfrom os import environ, getenv as ge\n"
        "A = os.environ.get('X')\n"
        "def f():\n    return o.getenv('Y')\n"
        "class C:\n    def m(self):\n        return environ['Z'], ge('W')\n"
        "def main():\n    os.environ['K'] = '1'\n"
        "B = os.path.join('a', 'b')\n"
    )
    assert env_reads(src) == [(4, None), (6, "f"), (9, "m"), (9, "m"), (11, "main")]


def test_no_library_module_reads_the_environment() -> None:
    bad: list[str] = []
    reading: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        reads = env_reads(path.read_text(encoding="utf-8"))
        if reads:
            reading.add(name)
        if within(name, EDGE):
            continue
        pending = within(name, PENDING)
        if pending:
            if reads:
                reading.add(pending)
            continue
        allowed = IN_FUNCTIONS.get(name, set())
        for line, func in reads:
            if func not in allowed:
                where = f"in {func}()" if func else "at module level"
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({where})")
    assert not bad, (
        "library modules read the process environment (read it at the CLI edge and pass "
        "the value in; a child's environment comes from proc.child_env):\n  " + "\n  ".join(bad)
    )
    done = sorted(set(PENDING) - reading)
    assert not done, f"no longer read the environment, so leave PENDING: {done}"
    unused = sorted(set(IN_FUNCTIONS) - reading)
    assert not unused, f"IN_FUNCTIONS names modules that read nothing: {unused}"


ROOT = PACKAGE.parent


def test_every_documented_autorun_variable_is_still_read() -> None:
    """Moving reads to the edge must not drop one: every ``AUTORUN_*`` name the
    README, docs/, the commands, the hooks or the scripts mention is still spelled in
    the engine, the hooks or the scripts."""
    import re

    docs = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "commands").rglob("*.md")]
    shipped = [p for d in ("hooks", "scripts") for p in (ROOT / d).rglob("*") if p.is_file()]
    named: set[str] = set()
    for path in [*docs, *shipped]:
        named.update(
            re.findall(r"\bAUTORUN_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(errors="replace"))
        )
    code = "\n".join(p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py"))
    code += "\n".join(p.read_text(errors="replace") for p in shipped)
    assert named, "no AUTORUN_* variable found in the docs"
    missing = sorted(v for v in named if not re.search(rf"\b{v}\b", code))
    assert not missing, f"documented but read nowhere: {missing}"
