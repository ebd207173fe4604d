"""``autorun demo``: a whole orchestration on a scratch repository.

A scratch git repo with a small sample project and a 6-stage plan (a diamond
and a chain), run on a private tmux server with the built-in stand-in agent
(:mod:`autorun_py.standin`), which makes a real commit per stage and calls the
merge step as the real pipeline does. Nothing touches the user's ~/.autorun,
~/.claude or tmux server: the demo's state (``autorun-home/``) and the stand-in's
transcripts (``claude-config/``, its ``CLAUDE_CONFIG_DIR``) live inside its
scratch directory, which is kept, so the commands :func:`after_commands` prints
work afterwards. The demo never changes its own process's environment: the
engine commands it runs (``autorun orchestrate``, ``autorun status``) are
processes started with the demo's environment (:func:`demo_env`), and the stage
sessions inherit it from them.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from autorun_py.errors import AutorunError
from autorun_py.git import run_git

SAMPLE_PLAN = """\
---
verify: python3 check.py
---
# Master plan: textstats

A tiny text-statistics library grows a parser, storage, an API, and docs.

## Stage 1: Core model

**Dependencies**: None

Define the `Document` and `Stats` types in `textstats/model.py`.
Estimate: 1h

## Stage 2: Parser

**Dependencies**: Stage 1

Split text into words and sentences on top of the core model.
Estimate: 2h

## Stage 3: Storage

**Dependencies**: Stage 1

Persist documents and their statistics as JSON files.
Estimate: 2h

## Stage 4: API

**Dependencies**: Stage 2, Stage 3

Expose `analyse(path)` that parses, stores and returns statistics.
Estimate: 1h

## Stage 5: Docs outline

**Dependencies**: None

Outline the user guide.
Estimate: 1h

## Stage 6: Docs examples

**Dependencies**: Stage 5

Write worked examples for the guide.
Estimate: 1h
"""

SAMPLE_FILES = {
    "README.md": "# textstats\n\nA tiny text-statistics library (autorun demo project).\n",
    "textstats/__init__.py": '"""textstats: count words and sentences."""\n',
    ".gitignore": ".env\n",
    # the merge gate's check (the plan's `verify:`): every module of the package imports
    "check.py": (
        '"""The sample project\'s check: every module of textstats imports."""\n'
        "import importlib\nimport pkgutil\n\nimport textstats\n\n"
        "for m in pkgutil.iter_modules(textstats.__path__):\n"
        '    importlib.import_module("textstats." + m.name)\n'
        'print("textstats: every module imports")\n'
    ),
}

# What the stand-in agent writes per stage (AUTORUN_STANDIN_TREE); the other stages
# write a note under stages/. Stage 4 first imports a name the parser does not
# have: the merge gate sends it back, and it fixes the import and merges again.
_PARSER = (
    '"""Split text into words and sentences."""\n\nimport re\n\n\n'
    'def words(text):\n    return re.findall(r"[\\w\']+", text)\n\n\n'
    "def sentences(text):\n"
    '    return [s.strip() for s in re.split(r"[.!?]+", text) if s.strip()]\n'
)
_API = (
    '"""analyse(path): parse a file and return its statistics."""\n\n'
    "from pathlib import Path\n\n"
    "from textstats.parser import sentences, {name}\n\n\n"
    "def analyse(path):\n"
    '    text = Path(path).read_text(encoding="utf-8")\n'
    '    return {{"words": len({name}(text)), "sentences": len(sentences(text))}}\n'
)
STANDIN_TREE = {
    "stage-1/textstats/model.py": (
        '"""The core types."""\n\nfrom dataclasses import dataclass\n\n\n'
        "@dataclass\nclass Document:\n    text: str\n\n\n"
        "@dataclass\nclass Stats:\n    words: int\n    sentences: int\n"
    ),
    "stage-2/textstats/parser.py": _PARSER,
    "stage-3/textstats/storage.py": (
        '"""Documents and their statistics as JSON files."""\n\nimport json\n\n\n'
        "def save(path, stats):\n"
        '    with open(path, "w", encoding="utf-8") as fh:\n'
        "        json.dump(stats, fh)\n"
    ),
    "stage-4/textstats/api.py": _API.format(name="split_words"),
    "stage-4-fix/textstats/api.py": _API.format(name="words"),
}


@dataclass
class DemoResult:
    """How `autorun demo` went: where it ran and what it found."""
    ok: bool
    root: Path
    repo: Path
    home: Path
    orch_dir: Optional[Path]
    seconds: float
    summary: str


def make_repo(root: Path) -> Path:
    repo = root / "textstats"
    repo.mkdir(parents=True)
    for rel, text in SAMPLE_FILES.items():
        p = repo / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    (repo / "master_plan.md").write_text(SAMPLE_PLAN, encoding="utf-8")
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.name", "autorun demo"],
        ["config", "user.email", "demo@autorun.invalid"],
        ["config", "commit.gpgsign", "false"],
        ["add", "-A"],
        ["commit", "-q", "-m", "textstats: initial project and master plan"],
    ):
        run_git(args, repo)
    return repo


def _write_marker(root: Path, home: Path) -> None:
    """Say what this demo creates in ``root`` (only names not there before), so that
    ``autorun clean`` removes exactly that (:func:`autorun_py.worktrees.remove_demo_scratch`)."""
    import json

    from autorun_py.worktrees import DEMO_MARKER

    marker = root / DEMO_MARKER
    if marker.exists():
        return  # a second demo in the same directory: the first one's record stands
    there = set(os.listdir(root))
    names = ["textstats", home.name, "claude-config", "standin.log", "standin-tree"]
    data = {
        "root": os.path.realpath(root),
        "home": home.name,
        "created": [n for n in names if n not in there],
    }
    marker.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _without_attach(summary: dict[str, Any]) -> dict[str, Any]:
    """The demo's tmux server ends with it: its view shows no attach commands that
    would be false a moment later (the demo prints only commands that work after)."""
    for row in summary.get("stages", []):
        if isinstance(row, dict):
            row["attach"] = None
    return summary


def run_demo(
    *,
    root: Optional[Path] = None,
    timeout: float = 60.0,
    delay: str = "0.5-2.5",
    max_parallel: Optional[int] = None,
    show: Callable[[str], None] = lambda s: None,
    keep_tmux: bool = False,
) -> DemoResult:
    from autorun_py.view import render_status

    t0 = time.monotonic()
    root = (root or Path(tempfile.mkdtemp(prefix="autorun-demo-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    home = root / "autorun-home"
    _write_marker(root, home)
    socket = f"autorun-demo-{os.getpid()}"
    env = demo_env(root, home, socket, delay)
    from autorun_py.state import StatusStore
    from autorun_py.summary import launch_summary
    from autorun_py.tmux import Tmux

    tmux = Tmux(socket)
    orch_dir: Optional[Path] = None
    try:
        repo = make_repo(root)
        for rel, text in STANDIN_TREE.items():
            p = root / "standin-tree" / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
        argv = ["orchestrate", str(repo / "master_plan.md"), "--no-monitor", "--json"]
        if max_parallel is not None:
            argv += ["--max-parallel", str(max_parallel)]
        outcome = _engine(argv, repo, env)
        orch_dir = Path(outcome["orch_dir"])
        # The launch summary without its tmux and monitor hints: the demo's tmux
        # server ends with it and it runs no monitor.
        show(
            launch_summary(
                StatusStore(orch_dir).read(),
                list(outcome.get("launched") or []),
                cap_reason=outcome.get("max_parallel_reason"),
                hints=False,
            )
        )
        deadline = t0 + timeout
        summary = _engine(["status", str(orch_dir), "--json"], repo, env)
        while time.monotonic() < deadline:
            summary = _without_attach(_engine(["status", str(orch_dir), "--json"], repo, env))
            show("\x00" + render_status(summary))
            if summary["finished"]:
                break
            time.sleep(0.5)
        ok = bool(summary["finished"]) and summary["status"] == "completed"
        return DemoResult(
            ok=ok,
            root=root,
            repo=repo,
            home=home,
            orch_dir=orch_dir,
            seconds=time.monotonic() - t0,
            summary=render_status(summary),
        )
    finally:
        if not keep_tmux:
            tmux.kill_server()


def demo_env(root: Path, home: Path, socket: str, delay: str) -> dict[str, str]:
    """The environment of the processes the demo starts (this process's is left alone):
    its own home, tmux server and stand-in agent, its transcripts in its own config dir."""
    from autorun_py import proc

    env = proc.child_env(drop=("AUTORUN_PLUGIN_DIR",))
    env.update(
        {
            "AUTORUN_HOME": str(home),
            "AUTORUN_TMUX_SOCKET": socket,
            "AUTORUN_CLAUDE": sys.executable,
            "AUTORUN_AGENT_ARGS": shlex.join(["-m", "autorun_py.standin"]),
            "AUTORUN_STANDIN_DELAY": delay,
            "AUTORUN_STANDIN_LOG": str(root / "standin.log"),
            "AUTORUN_STANDIN_TREE": str(root / "standin-tree"),
            "AUTORUN_LAUNCH_STAGGER": "0",  # the stand-in shares no service limit
            # The stand-in writes transcripts as Claude Code does: into the demo's
            # own config dir (the sessions inherit it), never the user's ~/.claude.
            "CLAUDE_CONFIG_DIR": str(root / "claude-config"),
        }
    )
    return env


def _engine(args: list[str], cwd: Path, env: dict[str, str]) -> Any:
    """``autorun ARGS --json`` in the demo's environment; its JSON result."""
    import json

    from autorun_py import proc

    here = Path(__file__).resolve().parent.parent
    run_env = dict(
        env, PYTHONPATH=os.pathsep.join(filter(None, [str(here), env.get("PYTHONPATH")]))
    )
    result = proc.run([sys.executable, "-m", "autorun_py", *args], cwd=cwd, env=run_env)
    if result.returncode != 0:
        raise AutorunError(
            f"the demo's `autorun {args[0]}` failed: "
            + (result.stderr.strip() or f"exit {result.returncode}")
        )
    return json.loads(result.stdout)


def after_commands(result: DemoResult, environ: Mapping[str, str]) -> list[str]:
    """Commands that work after the demo, from any directory, as shell lines
    (``environ``: this process's environment, see :func:`install.cli_words`)."""
    from autorun_py.install import cli_words

    cli = cli_words(environ)
    env = f"AUTORUN_HOME={shlex.quote(str(result.home))}"
    lines = []
    if result.orch_dir is not None:
        run = result.orch_dir.name
        for args in (["status", run], ["events", run, "--notable"], ["report", run]):
            lines.append(f"{env} {shlex.join([*cli, *args])}")
    lines.append(shlex.join(["git", "-C", str(result.repo), "log", "--oneline", "--graph"]))
    if result.orch_dir is not None:  # last: it removes what the others look at
        clean = [*cli, "clean", result.orch_dir.name, "--purge"]
        lines.append(f"{env} {shlex.join(clean)}")
    return lines


def gate_lines(result: DemoResult) -> list[str]:
    """What the merge gate did in the demo, from its events."""
    from autorun_py.events import read_events

    if result.orch_dir is None:
        return []
    events = read_events(result.orch_dir)
    passed = [e for e in events if e.get("type") == "verify_passed"]
    failed = [e for e in events if e.get("type") == "verify_failed"]
    lines = [
        f"Merge gate (`verify:` in the plan): {len(passed)} candidate(s) passed, "
        f"{len(failed)} sent back"
    ]
    for e in failed:
        lines.append(
            f"  stage {e.get('stage')} was sent back (exit status {e.get('exit_status')}), "
            f"fixed its branch and merged again; log: {e.get('log')}"
        )
    return lines


def check_demo(result: DemoResult) -> None:
    if not result.ok:
        raise AutorunError(
            f"the demo run did not complete within its time; state: {result.orch_dir}, "
            f"logs: {result.home / 'logs'}"
        )
