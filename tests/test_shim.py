"""scripts/autorun, the plugin's POSIX shim: builds its virtual environment on
first use (once, even when called concurrently), is fast afterwards, rebuilds
when the version or the dependencies change, and says what to do when Python is
missing or too old or the install fails. Installs come from a local wheelhouse
(no network)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e.harness import build_plugin
from e2e.wheelhouse import build_wheelhouse, offline_pip_env

from autorun_py import __version__

SETUP_MSG = "setting up its Python environment"
PLAN = "# Plan\n\n## Stage 1: Alpha\n\n**Dependencies**: None\n\nDo alpha.\n"


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))


def shim_env(wheelhouse: Path, autorun_home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "CLAUDE_PLUGIN"))}
    env.update(offline_pip_env(wheelhouse))
    env["AUTORUN_HOME"] = str(autorun_home)
    env.update(extra)
    return env


def run(
    shim: Path, *args: str, env: dict[str, str], cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(shim), *args],
        env=env,
        cwd=str(cwd) if cwd else None,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


@dataclass
class Built:
    root: Path
    shim: Path
    data: Path
    home: Path
    env: dict[str, str]
    first: list[subprocess.CompletedProcess[str]]
    first_seconds: float


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Built:
    """A plugin copy whose venv was built by two concurrent first calls."""
    root = build_plugin(tmp_path_factory.mktemp("plugin") / "autorun")
    data = tmp_path_factory.mktemp("data")
    home = tmp_path_factory.mktemp("autorun-home")
    env = shim_env(wheelhouse, home)
    shim = root / "scripts" / "autorun"
    argv = [str(shim), "--data-dir", str(data), "--version"]
    started = time.monotonic()
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        outs.append(subprocess.CompletedProcess(argv, proc.returncode, out, err))
    return Built(root, shim, data, home, env, outs, time.monotonic() - started)


def test_first_calls_build_the_venv_once_and_later_calls_are_fast(built: Built) -> None:
    for proc in built.first:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"autorun, version {__version__}"
    # Two concurrent first calls: one installs, the other waits for it.
    assert sum(SETUP_MSG in p.stderr for p in built.first) == 1, [p.stderr for p in built.first]
    venv = built.data / "venv"
    stamp = venv / ".autorun-stamp"
    assert stamp.is_file() and (venv / "bin" / "python").exists()
    assert not (built.data / "venv.lock").exists()
    before = stamp.stat().st_mtime_ns

    timings = []
    for _ in range(3):
        started = time.monotonic()
        proc = run(built.shim, "--data-dir", str(built.data), "--version", env=built.env)
        timings.append(time.monotonic() - started)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        assert proc.stdout.strip() == f"autorun, version {__version__}"
    assert stamp.stat().st_mtime_ns == before  # nothing was reinstalled
    print(f"first call (build) {built.first_seconds:.2f}s; later calls {min(timings):.3f}s")
    assert min(timings) < 1.5, timings


def test_calls_without_data_dir_find_the_same_venv(built: Built) -> None:
    # The model's own Bash calls do not pass --data-dir: the shim remembers.
    proc = run(built.shim, "--version", env=built.env)
    assert proc.returncode == 0, proc.stderr
    assert SETUP_MSG not in proc.stderr
    assert not (built.home / "venv").exists()
    # The engine's own entry point is there too, for tmux windows and monitors.
    entry = built.data / "venv" / "bin" / "autorun"
    out = subprocess.run([str(entry), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"autorun, version {__version__}"


def test_a_symlink_to_the_shim_finds_the_plugin_root(built: Built, tmp_path: Path) -> None:
    link_dir = tmp_path / "bin"
    link_dir.mkdir()
    (link_dir / "autorun").symlink_to(built.shim)
    proc = run(link_dir / "autorun", "--data-dir", str(built.data), "--version", env=built.env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"autorun, version {__version__}"


def test_prompt_hook_hands_the_arguments_to_the_engine_verbatim(
    built: Built, tmp_path: Path
) -> None:
    """scripts/prompt-hook (the plugin's UserPromptSubmit hook) then the `!` line's
    `--args-of`, through the real shim: the text reaches the engine as one
    argument and no shell runs any of it."""
    odd = 'it\'s "my" plan $(touch pwned) `touch pwned2`\nAUTORUN_ARGUMENTS\ntouch pwned3\n.md'
    (tmp_path / odd).write_text(PLAN, encoding="utf-8")
    session = "0b7d4c2e-1f3a-4b5c-8d9e-aabbccddeeff"
    # Claude Code exports CLAUDE_PLUGIN_DATA to hooks (not to `!` lines).
    env = dict(built.env, CLAUDE_PLUGIN_DATA=str(built.data))
    payload = json.dumps({"session_id": session, "prompt": f"/autorun:ping {odd}\n"})
    hook = subprocess.run(
        [str(built.root / "scripts" / "prompt-hook")],
        input=payload,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert hook.returncode == 0 and hook.stdout == "", hook.stderr
    line_env = dict(built.env, CLAUDE_CODE_SESSION_ID=session)
    argv = ["--data-dir", str(built.data), "--exit-zero", "--args-of", "ping", "plan", "check"]
    proc = run(built.shim, *argv, env=line_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Stage 1: Alpha" in proc.stdout and "exit status" not in proc.stdout
    assert odd in proc.stdout
    assert not any(tmp_path.glob("pwned*"))

    # Any other prompt: nothing recorded, nothing printed, a few milliseconds.
    other = json.dumps({"session_id": session, "prompt": "explain $(touch pwned)"})
    started = time.monotonic()
    hook = subprocess.run(
        [str(built.root / "scripts" / "prompt-hook")],
        input=other,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    elapsed = time.monotonic() - started
    assert hook.returncode == 0 and hook.stdout == "" and hook.stderr == ""
    assert not (built.home / "prompts" / f"{session}.json").exists()
    assert not any(tmp_path.glob("pwned*"))
    print(f"prompt hook on a non-autorun prompt: {elapsed * 1000:.1f} ms")
    # Without a record the `!` line goes on with no argument, and says so.
    proc = run(built.shim, *argv, env=line_env, cwd=tmp_path)
    assert "no arguments recorded for /autorun:ping" in proc.stderr
    assert "Missing argument" in proc.stderr


def test_exit_zero_reports_the_status_instead_of_failing(built: Built, tmp_path: Path) -> None:
    proc = run(built.shim, "--exit-zero", "plan", "check", "nope.md", env=built.env, cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[-1] == "autorun: exit status 1"
    assert "nope.md" in proc.stderr

    ok = run(built.shim, "--exit-zero", "--version", env=built.env)
    assert ok.returncode == 0 and "exit status" not in ok.stdout


def test_a_new_version_or_new_dependencies_rebuild_the_venv(
    tmp_path: Path, wheelhouse: Path
) -> None:
    root = build_plugin(tmp_path / "plugin")
    shim = root / "scripts" / "autorun"
    env = shim_env(wheelhouse, tmp_path / "home")
    data = tmp_path / "data"
    assert run(shim, "--data-dir", str(data), "--version", env=env).returncode == 0

    init = root / "autorun_py" / "__init__.py"
    init.write_text(init.read_text().replace(__version__, "99.1.0"), encoding="utf-8")
    proc = run(shim, "--data-dir", str(data), "--version", env=env)
    assert proc.returncode == 0, proc.stderr
    assert SETUP_MSG in proc.stderr
    assert proc.stdout.strip() == "autorun, version 99.1.0"

    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(text.replace("dependencies = [", 'dependencies = [\n    "mdurl",', 1))
    proc = run(shim, "--data-dir", str(data), "--version", env=env)
    assert SETUP_MSG in proc.stderr and proc.returncode == 0, proc.stderr
    assert "mdurl" in (data / "venv" / "requirements.txt").read_text().splitlines()

    again = run(shim, "--data-dir", str(data), "--version", env=env)
    assert again.returncode == 0 and SETUP_MSG not in again.stderr


def test_install_failure_says_so_and_the_next_call_tries_again(
    tmp_path: Path, wheelhouse: Path
) -> None:
    root = build_plugin(tmp_path / "plugin")
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(
        text.replace("dependencies = [", 'dependencies = [\n    "autorun-no-such-dependency",', 1)
    )
    env = shim_env(wheelhouse, tmp_path / "home")
    data = tmp_path / "data"
    shim = root / "scripts" / "autorun"
    for _ in range(2):
        proc = run(shim, "--data-dir", str(data), "--version", env=env)
        assert proc.returncode == 1
        assert SETUP_MSG in proc.stderr  # tried (again)
        assert "could not install autorun's Python dependencies" in proc.stderr
        assert "venv.install.log" in proc.stderr
        assert not (data / "venv" / ".autorun-stamp").exists()
        assert not (data / "venv.lock").exists()
    assert "autorun-no-such-dependency" in (data / "venv.install.log").read_text()


@pytest.fixture
def bare_bin(tmp_path: Path) -> Iterator[Path]:
    """A PATH with the POSIX tools the shim uses, and no python."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("sh", "dirname", "cksum", "cut", "mkdir", "rm", "sleep", "cat", "tr", "sed"):
        found = shutil.which(tool)
        assert found, tool
        (bindir / tool).symlink_to(found)
    yield bindir


def test_missing_python_says_how_to_install_it(
    tmp_path: Path, bare_bin: Path, autorun_home: Path
) -> None:
    shim = build_plugin(tmp_path / "plugin") / "scripts" / "autorun"
    env = {"PATH": str(bare_bin), "HOME": os.environ["HOME"], "AUTORUN_HOME": str(autorun_home)}
    proc = subprocess.run(
        [str(bare_bin / "sh"), str(shim), "--version"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert "python3 not found: autorun needs Python >= 3.9" in proc.stderr
    assert "brew install python3" in proc.stderr
    assert "sudo apt-get install python3 python3-venv" in proc.stderr
    assert "Traceback" not in proc.stderr

    zero = subprocess.run(
        [str(bare_bin / "sh"), str(shim), "--exit-zero", "--version"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert zero.returncode == 0 and "autorun: exit status 1" in zero.stdout


def test_old_python_is_refused_with_its_version(tmp_path: Path, autorun_home: Path) -> None:
    shim = build_plugin(tmp_path / "plugin") / "scripts" / "autorun"
    old = tmp_path / "python3.8"
    old.write_text("#!/bin/sh\necho 3.8.10\nexit 3\n")  # answers like python3.8 would
    old.chmod(0o755)
    env = dict(os.environ, AUTORUN_PYTHON=str(old), AUTORUN_HOME=str(autorun_home))
    proc = run(shim, "--data-dir", str(tmp_path / "data"), "--version", env=env)
    assert proc.returncode == 1
    assert "is version 3.8.10: autorun needs Python >= 3.9" in proc.stderr
    assert not (tmp_path / "data" / "venv").exists()


def test_a_shim_outside_a_plugin_says_so(tmp_path: Path, built: Built) -> None:
    lone = tmp_path / "scripts" / "autorun"
    lone.parent.mkdir()
    shutil.copy2(built.shim, lone)
    proc = run(lone, "--version", env=built.env)
    assert proc.returncode == 1
    assert "does not look like the autorun plugin" in proc.stderr


# --------------------------------------------------------------------------- issue 15 item 6


def test_another_autorun_home_reuses_the_plugin_roots_venv(built: Built, tmp_path: Path) -> None:
    # Without --data-dir, under an AUTORUN_HOME the shim has never seen.
    other = tmp_path / "other-home"
    proc = run(built.shim, "--version", env=dict(built.env, AUTORUN_HOME=str(other)))
    assert proc.returncode == 0, proc.stderr
    assert SETUP_MSG not in proc.stderr
    assert not (other / "venv").exists()
    doctor = run(built.shim, "doctor", "--json", env=dict(built.env, AUTORUN_HOME=str(other)))
    env_check = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "environment")
    assert env_check["path"] == str(built.data / "venv")


def test_two_autorun_homes_and_one_shim_build_one_venv(
    tmp_path: Path, wheelhouse: Path, autorun_home: Path
) -> None:
    root = build_plugin(tmp_path / "plugin" / "autorun")
    shim = root / "scripts" / "autorun"
    first = run(shim, "--version", env=shim_env(wheelhouse, tmp_path / "home-a"))
    assert first.returncode == 0, first.stderr
    assert SETUP_MSG in first.stderr
    second = run(shim, "--version", env=shim_env(wheelhouse, tmp_path / "home-b"))
    assert second.returncode == 0, second.stderr
    assert SETUP_MSG not in second.stderr
    venvs = sorted((Path(os.environ["HOME"]) / ".cache" / "autorun").glob("venv-*/bin/python"))
    assert len(venvs) == 1, venvs
    assert not (tmp_path / "home-a" / "venv").exists()
    assert not (tmp_path / "home-b" / "venv").exists()


def test_install_cli_links_the_shim_and_never_replaces_a_foreign_file(
    built: Built, tmp_path: Path
) -> None:
    home = tmp_path / "user"
    env = dict(built.env, HOME=str(home), PATH=os.environ["PATH"])
    proc = run(built.shim, "--data-dir", str(built.data), "install-cli", env=env)
    assert proc.returncode == 0, proc.stderr
    link = home / ".local" / "bin" / "autorun"
    assert link.is_symlink() and link.resolve() == built.shim.resolve()
    assert f"linked {link} -> {built.shim}" in proc.stdout
    assert "is not on your PATH; add it" in proc.stdout
    # Through the link, with no --data-dir, from anywhere: the same venv, nothing built.
    on_path = dict(env, PATH=f"{link.parent}{os.pathsep}{env['PATH']}")
    again = run(link, "--version", env=on_path, cwd=tmp_path)
    assert again.returncode == 0 and SETUP_MSG not in again.stderr, again.stderr
    assert again.stdout.strip() == f"autorun, version {__version__}"
    # Idempotent; doctor reports where `autorun` points.
    same = run(link, "install-cli", "--json", env=on_path)
    assert json.loads(same.stdout)["action"] == "unchanged"
    doctor = run(link, "doctor", "--json", env=on_path)
    cli = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "autorun")
    assert cli["status"] == "ok" and cli["path"] == str(link)
    assert cli["detail"] == f"-> {built.shim.resolve()}"
    # A foreign file of that name is left alone, with one clear line.
    other = tmp_path / "bin"
    other.mkdir()
    (other / "autorun").write_text("#!/bin/sh\necho mine\n")
    refused = run(built.shim, "install-cli", "--bin-dir", str(other), env=env)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "is not autorun's link" in refused.stderr
    assert (other / "autorun").read_text() == "#!/bin/sh\necho mine\n"
    # A link to another copy of autorun's shim (an older plugin version) is updated.
    (other / "autorun").unlink()
    (other / "autorun").symlink_to(tmp_path / "old-version" / "scripts" / "autorun")
    updated = run(built.shim, "install-cli", "--bin-dir", str(other), "--json", env=env)
    assert json.loads(updated.stdout)["action"] == "updated"
    assert (other / "autorun").resolve() == built.shim.resolve()


def test_doctor_says_when_autorun_is_not_on_path(built: Built, tmp_path: Path) -> None:
    env = dict(built.env, HOME=str(tmp_path / "user"))
    doctor = run(built.shim, "--data-dir", str(built.data), "doctor", env=env)
    line = next(ln for ln in doctor.stdout.splitlines() if " autorun " in ln)
    assert "warning" in line and "not on PATH" in line
    assert f"fix: {built.shim} install-cli" in doctor.stdout


def test_the_first_orchestrate_through_the_shim_puts_autorun_on_path(
    built: Built, tmp_path: Path, repo: Path
) -> None:
    home = tmp_path / "user"
    env = dict(built.env, HOME=str(home), AUTORUN_HOME=str(tmp_path / "ah"))
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN)
    args = ["--data-dir", str(built.data), "orchestrate", str(plan), "--no-launch", "--no-monitor"]
    proc = run(built.shim, *args, env=env, cwd=repo)
    assert proc.returncode == 0, proc.stderr
    link = home / ".local" / "bin" / "autorun"
    assert f"autorun: linked {link} -> {built.shim}" in proc.stderr
    assert link.resolve() == built.shim.resolve()


@pytest.mark.usefixtures("tmux_socket")
def test_the_start_line_is_answered_once_from_the_launch_inside_the_worktree(
    built: Built, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """start.md's `!` line (`--args-of start stage start`) in a stage's session: inside
    its worktree the shim prints the start the launch prepared, once, with no engine
    process, and uses up the prompt hook's record; from anywhere else, or a second
    time, the engine's `stage start` answers (and refuses outside the worktree)."""
    from autorun_py.launch import prepare_start
    from autorun_py.state import StatusStore
    from tests.helpers import events_of, fast_standin, log_lines, run_cli, wait_until, write_plan

    log, gates = tmp_path / "standin.log", tmp_path / "gates"
    gates.mkdir()
    fast_standin(monkeypatch, log, gate=str(gates))
    plan = write_plan(tmp_path, [(1, "Alpha", [])])
    out = run_cli(["orchestrate", str(plan), "--no-monitor", "--json"], repo, check=True).stdout
    orch = Path(json.loads(out)["orch_dir"])
    wait_until(lambda: log_lines(log, "stage 1 waiting at work gate"), 40, "stage 1 started")
    start = orch / "stages" / "stage-1-start.txt"
    taken = start.with_name(start.name + ".taken")
    # The stand-in ran the line through this very shim: the prepared start, taken.
    assert "start line from the shim" in log_lines(log, "stage 1 started in")[0]
    assert taken.is_file() and not start.exists()
    assert events_of(orch, "stage_registered") == []
    status = json.loads((orch / "status.json").read_text())["stages"]["1"]
    assert status["phases"]["triage"]["started_at"]  # opened by the launch
    wt = Path(status["worktree"])

    state = StatusStore(orch).read()
    prepare_start(state, state.stages[1])  # as a new launch of the stage would
    expected = start.read_text(encoding="utf-8")
    assert f"Worktree:      {wt}" in expected and "## Scope" in expected
    session = "6f1c2d3e-4a5b-4c6d-8e7f-001122334455"
    home = Path(os.environ["AUTORUN_HOME"])
    record = home / "prompts" / f"{session}.json"
    env = dict(
        built.env,
        AUTORUN_HOME=str(home),
        AUTORUN_ORCH_DIR=str(orch),
        AUTORUN_STAGE="1",
        AUTORUN_STAGE_START=str(start),
        AUTORUN_STAGE_WORKTREE=os.path.realpath(wt),
        CLAUDE_CODE_SESSION_ID=session,
    )
    argv = ["--data-dir", str(built.data), "--exit-zero", "--args-of", "start", "stage", "start"]

    def prompt(cwd: Path) -> None:  # Claude Code runs the prompt hook first
        line = f"/autorun:start {state.stages[1].context_file}"
        payload = json.dumps({"session_id": session, "prompt": line})
        hook = subprocess.run(
            [str(built.root / "scripts" / "prompt-hook")],
            input=payload,
            capture_output=True,
            text=True,
            env=dict(env, CLAUDE_PLUGIN_DATA=str(built.data)),
            cwd=cwd,
            timeout=120,
        )
        assert hook.returncode == 0 and record.is_file(), hook.stderr

    # The user's checkout: the engine refuses it; the prepared start stays.
    prompt(repo)
    proc = run(built.shim, *argv, env=env, cwd=repo)
    assert "is not stage 1's worktree" in proc.stderr and "exit status 1" in proc.stdout
    assert start.is_file() and not record.exists()

    # Inside the worktree (a subdirectory too): the prepared text, and nothing else.
    prompt(wt)
    events = (orch / "events.jsonl").read_text()
    (wt / "sub").mkdir()
    proc = run(built.shim, *argv, env=env, cwd=wt / "sub")
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout == expected
    assert not start.exists() and taken.read_text(encoding="utf-8") == expected
    assert not record.exists()
    assert (orch / "events.jsonl").read_text() == events

    # Once only: the same line again is the engine's `stage start`.
    prompt(wt)
    proc = run(built.shim, *argv, env=env, cwd=wt)
    assert "exit status" not in proc.stdout, proc.stderr
    assert f"Worktree:      {wt}" in proc.stdout and "## Scope" in proc.stdout
    assert [e["stage"] for e in events_of(orch, "stage_registered")] == [1]

    (gates / "stage-1").touch()
    wait_until(lambda: events_of(orch, "orchestration_complete"), 40, "the run to finish")
