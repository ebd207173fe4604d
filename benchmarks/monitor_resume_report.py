"""What keeping a run alive costs: a monitor check, a resume, a report.

1. **Transcripts**: the recorded fixture transcripts (tests/fixtures/transcripts)
   replicated with fresh message ids to ``--mb`` megabytes, then counted by
   :func:`autorun_py.transcripts.read_usage` (MB/s, responses/s).
2. **Monitor check**: a ``--stages``-stage run of the stand-in agent, every
   stage idle at its prompt (nudges disabled, so each check only looks), on a
   private tmux server; the time of one :meth:`Monitor.check` with ``gap=0``
   (tmux calls and status reads), per check and per stage.
3. **Resume**: the same stages held mid-run, the tmux server killed, then
   ``resume_run(monitor=False)``: the time to bring every session back
   (``--resume`` of each Claude session), and of a second, idle resume.
4. **Report**: ``write_report`` of that run (git stats, transcripts, Mermaid).

    .venv/bin/python benchmarks/monitor_resume_report.py [--stages 12] [--mb 50]

Prints figures measured in this run; state in a temporary HOME/AUTORUN_HOME.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autorun_py.config import load_config

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "transcripts"


def _wait(pred: object, timeout: float = 120, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise SystemExit(f"timed out\n{tail}")
        time.sleep(0.05)


def bench_transcripts(tmp: Path, megabytes: float) -> None:
    from autorun_py.transcripts import read_usage

    lines = []
    for f in sorted((FIXTURE / "projects").rglob("*.jsonl")):
        lines += f.read_text().splitlines()
    out = tmp / "big.jsonl"
    size, copies = 0, 0
    with open(out, "w", encoding="utf-8") as fh:
        while size < megabytes * 1e6:
            copies += 1
            for line in lines:
                line = line.replace('"msg_fake_', f'"msg_c{copies}_')
                fh.write(line + "\n")
                size += len(line) + 1
    t0 = time.perf_counter()
    usage = read_usage([out])
    dt = time.perf_counter() - t0
    print(
        f"transcripts: {size / 1e6:.1f} MB, {usage.total.responses:,} responses in {dt:.2f} s "
        f"= {size / 1e6 / dt:.1f} MB/s, {usage.total.responses / dt:,.0f} responses/s "
        f"(${usage.total.cost_usd:,.2f} priced)"
    )


def bench_run(tmp: Path, stages: int) -> None:
    from autorun_py.monitor import Monitor
    from autorun_py.report import write_report
    from autorun_py.resume import resume_run
    from autorun_py.supervisor import MonitorOptions
    from autorun_py.tmux import Tmux

    repo = tmp / "project"
    repo.mkdir()
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.name", "bench"],
        ["config", "user.email", "bench@autorun.invalid"],
        ["commit", "-q", "--allow-empty", "-m", "init"],
    ):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    plan = tmp / "plan.md"
    plan.write_text(
        "# Bench\n\n"
        + "".join(
            f"## Stage {n}: Part {n}\n\n**Dependencies**: None\n\nDo part {n}.\n\n"
            for n in range(1, stages + 1)
        )
    )
    log = tmp / "standin.log"
    os.environ.update(
        {
            "AUTORUN_CLAUDE": sys.executable,
            "AUTORUN_AGENT_ARGS": shlex.join(["-m", "autorun_py.standin"]),
            "AUTORUN_STANDIN_DELAY": "0.05",
            "AUTORUN_STANDIN_LOG": str(log),
            "AUTORUN_STANDIN_STUCK": ",".join(str(n) for n in range(1, stages + 1)),
        }
    )
    proc = subprocess.run(
        [sys.executable, "-m", "autorun_py", "orchestrate", str(plan), "--no-monitor", "--json"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    orch = Path(json.loads(proc.stdout)["orch_dir"])

    def count(needle: str) -> int:
        return sum(needle in ln for ln in log.read_text().splitlines()) if log.exists() else 0

    _wait(lambda: count("stuck at prompt") == stages, log=log)
    mon = Monitor(orch, MonitorOptions(gap=0.0, max_nudges=0), environ=os.environ)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        mon.check()
        times.append(time.perf_counter() - t0)
    best = min(times)
    print(
        f"monitor check: {stages} idle sessions, best of 5 {best * 1000:.0f} ms "
        f"({best * 1000 / stages:.1f} ms per stage), median "
        f"{sorted(times)[2] * 1000:.0f} ms"
    )
    tmux = Tmux.from_env()
    tmux.kill_server()
    t0 = time.perf_counter()
    res = resume_run(orch, monitor=False, config=load_config(os.environ))
    dt = time.perf_counter() - t0
    resumed = sum(a.action == "resumed" for a in res.actions)
    _wait(lambda: count("stuck at prompt") == 2 * stages, log=log)
    t1 = time.perf_counter()
    again = resume_run(orch, monitor=False, config=load_config(os.environ))
    dt2 = time.perf_counter() - t1
    print(
        f"resume: {resumed}/{stages} sessions resumed after kill-server in {dt:.2f} s "
        f"({dt / stages * 1000:.0f} ms per stage); a second resume: {len(again.actions)} "
        f"actions in {dt2 * 1000:.0f} ms"
    )
    t2 = time.perf_counter()
    md, _ = write_report(orch)
    print(f"report: {stages} stages in {(time.perf_counter() - t2) * 1000:.0f} ms ({md.name})")
    tmux.kill_server()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stages", type=int, default=12)
    ap.add_argument("--mb", type=float, default=50.0)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="autorun-bench-") as tmp_s:
        tmp = Path(tmp_s)
        os.environ["HOME"] = str(tmp / "home")
        os.environ["AUTORUN_HOME"] = str(tmp / "home" / ".autorun")
        os.environ["AUTORUN_TMUX_SOCKET"] = f"autorun-bench-{os.getpid()}"
        os.environ["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
        for var in ("CLAUDE_CONFIG_DIR", "TMUX", "TMUX_PANE"):
            os.environ.pop(var, None)
        (tmp / "home").mkdir()
        bench_transcripts(tmp, args.mb)
        try:
            bench_run(tmp, args.stages)
        finally:
            from autorun_py.tmux import Tmux

            Tmux.from_env().kill_server()
    return 0


if __name__ == "__main__":
    sys.exit(main())
