"""A corrupt-state corpus: every corruption of a run's ``status.json`` x every
command that reads state, through the real CLI entry (``autorun_py.cli.main``,
in-process for speed; a few as real subprocesses).

For the broken run: one line on stderr naming the file, a non-zero exit, never a
traceback. For everything else (a healthy second run, ``list``, ``review list``,
``orchestrate`` of another plan): unaffected.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from autorun_py.state import dumps_readable
from tests.helpers import write_plan

Raw = dict[str, Any]


def _set(path: str, value: Any) -> Callable[[Raw], Any]:
    def change(raw: Raw) -> Raw:
        *parents, last = path.split(".")
        obj: Any = raw
        for p in parents:
            obj = obj[p]
        obj[last] = value
        return raw

    return change


def _drop(path: str) -> Callable[[Raw], Any]:
    def change(raw: Raw) -> Raw:
        *parents, last = path.split(".")
        obj: Any = raw
        for p in parents:
            obj = obj[p]
        del obj[last]
        return raw

    return change


def _deep(depth: int) -> Any:
    v: Any = 1
    for _ in range(depth):
        v = {"a": v}
    return v


# name -> (change of the raw dict, or a function giving the file's bytes)
CORRUPTIONS: dict[str, Callable[[Raw], Any]] = {
    "schema_version string": _set("schema_version", "abc"),
    "schema_version negative": _set("schema_version", -1),
    "schema_version newer": _set("schema_version", 99),
    "schema_version float": _set("schema_version", 1.5),
    "stage removed that another depends on": _drop("stages.1"),
    "depends_on a string": _set("stages.2.depends_on", "1"),
    "depends_on booleans": _set("stages.2.depends_on", [True]),
    "depends_on an object": _set("stages.2.depends_on", {"a": 1}),
    "depends_on itself": _set("stages.2.depends_on", [2]),
    "dependency cycle": _set("stages.1.depends_on", [3]),
    "deep nesting in a field": lambda raw: (
        json.dumps(_set("stages.1.merge_detail", "DEEP")(raw))
        .replace('"DEEP"', '{"a":' * 100000 + "1" + "}" * 100000)
        .encode()
    ),
    "moderate nesting in a field with a bad type": lambda raw: _set(
        "stages.1.counters", _deep(200)
    )(raw),
    "deep nesting of the file": lambda raw: b"[" * 200000 + b"]" * 200000,
    "truncated JSON": lambda raw: json.dumps(raw).encode()[: len(json.dumps(raw)) // 2],
    "empty file": lambda raw: b"",
    "a list instead of an object": lambda raw: [raw],
    "stages a list": _set("stages", [1, 2, 3]),
    "stages null": _set("stages", None),
    "a stage a string": _set("stages.2", "stage two"),
    "a stage key not a number": lambda raw: {**raw, "stages": {**raw["stages"], "x": {}}},
    "a stage key zero": lambda raw: {**raw, "stages": {**raw["stages"], "0": {}}},
    "huge float": lambda raw: json.dumps(raw).replace('"revision": ', '"revision": 1e999').encode(),
    "huge integer literal": lambda raw: (
        json.dumps(raw).replace('"revision": ', '"revision": ' + "9" * 5000).encode()
    ),
    "huge launch_attempts": _set("stages.1.launch_attempts", 2**80),
    "NaN revision": lambda raw: json.dumps({**raw, "revision": float("nan")}).encode(),
    "plan_name null": _set("plan_name", None),
    "project_root missing": _drop("project_root"),
    "base_branch empty": _set("base_branch", ""),
    "unknown stage status": _set("stages.1.status", "exploded"),
    "stage status a number": _set("stages.1.status", 5),
    "unknown run status": _set("status", "zombie"),
    "stage name a number": _set("stages.1.name", 123),
    "worktree a number": _set("stages.1.worktree", 42),
    "phases a list": _set("stages.1.phases", ["research"]),
    "a phase null": _set("stages.1.phases.research", None),
    "current_phase a string": _set("stages.1.phases.implement", {"current_phase": "x"}),
    "counters not numbers": _set("stages.1.counters", {"nudges": "many"}),
    "waves name a missing stage": _set("waves", [[1, 99]]),
    "waves a string": _set("waves", "all"),
    "max_parallel zero": _set("max_parallel", 0),
    "monitor a list": _set("monitor", [1]),
    "critical_path mixed": _set("critical_path", [1, "2"]),
    "estimate_hours text": _set("stages.1.estimate_hours", "3h"),
    "schedule unknown": _set("schedule", "random"),
    "merge_detail a string": _set("stages.1.merge_detail", "conflict"),
    "not UTF-8": lambda raw: b'{"plan_name": "caf\xe9"}',
    "a directory": lambda raw: "DIR",
    "a symlink to /dev/zero": lambda raw: "SYMLINK",
    "a FIFO": lambda raw: "FIFO",
}


def corrupt(orch: Path, name: str, *, readable: bool = False) -> None:
    """Write ``orch``'s status.json with corruption ``name``: as one line of JSON, or
    (``readable``) in autorun's own layout, one stage per line (the layout the
    fast reader takes, autorun_py/state/codec.py)."""
    status = orch / "status.json"
    raw = json.loads(status.read_text())
    out = CORRUPTIONS[name](raw)
    status.unlink()
    if out == "DIR":
        status.mkdir()
    elif out == "SYMLINK":
        os.symlink("/dev/zero", status)
    elif out == "FIFO":
        os.mkfifo(status)
    elif isinstance(out, bytes):
        status.write_bytes(out)
    elif readable:
        status.write_text(dumps_readable(out))
    else:
        status.write_text(json.dumps(out))


@dataclass
class World:
    home: Path
    repo: Path
    healthy: Path  # a second run of the same repository
    broken: Path
    pristine: bytes  # the broken run's status.json before corruption
    counter: list[int]


@pytest.fixture(scope="module")
def world_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("corpus")
    with pytest.MonkeyPatch.context() as mp:
        home = base / "home"
        home.mkdir()
        (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
        mp.setenv("HOME", str(home))
        mp.setenv("AUTORUN_HOME", str(home / ".autorun"))
        mp.setenv("GIT_AUTHOR_NAME", "t")
        mp.setenv("GIT_AUTHOR_EMAIL", "t@autorun.invalid")
        mp.setenv("GIT_COMMITTER_NAME", "t")
        mp.setenv("GIT_COMMITTER_EMAIL", "t@autorun.invalid")
        mp.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
        from autorun_py.plan import load_plan
        from autorun_py.rundir import create_orchestration

        repo = base / "project"
        repo.mkdir()
        subprocess.run(["git", "-C", str(repo), "init", "-q", "-b", "main"], check=True)
        (repo / "README.md").write_text("x\n")
        subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
        subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", "init"], check=True)
        three = [(1, "One", []), (2, "Two", [1]), (3, "Three", [2])]
        healthy = Path(
            create_orchestration(
                load_plan(write_plan(repo, three, name="healthy.md")), repo
            ).orch_dir
        )
        broken = Path(
            create_orchestration(
                load_plan(write_plan(repo, three, name="broken.md")), repo
            ).orch_dir
        )
        yield World(home, repo, healthy, broken, (broken / "status.json").read_bytes(), [0])


@pytest.fixture
def world(world_template: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    w = world_template
    monkeypatch.setenv("HOME", str(w.home))
    monkeypatch.setenv("AUTORUN_HOME", str(w.home / ".autorun"))
    monkeypatch.setenv("AUTORUN_NO_DESKTOP", "1")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.chdir(w.repo)
    yield w
    status = w.broken / "status.json"
    if status.is_dir() and not status.is_symlink():
        shutil.rmtree(status)
    elif os.path.lexists(status):
        status.unlink()
    status.write_bytes(w.pristine)


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The real entry point, in-process; anything but SystemExit is a traceback."""
    from autorun_py.cli import main

    code: Any = 0
    try:
        main(args)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def _ctx(w: World) -> str:
    return str(w.broken / "stages" / "stage-1-context.md")


# Commands about the broken run: one line naming it, non-zero.
TARGETED: dict[str, Callable[[World], list[str]]] = {
    "status": lambda w: ["status", str(w.broken)],
    "status --json": lambda w: ["status", w.broken.name, "--json"],
    "events": lambda w: ["events", str(w.broken)],
    "events --notable": lambda w: ["events", str(w.broken), "--notable"],
    "phase": lambda w: ["phase", str(w.broken), "1", "triage", "started"],
    "stage start": lambda w: ["stage", "start", _ctx(w)],
    "stage fail": lambda w: ["stage", "fail", str(w.broken), "1", "--reason", "x"],
    "retry": lambda w: ["retry", str(w.broken), "1"],
    "merge": lambda w: ["merge", str(w.broken), "1"],
    "launch-ready": lambda w: ["launch-ready", str(w.broken)],
    "monitor --once": lambda w: ["monitor", str(w.broken), "--once", "--gap", "0"],
    "resume": lambda w: ["resume", str(w.broken), "--no-monitor"],
    "report": lambda w: ["report", str(w.broken)],
}

# Commands across runs: must work, skipping the broken run (a warning at most).
ACROSS: dict[str, Callable[[World], list[str]]] = {
    "list": lambda w: ["list"],
    "list --json": lambda w: ["list", "--json"],
    "review list": lambda w: ["review", "list", "--all"],
    "status of the healthy run": lambda w: ["status", str(w.healthy), "--json"],
    "orchestrate another plan": lambda w: [
        "orchestrate",
        str(_another_plan(w)),
        "--no-launch",
        "--no-monitor",
    ],
}


def _another_plan(w: World) -> Path:
    w.counter[0] += 1
    return write_plan(w.repo, [(1, "Solo", [])], name=f"other-{w.counter[0]}.md")


def _status_file_named(err: str, w: World) -> bool:
    return str(w.broken / "status.json") in err or w.broken.name in err


@pytest.mark.parametrize("command", sorted(TARGETED))
@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_broken_run_is_one_line(
    corruption: str, command: str, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    corrupt(world.broken, corruption)
    code, out, err = run_main(TARGETED[command](world), capsys)
    assert code != 0, (out, err)
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("autorun: error: "), lines[0]
    assert _status_file_named(lines[0], world), lines[0]


# The commands of the corpus that read the run (every field checked) or change a
# stage (its fields checked when used), on files in autorun's own layout.
READABLE = ["status", "events", "phase", "stage fail", "launch-ready", "merge", "retry"]


@pytest.mark.parametrize("command", READABLE)
@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_broken_run_in_the_readable_layout_is_one_line(
    corruption: str,
    command: str,
    world: World,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from autorun_py.state import codec

    monkeypatch.setattr(codec, "FAST_MIN_CHARS", 0)  # the fast reader, small as the run is
    corrupt(world.broken, corruption, readable=True)
    before = (world.broken / "status.json").read_bytes() if corruption not in _SPECIAL else None
    code, out, err = run_main(TARGETED[command](world), capsys)
    assert code != 0, (out, err)
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("autorun: error: "), err
    assert _status_file_named(lines[0], world), lines[0]
    if before is not None:
        assert (world.broken / "status.json").read_bytes() == before


_SPECIAL = {"a directory", "a symlink to /dev/zero", "a FIFO"}


@pytest.mark.parametrize("command", sorted(ACROSS))
@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_other_runs_are_unaffected(
    corruption: str, command: str, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    corrupt(world.broken, corruption)
    before = (world.healthy / "status.json").read_bytes()
    code, out, err = run_main(ACROSS[command](world), capsys)
    assert code == 0, (out, err)
    assert "Traceback" not in out + err
    assert len(err.splitlines()) <= 1, err
    if command == "list --json":
        runs = {r["name"]: r for r in json.loads(out)}
        assert "error" not in runs[world.healthy.name]
        assert "error" in runs[world.broken.name]
    if command == "status of the healthy run":
        assert json.loads(out)["plan_name"] == "healthy"
    assert (world.healthy / "status.json").read_bytes() == before


SUBPROCESS_CASES = [
    ("schema_version string", ["status"]),
    ("stage removed that another depends on", ["merge", "1"]),
    ("deep nesting of the file", ["monitor", "--once", "--gap", "0"]),
    ("a FIFO", ["events"]),
    ("a list instead of an object", ["retry", "1"]),
    ("depends_on a string", ["phase", "1", "triage", "started"]),  # the lean path
    ("huge integer literal", ["stage", "fail"]),
]


@pytest.mark.parametrize("corruption,args", SUBPROCESS_CASES)
def test_a_broken_run_in_a_real_process(corruption: str, args: list[str], world: World) -> None:
    corrupt(world.broken, corruption)
    if args[:2] == ["stage", "fail"]:
        argv = [sys.executable, "-m", "autorun_py", "stage", "fail", str(world.broken), "1"]
        argv += ["--reason", "x"]
    else:
        argv = [sys.executable, "-m", "autorun_py", args[0], str(world.broken), *args[1:]]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=world.repo)
    assert res.returncode != 0
    assert "Traceback" not in res.stdout + res.stderr
    assert len(res.stderr.splitlines()) == 1, res.stderr
    assert str(world.broken / "status.json") in res.stderr
    listing = subprocess.run(
        [sys.executable, "-m", "autorun_py", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=world.repo,
    )
    assert listing.returncode == 0 and "Traceback" not in listing.stderr
    assert any(
        r["name"] == world.healthy.name and "error" not in r for r in json.loads(listing.stdout)
    )


def test_the_message_names_the_field(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    corrupt(world.broken, "depends_on a string")
    _, _, err = run_main(["status", str(world.broken)], capsys)
    assert err == (
        f"autorun: error: {world.broken / 'status.json'}: stages.2.depends_on: "
        "expected a list of stage numbers\n"
    )
    capsys.readouterr()
    corrupt_again = world.broken / "status.json"
    corrupt_again.unlink()
    corrupt_again.write_bytes(world.pristine)
    corrupt(world.broken, "stage removed that another depends on")
    _, _, err = run_main(["status", str(world.broken)], capsys)
    assert err.endswith("stages.2.depends_on: stage 1 does not exist\n"), err


def test_corpus_size() -> None:
    assert len(CORRUPTIONS) >= 30
    assert len(CORRUPTIONS) * len(TARGETED) >= 30 * 13


@pytest.mark.parametrize("corruption", ["truncated JSON", "a FIFO", "stages null"])
def test_context_and_a_new_run_of_the_same_plan(
    corruption: str, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """`context` from the project looks across runs (a broken one is skipped), and
    `orchestrate` of the broken run's own plan makes a new run beside it, leaving
    the broken file as it is for the user to look at."""
    corrupt(world.broken, corruption)
    code, out, err = run_main(["context"], capsys)
    assert code == 1 and "Traceback" not in out + err and len(err.splitlines()) == 1, err
    broken_file = world.broken / "status.json"
    kind = os.lstat(broken_file).st_mode
    code, out, err = run_main(
        ["orchestrate", str(world.repo / "broken.md"), "--no-launch", "--no-monitor", "--json"],
        capsys,
    )
    assert code == 0, err
    new_dir = Path(json.loads(out)["orch_dir"])
    assert new_dir != world.broken and (new_dir / "status.json").is_file()
    assert os.lstat(broken_file).st_mode == kind
    shutil.rmtree(new_dir)  # the module's runs stay as they were for the next test
