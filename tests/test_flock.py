"""autorun_py/flock.py: exclusion (with filelock too), waiting without polls,
timeouts, release when the holder is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autorun_py.flock import FlockLock, LockTimeout

HOLD = (
    "import sys, time\n"
    "from autorun_py.flock import FlockLock\n"
    "lock = FlockLock(sys.argv[1]).acquire()\n"
    "print('held', flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
    "lock.release()\n"
)


def _holder(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_exclusive_and_timeout(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = _holder(path, 60)
    try:
        t0 = time.monotonic()
        with pytest.raises(LockTimeout):
            FlockLock(path, timeout=0.3).acquire()
        assert time.monotonic() - t0 >= 0.29
        with pytest.raises(LockTimeout):
            FlockLock(path).acquire(blocking=False)
    finally:
        holder.kill()
        holder.wait()
    # SIGKILL released it; and the alarm left nothing behind.
    with FlockLock(path, timeout=5):
        pass
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)


def test_waiter_wakes_when_the_holder_lets_go(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    code = HOLD + "print(repr(time.time()), flush=True)\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path), "0.5"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        lock = FlockLock(path, timeout=60).acquire()
        got = time.time()
        lock.release()
        released = float(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
    assert got >= released - 0.01  # it waited for the holder...
    assert got - released < 1.0  # ...and came in as it let go


def test_excludes_filelock_holders_both_ways(tmp_path: Path) -> None:
    filelock = pytest.importorskip("filelock")
    path = tmp_path / "x.lock"
    other = filelock.FileLock(str(path))
    other.acquire()
    try:
        with pytest.raises(LockTimeout):
            FlockLock(path, timeout=0.1).acquire()
    finally:
        other.release()
    with FlockLock(path):
        with pytest.raises(filelock.Timeout):
            filelock.FileLock(str(path), timeout=0.1).acquire()


def test_threads_exclude_each_other(tmp_path: Path) -> None:
    """Off the main thread it polls (no signals there); still one holder at a time."""
    path = tmp_path / "x.lock"
    inside: list[int] = []
    clashes: list[int] = []

    def work() -> None:
        for _ in range(20):
            with FlockLock(path, timeout=30):
                inside.append(1)
                if len(inside) > 1:
                    clashes.append(1)
                time.sleep(0.001)
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not clashes


def test_counter_under_contention(tmp_path: Path) -> None:
    """Processes incrementing a file under the lock lose no update."""
    path = tmp_path / "x.lock"
    counter = tmp_path / "n"
    counter.write_text("0")
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from autorun_py.flock import FlockLock\n"
        "p = Path(sys.argv[2])\n"
        "for _ in range(25):\n"
        "    with FlockLock(sys.argv[1], timeout=60):\n"
        "        p.write_text(str(int(p.read_text()) + 1))\n"
    )
    env = dict(os.environ)
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path), str(counter)], env=env)
        for _ in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    assert counter.read_text() == "100"
