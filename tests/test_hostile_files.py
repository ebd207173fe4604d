"""Hostile files and disks: a plan that is a FIFO, a device, huge, not text; state
files replaced by symlinks; a full or read-only disk. Each gives one line naming
the path, a non-zero exit, no traceback, and nothing changed."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from autorun_py import fsutil
from autorun_py.errors import AutorunError
from autorun_py.plan import PLAN_SIZE_LIMIT, load_plan
from autorun_py.rundir import create_orchestration
from autorun_py.state import StatusStore
from tests.helpers import run_cli, write_plan


def _one_line_error(res: subprocess.CompletedProcess[str], path: object, what: str) -> None:
    assert res.returncode != 0
    assert "Traceback" not in res.stderr + res.stdout
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"autorun: error: {path}"), lines[0]
    assert what in lines[0], lines[0]


def _nothing_created(home: Path) -> None:
    orch = home / "orchestration"
    assert not orch.exists() or not any(orch.iterdir()), list(orch.iterdir())


# --------------------------------------------------------------------------- the plan


def _fifo(tmp_path: Path) -> Path:
    p = tmp_path / "plan.md"
    os.mkfifo(p)
    return p


def _dir(tmp_path: Path) -> Path:
    p = tmp_path / "plan.md"
    p.mkdir()
    return p


def _huge(tmp_path: Path) -> Path:
    p = tmp_path / "plan.md"
    with open(p, "wb") as fh:
        fh.write(b"# Plan\n\n## Stage 1: A\n\n")
        fh.truncate(PLAN_SIZE_LIMIT + 1)
    return p


def _latin1(tmp_path: Path) -> Path:
    p = tmp_path / "plan.md"
    p.write_bytes(b"# Plan\n\n## Stage 1: Caf\xe9\n\nDo it.\n")
    return p


def _loop(tmp_path: Path) -> Path:
    p = tmp_path / "plan.md"
    os.symlink(p, p)
    return p


def _under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "afile").write_text("x")
    return tmp_path / "afile" / "plan.md"


HOSTILE_PLANS = {
    "fifo": (_fifo, "is a FIFO, not a regular file"),
    "dev-zero": (lambda tmp: Path("/dev/zero"), "is a device or special file"),
    "directory": (_dir, "is a directory"),
    "over the size cap": (_huge, "is too large"),
    "not utf-8": (_latin1, "not UTF-8 text"),
    "symlink loop": (_loop, "cannot read: Too many levels of symbolic links"),
    "under a file": (_under_a_file, "cannot read: Not a directory"),
    "missing": (lambda tmp: tmp / "nope.md", "no such file"),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_PLANS))
@pytest.mark.parametrize("command", ["plan check", "orchestrate"])
def test_a_hostile_plan_is_one_line_and_creates_nothing(
    kind: str, command: str, repo: Path, tmp_path: Path, autorun_home: Path
) -> None:
    make, what = HOSTILE_PLANS[kind]
    plan = make(tmp_path)
    extra = ["--no-launch", "--no-monitor"] if command == "orchestrate" else []
    res = run_cli([*command.split(), str(plan), *extra], repo, timeout=30)
    _one_line_error(res, plan, what)
    _nothing_created(autorun_home)


def test_the_size_cap_is_named() -> None:
    assert PLAN_SIZE_LIMIT == 4 << 20


def test_a_plan_at_the_cap_is_read(tmp_path: Path) -> None:
    p = tmp_path / "plan.md"
    body = "# Plan\n\n## Stage 1: A\n\nDo it.\n"
    p.write_text(body + " " * (PLAN_SIZE_LIMIT - len(body)))
    assert [s.number for s in load_plan(p).stages] == [1]


# --------------------------------------------------------------------------- symlinks


@pytest.fixture
def orch(repo: Path) -> Path:
    plan = write_plan(repo, [(1, "One", []), (2, "Two", [1])])
    return Path(create_orchestration(load_plan(plan), repo).orch_dir)


def test_events_are_never_appended_through_a_symlink(orch: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    (orch / "events.jsonl").unlink()
    os.symlink(outside, orch / "events.jsonl")
    res = run_cli(["stage", "fail", str(orch), "1", "--reason", "x"], orch)
    _one_line_error(res, orch / "events.jsonl", "is a symlink")
    assert outside.read_text() == "precious\n"


def test_status_is_never_written_through_a_symlink(orch: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text((orch / "status.json").read_text())
    before = outside.read_text()
    (orch / "status.json").unlink()
    os.symlink(outside, orch / "status.json")
    res = run_cli(["stage", "fail", str(orch), "1", "--reason", "x"], orch)
    _one_line_error(res, orch / "status.json", "is a symlink")
    assert outside.read_text() == before
    assert (orch / "status.json").is_symlink()


def test_atomic_write_refuses_a_symlink_and_keeps_the_target(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    link = tmp_path / "state.json"
    os.symlink(target, link)
    with pytest.raises(AutorunError, match="is a symlink"):
        fsutil.write_text_atomic(link, "new")
    assert target.read_text() == "keep" and link.is_symlink()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_fifo_at_status_json_does_not_hang(orch: Path) -> None:
    (orch / "status.json").unlink()
    os.mkfifo(orch / "status.json")
    res = run_cli(["status", str(orch)], orch, timeout=30)
    _one_line_error(res, orch / "status.json", "is a FIFO")


# --------------------------------------------------------------------------- disks


def _mount_tmpfs(where: Path, options: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip() or 'not root'})")


def _umount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


@pytest.fixture
def small_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repo: Path
) -> Iterator[tuple[Path, Path]]:
    """AUTORUN_HOME on a 256 KiB tmpfs holding one run; (home, orch_dir)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    home = tmp_path / f"mnt-{uuid.uuid4().hex[:8]}"
    _mount_tmpfs(home, "size=256k")
    try:
        monkeypatch.setenv("AUTORUN_HOME", str(home))
        plan = write_plan(repo, [(1, "One", []), (2, "Two", [1])])
        orch = Path(create_orchestration(load_plan(plan), repo).orch_dir)
        yield home, orch
    finally:
        _umount(home)


def _fill(directory: Path) -> None:
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 1024)
    except OSError:
        pass
    finally:
        os.close(fd)


def test_a_full_disk_is_one_line_and_state_unchanged(small_home: tuple[Path, Path]) -> None:
    home, orch = small_home
    before = (orch / "status.json").read_bytes()
    _fill(home)
    res = run_cli(["stage", "fail", str(orch), "1", "--reason", "x" * 20000], orch)
    _one_line_error(res, orch / "status.json", "No space left on device")
    assert (orch / "status.json").read_bytes() == before
    assert [p.name for p in orch.iterdir() if p.name.endswith(".tmp")] == []
    res = run_cli(["status", str(orch), "--json"], orch)
    assert res.returncode == 0 and json.loads(res.stdout)["stages"]


def test_a_read_only_disk_is_one_line_and_state_unchanged(
    small_home: tuple[Path, Path], repo: Path
) -> None:
    home, orch = small_home
    before = (orch / "status.json").read_bytes()
    res = subprocess.run(
        ["mount", "-o", "remount,ro", str(home)], capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        pytest.skip(f"cannot remount read-only: {res.stderr.strip()}")
    res = run_cli(["stage", "fail", str(orch), "1", "--reason", "x"], orch)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert len(res.stderr.splitlines()) == 1, res.stderr
    assert "Read-only file system" in res.stderr and str(orch) in res.stderr
    assert (orch / "status.json").read_bytes() == before
    # reading still works
    assert run_cli(["status", str(orch)], orch).returncode == 0
    assert run_cli(["list"], orch).returncode == 0
    # a new run cannot be created there: one line, naming the path
    write_plan(repo, [(1, "Other", [])], name="other.md")
    res = run_cli(["orchestrate", "other.md", "--no-launch", "--no-monitor"], repo)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert len(res.stderr.splitlines()) == 1 and "Read-only file system" in res.stderr
    assert str(home) in res.stderr


def test_a_forbidden_directory_is_one_line(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EACCES: a run whose directory this user may read but not write. Root
    ignores permission bits, so as root the command runs as nobody (setpriv)."""
    import shutil
    import sys
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="autorun-eacces-"))
    try:
        base.chmod(0o755)
        monkeypatch.setenv("AUTORUN_HOME", str(base / "home"))
        plan = write_plan(repo, [(1, "One", []), (2, "Two", [1])])
        orch = Path(create_orchestration(load_plan(plan), repo).orch_dir)
        for p in [base, *base.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        before = (orch / "status.json").read_bytes()
        argv = [sys.executable, "-m", "autorun_py", "stage", "fail", str(orch), "1"]
        argv += ["--reason", "x"]
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("root ignores permission bits and setpriv is not installed")
            argv = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
            env = dict(os.environ, HOME=str(base))
        else:
            orch.chmod(0o555)
            env = dict(os.environ)
        res = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=base, timeout=60)
        assert res.returncode != 0 and "Traceback" not in res.stderr + res.stdout
        assert len(res.stderr.splitlines()) == 1, res.stderr
        assert "Permission denied" in res.stderr and str(orch) in res.stderr, res.stderr
        assert (orch / "status.json").read_bytes() == before
    finally:
        for p in [base, *base.rglob("*")]:
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_status_store_lock_on_a_read_only_disk_is_an_error(
    small_home: tuple[Path, Path],
) -> None:
    home, orch = small_home
    (orch / "status.json.lock").unlink(missing_ok=True)
    res = subprocess.run(
        ["mount", "-o", "remount,ro", str(home)], capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        pytest.skip(f"cannot remount read-only: {res.stderr.strip()}")
    with pytest.raises(AutorunError, match="Read-only file system"):
        with StatusStore(orch).transaction():
            pass
