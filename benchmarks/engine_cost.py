"""What autorun itself costs, against floors measured in the same run (issue 16).

Every figure is printed as a row ``figure  value  floor  ratio  goal  ok``:

1. **Per stage** (runs of N = 6, 30, 100 independent stand-in stages, 0.05 s of
   work each, on a private tmux server): CPU-seconds of every engine process the
   run started (engine commands, detached helpers; each with the git and tmux
   calls it waited for, each process counted once: a parent's children time
   leaves out the recorded processes it waited for), and the number of engine
   processes, per stage. The stand-in's own CPU (the model's part) is a row too.
   Processes are counted by a recorder that every process of a throwaway venv's
   interpreter loads (a ``.pth`` in its site-packages, so ``-I`` processes too:
   the engine's detached helpers, tmux's session-closed hook); each writes its
   argv, its own CPU and its children's CPU at exit. The run is over when its
   sessions are gone and no more records come.
2. **Chain hand-off**: a chain of 6 stages; from one stage's commit to the next
   stage's commit, against the floor: one interpreter start, 6 git calls, 2 tmux
   calls, one fsync + rename, and the stand-in's work. Five such chains, each
   followed by its floor; the goal is on the median of the five ratios. Info
   rows split it: the engine's part against the floor without the work, and the
   hand-off against the floor plus the model's own part (the stand-in's start,
   its commit).
3. **Bookkeeping calls** (``autorun phase implement started``, ``autorun
   context``, from the stage's session environment) against ``python -I -c
   pass``, with no history and with 150 earlier 200-stage runs under
   ``$AUTORUN_HOME`` (finished), measured interleaved (one call of each case per
   round, medians over the rounds; the history goal on the median of the rounds'
   paired ratios).
4. **A merge** with 0 and 256 other worktrees of the repository: git calls (a
   ``git`` on PATH that counts and execs the real one) and wall time (15 rounds,
   a fresh one-stage run each, the two merges of a round back to back; the goal
   is on the median of the rounds' ratios).
5. **A state transaction** (one phase update) at 6 and 1,000 stages.
6. **simulate** of a 1,000-stage chain against a 1,000-stage fan-out (9 rounds, one
   of each per round; the goal on the median of the rounds' ratios).

    .venv/bin/python benchmarks/engine_cost.py [--quick] [--json] [--root DIR]

``--quick`` runs smaller sizes (N = 6 only, 20 history runs, 32 worktrees) for a
smoke check. ``--root DIR``: the rows that run whole orchestrations (per stage,
the hand-off) for another source tree, e.g. a before figure of an older commit
measured the same way (``git archive REV | tar -x -C DIR``); only those rows.
Everything happens under a temporary directory; the tmux server is
private and killed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
WORK_SECONDS = 0.05  # the stand-in's work per stage (AUTORUN_STANDIN_DELAY)
ROWS: list[dict[str, Any]] = []
# The stand-in's log line for start.md's `!` line answered by the shim (standin.py).
START_LINE_CPU = re.compile(r"start line from the shim: ([0-9.]+) s CPU")

SITECUSTOMIZE = r"""
import os
_log = os.environ.get("AUTORUN_BENCH_PROCLOG")
if _log:  # (nothing else imported without it: the hand-off's processes run bare)
    import atexit, json, signal, sys, time
    _t0 = time.monotonic()
    _done = []
    def _bench_done():
        if _done:
            return
        _done.append(1)
        # getrusage: microseconds (os.times() truncates each figure to 10 ms ticks)
        import resource
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        rec = {"pid": os.getpid(), "ppid": os.getppid(), "argv": sys.argv,
               "self": me.ru_utime + me.ru_stime, "children": kids.ru_utime + kids.ru_stime,
               "wall": time.monotonic() - _t0}
        with open(_log, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
    atexit.register(_bench_done)
    # A process ended by a signal (a stand-in whose tmux session is killed, a
    # detached killer when the server goes) runs no atexit: record it here.
    def _on_signal(signum, frame):
        _bench_done()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    for _sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(_sig) is signal.SIG_DFL:
            signal.signal(_sig, _on_signal)
"""

COUNTING_GIT = """#!/bin/sh
printf '%s\\n' "$*" >> "$AUTORUN_BENCH_GITLOG"
exec {real} "$@"
"""


def row(figure: str, value: float, floor: float | None, goal: str, ok: bool | None) -> None:
    ratio = value / floor if floor else None
    ROWS.append(
        {
            "figure": figure,
            "value": round(value, 4),
            "floor": None if floor is None else round(floor, 4),
            "ratio": None if ratio is None else round(ratio, 2),
            "goal": goal,
            "ok": ok,
        }
    )


def median_time(fn: Callable[[], object], n: int = 15) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(
    argv: list[str], env: dict[str, str], cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc


def engine(
    env: dict[str, str], *args: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return run([PY, "-I", "-m", "autorun_py", *args], env, cwd, check)


def base_env(tmp: Path) -> dict[str, str]:
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text(
        "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n"
        "[user]\n\tname = bench\n\temail = bench@autorun.invalid\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "TMUX", "AUTORUN_"))}
    env.pop("CLAUDECODE", None)
    # Bytecode is written and reused, as in a real install (a compile per start
    # is not autorun's cost).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        {
            "HOME": str(home),
            "AUTORUN_HOME": str(home / ".autorun"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
            "AUTORUN_TMUX_SOCKET": f"autorun-bench-{uuid.uuid4().hex[:10]}",
            "AUTORUN_CLAUDE": PY,
            "AUTORUN_AGENT_ARGS": "-m autorun_py.standin",
            "AUTORUN_STANDIN_DELAY": str(WORK_SECONDS),
            "AUTORUN_KEEP_SESSIONS": "",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def make_repo(path: Path, env: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    (path / "README.md").write_text("bench\n")
    run(["git", "-C", str(path), "init", "-q", "-b", "main"], env)
    run(["git", "-C", str(path), "add", "-A"], env)
    run(["git", "-C", str(path), "commit", "-q", "-m", "init"], env)
    return path


def plan_text(n: int, chain: bool = False) -> str:
    out = ["# Bench plan", ""]
    for i in range(1, n + 1):
        dep = f"Stage {i - 1}" if chain and i > 1 else "None"
        out += [f"## Stage {i}: Part {i}", "", f"**Dependencies**: {dep}", "", f"Do part {i}.", ""]
    return "\n".join(out)


def kill_tmux(env: dict[str, str]) -> None:
    sock = env["AUTORUN_TMUX_SOCKET"]
    subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True, check=False)
    uid = os.getuid()
    for base in (os.environ.get("TMUX_TMPDIR") or "/tmp",):
        p = Path(base) / f"tmux-{uid}" / sock
        if p.exists():
            p.unlink()


TERMINAL = ("completed", "failed", "blocked", "cancelled")


def _all_terminal(orch: str) -> bool:
    """Whether every stage of the run's status file is terminal, read in this
    process: a poll that starts ``autorun status`` every 0.25 s would compete with
    the run it measures for the machine's 2 cores (a full CLI start is ~0.1 CPU-s)."""
    try:
        raw = json.loads((Path(orch) / "status.json").read_text(encoding="utf-8"))
        stages = raw["stages"].values()
        return all(isinstance(s, dict) and s.get("status") in TERMINAL for s in stages)
    except (OSError, ValueError, KeyError, AttributeError):
        return False


def wait_finished(env: dict[str, str], orch: str, timeout: float) -> dict[str, Any]:
    """The run's ``autorun status --json`` once it is finished (asked only when the
    status file says every stage is terminal, and then every second)."""
    deadline = time.monotonic() + timeout
    while True:
        while not _all_terminal(orch) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc = engine(env, "status", orch, "--json", check=False)
        if proc.returncode == 0:
            data = json.loads(proc.stdout)
            if data.get("finished"):
                return dict(data)
        if time.monotonic() > deadline:
            raise SystemExit(
                f"run {orch} did not finish in {timeout:.0f} s:\n{proc.stdout[-2000:]}"
            )
        time.sleep(1.0)


def counting_python(tmp: Path) -> str:
    """An interpreter every process of which (``-I`` ones too) records itself: a
    venv of this one without pip, whose site-packages has a ``.pth`` that puts
    this environment's packages and the source on the path and imports the
    recorder."""
    venv = tmp / "counting-venv"
    vpy = venv / "bin" / "python"
    if not vpy.exists():
        run([PY, "-m", "venv", "--without-pip", str(venv)], dict(os.environ))
        code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        site = Path(run([str(vpy), "-I", "-c", code], dict(os.environ)).stdout.strip())
        (site / "_autorun_bench_rec.py").write_text(SITECUSTOMIZE)
        ours = sysconfig.get_paths()["purelib"]
        (site / "autorun-bench.pth").write_text(f"{ours}\n{ROOT}\nimport _autorun_bench_rec\n")
    return str(vpy)


def orchestrate_run(
    tmp: Path,
    n: int,
    *,
    chain: bool,
    max_parallel: int,
    claude_shell: bool = False,
    record: bool = True,
) -> dict[str, Any]:
    """Run ``n`` stand-in stages to completion; return the process log and timings.
    ``claude_shell``: the stand-in's engine calls have ``CLAUDECODE=1``, as in
    Claude Code's shell (the merge leaves the worktree's removal until the
    session is gone). ``record=False``: no process records (the recorder's own
    imports and its write at exit stay out of a timed path)."""
    env = base_env(tmp)
    if claude_shell:
        env["AUTORUN_STANDIN_CLAUDECODE"] = "1"
    vpy = counting_python(tmp.parent)
    proclog = tmp / "procs.jsonl"
    standin_log = tmp / "standin.log"
    env["AUTORUN_CLAUDE"] = vpy
    if record:
        env["AUTORUN_BENCH_PROCLOG"] = str(proclog)
    env["AUTORUN_STANDIN_LOG"] = str(standin_log)
    repo = make_repo(tmp / "repo", env)
    plan = repo / "plan.md"
    plan.write_text(plan_text(n, chain))
    run(["git", "-C", str(repo), "add", "-A"], env)
    run(["git", "-C", str(repo), "commit", "-q", "-m", "plan"], env)
    t0 = time.monotonic()
    try:
        # Without -I, so that this process is counted like the others.
        out = run(
            [
                vpy,
                "-m",
                "autorun_py",
                "orchestrate",
                str(plan),
                "--max-parallel",
                str(max_parallel),
                "--no-monitor",
                "--json",
            ],
            env,
            cwd=repo,
        )
        orch = json.loads(out.stdout)["orch_dir"]
        summary = wait_finished(env, orch, timeout=60 + 6 * n)
        wall = time.monotonic() - t0
        # The sessions end after their merges (and tmux's session-closed hook
        # runs for each): wait for that, then for the records to stop coming.
        sock = env["AUTORUN_TMUX_SOCKET"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ls = subprocess.run(["tmux", "-L", sock, "list-sessions"], capture_output=True)
            if ls.returncode != 0 or not ls.stdout.strip():
                break
            time.sleep(0.2)
        seen, quiet_since = -1, time.monotonic()
        while record and time.monotonic() < deadline:
            count = len(proclog.read_text().splitlines()) if proclog.exists() else 0
            if count != seen:
                seen, quiet_since = count, time.monotonic()
            elif time.monotonic() - quiet_since > 1.5:
                break
            time.sleep(0.2)
    finally:
        kill_tmux(env)
    lines = proclog.read_text().splitlines() if record else []
    procs = [json.loads(line) for line in lines if line.strip()]
    return {
        "env": env,
        "procs": procs,
        "wall": wall,
        "summary": summary,
        "standin_log": standin_log,
        "repo": repo,
    }


def per_stage(tmp: Path, n: int, claude_shell: bool = False) -> None:
    where = f"fan-{n}-claude-shell" if claude_shell else f"fan-{n}"
    res = orchestrate_run(tmp / where, n, chain=False, max_parallel=4, claude_shell=claude_shell)
    done = res["summary"]["progress"]["completed"]
    if done != n:
        raise SystemExit(f"only {done} of {n} stages completed")
    procs = res["procs"]
    # A process's children CPU includes the recorded Python processes it waited
    # for (the stand-in runs `phase`, `stage start`, `merge`): count those once,
    # as themselves.
    recorded: dict[int, float] = {}
    for p in procs:
        if "ppid" in p:
            recorded[p["ppid"]] = recorded.get(p["ppid"], 0.0) + p["self"] + p["children"]

    def own(p: dict[str, Any]) -> float:
        return float(p["self"] + max(0.0, p["children"] - recorded.get(p["pid"], 0.0)))

    def kind(argv: list[str]) -> str:
        script = Path(argv[0]).name if argv else "?"
        if script == "__main__.py":  # python -m autorun_py <command>
            return argv[1] if len(argv) > 1 else "autorun"
        return script[:-3] if script.endswith(".py") else script

    kinds: dict[str, int] = {}
    kind_cpu: dict[str, float] = {}
    for p in procs:
        k = kind(p["argv"])
        kinds[k] = kinds.get(k, 0) + 1
        kind_cpu[k] = kind_cpu.get(k, 0.0) + own(p)
    engine_procs = [p for p in procs if kind(p["argv"]) != "standin"]
    label = f"N={n}, CLAUDECODE=1" if claude_shell else f"N={n}"
    # start.md's `!` line, answered by the shim (sh, mv, cat: no Python to record):
    # the stand-in runs it as Claude Code does and logs the CPU it took, which is
    # the engine's, not the stand-in's.
    lines = [float(m) for m in START_LINE_CPU.findall(res["standin_log"].read_text())]
    kinds["start line (shim)"] = len(lines)
    kind_cpu["start line (shim)"] = sum(lines)
    kind_cpu["standin"] = kind_cpu.get("standin", 0.0) - sum(lines)
    cpu = sum(own(p) for p in engine_procs) + sum(lines)
    standin_cpu = sum(own(p) for p in procs if kind(p["argv"]) == "standin") - sum(lines)
    row(
        f"{label}: engine CPU s/stage (engine procs + their git/tmux)",
        cpu / n,
        None,
        "<= 0.25",
        cpu / n <= 0.25,
    )
    row(
        f"{label}: stand-in's own CPU s/stage (the model's part, its git)",
        standin_cpu / n,
        None,
        "info",
        None,
    )
    # Per stage: what each stage's sessions and their hand-offs start; the user's
    # one `orchestrate` (it starts the first stages) is the run's, not a stage's.
    # (The shim answering start.md's line counts as one process; git, tmux and the
    # shim's mv and cat are calls, not engine processes.)
    staged = len([p for p in engine_procs if kind(p["argv"]) != "orchestrate"]) + len(lines)
    row(
        f"{label}: engine processes/stage (besides the run's orchestrate)",
        staged / n,
        None,
        "<= 3",
        staged / n <= 3,
    )
    row(f"{label}: run wall s/stage (max-parallel 4)", res["wall"] / n, None, "info", None)
    print(f"  {label} process kinds: {json.dumps(kinds, sort_keys=True)}", file=sys.stderr)
    per_kind = {k: round(v / n, 3) for k, v in sorted(kind_cpu.items())}
    print(f"  {label} CPU s/stage by kind: {json.dumps(per_kind)}", file=sys.stderr)


def floor_handoff(env: dict[str, str], repo: Path) -> float:
    interp = median_time(lambda: run([PY, "-I", "-c", "pass"], env))
    gitc = median_time(lambda: run(["git", "-C", str(repo), "rev-parse", "HEAD"], env))
    sock = env["AUTORUN_TMUX_SOCKET"]
    subprocess.run(
        ["tmux", "-L", sock, "new-session", "-d", "-s", "floor", "sleep", "60"],
        env=env,
        check=False,
    )
    tm = median_time(
        lambda: run(["tmux", "-L", sock, "display-message", "-p", "x"], env, check=False)
    )
    kill_tmux(env)
    target = repo.parent / "floor.json"

    def fsync_rename() -> None:
        tmpf = target.with_suffix(".tmp")
        with open(tmpf, "w") as fh:
            fh.write("{}")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmpf, target)

    fs = median_time(fsync_rename)
    return interp + 6 * gitc + 2 * tm + fs + WORK_SECONDS


def handoff_segments(log: Path) -> dict[str, list[float]]:
    """Where a chain's hand-off goes, from the stand-in's timestamped log (a
    chain of stages runs one at a time): commit -> ``chain`` done -> the merge
    window's agent up -> the next stage's agent up (the merge, up to its launch)
    -> start.md's line done (the shim, or ``stage start``) -> the next commit."""
    marks: list[tuple[float, str, int]] = []
    merge_for = 0
    for line in log.read_text().splitlines():
        parts = line.split(" ", 2)
        if len(parts) != 3:
            continue
        t, text = float(parts[0]), parts[2]
        words = text.split()
        if text.startswith("stage ") and text.endswith("committed; merging"):
            merge_for = int(words[1])
            marks.append((t, "commit", merge_for))
        elif text.startswith("stage ") and " chain exit " in text:
            marks.append((t, "chained", int(words[1])))
        elif text.startswith("stand-in agent: prompt='/autorun:merge"):
            marks.append((t, "merge agent", merge_for))
        elif text.startswith("stand-in agent: prompt='/autorun:start "):
            name = text.rsplit("/", 1)[-1]
            if name.startswith("stage-"):
                marks.append((t, "agent", int(name.split("-")[1])))
        elif text.startswith("stage ") and " started in " in text:
            marks.append((t, "started", int(words[1])))
    at = {(what, n): t for t, what, n in marks}
    # A chain to the merge merges in place (autorun_py/chain.py): the merge and the
    # next stage's launch are inside the chain; a merge window (its agent, then its
    # merge) appears only when one is needed.
    steps = [
        ("chain, its merge and launch (commit -> chain done)", ("commit", 0), ("chained", 0)),
        ("commit -> the next stage's agent up", ("commit", 0), ("agent", 1)),
        ("merge window's agent up", ("chained", 0), ("merge agent", 0)),
        ("merge window, up to the next agent's start", ("merge agent", 0), ("agent", 1)),
        ("start line (agent up -> its context printed)", ("agent", 1), ("started", 1)),
        ("the work and its commit", ("started", 1), ("commit", 1)),
    ]
    out: dict[str, list[float]] = {}
    stages = sorted({n for _, what, n in marks if what == "commit"})
    for n in stages:
        for label, (a, da), (b, db) in steps:
            if (a, n + da) in at and (b, n + db) in at:
                out.setdefault(label, []).append(at[(b, n + db)] - at[(a, n + da)])
    return out


def _handoff_gaps(standin_log: Path) -> list[float]:
    commits: dict[int, float] = {}
    for line in standin_log.read_text().splitlines():
        parts = line.split(" ", 2)
        if (
            len(parts) == 3
            and parts[2].startswith("stage ")
            and parts[2].endswith("committed; merging")
        ):
            commits[int(parts[2].split()[1])] = float(parts[0])
    gaps = [commits[i + 1] - commits[i] for i in range(1, 6) if i in commits and i + 1 in commits]
    if len(gaps) != 5:
        raise SystemExit(f"chain: expected 5 hand-offs, saw {len(gaps)}")
    return gaps


def _standin_start(run_env: dict[str, str]) -> float:
    """The model's own start, which is in the hand-off but not in its floor: the
    stand-in started as the launch starts it (the same interpreter), with nothing
    to do (median s)."""
    env = dict(run_env, AUTORUN_STANDIN_LOG="")
    argv = [run_env["AUTORUN_CLAUDE"], "-m", "autorun_py.standin", "--version"]
    return median_time(lambda: run(argv, env))


UP = "commit -> the next stage's agent up"
START_LINE = "start line (agent up -> its context printed)"
WORK = "the work and its commit"


def chain_handoff(tmp: Path, rounds: int) -> None:
    """``rounds`` chains of 6 stages, each followed by its floor: this machine's
    speed drifts by a third within minutes, so the goal is on the median of the
    rounds' ratios (each hand-off against the floor measured right after it).

    Two info rows split the hand-off between the engine and the model, per round:
    the engine's part (commit -> the next agent up, less the stand-in's own start
    with nothing to do, plus the start line) against the floor without the work;
    and the hand-off against the floor plus the model's own part (the stand-in's
    start, and its commit's git calls: the work-and-commit segment beyond the
    work)."""
    values: list[float] = []
    floors: list[float] = []
    ratios: list[float] = []
    engine_parts: list[float] = []
    engine_ratios: list[float] = []
    model_ratios: list[float] = []
    agents: list[float] = []
    segments: dict[str, list[float]] = {}
    for i in range(rounds):
        res = orchestrate_run(tmp / f"chain-{i}", 6, chain=True, max_parallel=1, record=False)
        value = statistics.median(_handoff_gaps(res["standin_log"]))
        floor = floor_handoff(res["env"], res["repo"])
        seg = handoff_segments(res["standin_log"])
        for label, times in seg.items():
            segments.setdefault(label, []).extend(times)
        agent = _standin_start(res["env"])
        med = {label: statistics.median(times) for label, times in seg.items()}
        engine_part = med[UP] - agent + med[START_LINE]
        values.append(value)
        floors.append(floor)
        agents.append(agent)
        ratios.append(value / floor)
        engine_parts.append(engine_part)
        engine_ratios.append(engine_part / (floor - WORK_SECONDS))
        model_ratios.append(value / (floor + agent + med[WORK] - WORK_SECONDS))
    med_ratio = statistics.median(ratios)
    of = f" (median of {rounds} rounds' ratios)" if rounds > 1 else ""
    row(
        "chain: commit -> next stage's commit (median s)",
        statistics.median(values),
        statistics.median(floors),
        "info",
        None,
    )
    row(f"chain: hand-off / its floor{of}", med_ratio, None, "<= 2.5", med_ratio <= 2.5)
    for label, times in segments.items():
        row(f"chain, of which: {label} (median s)", statistics.median(times), None, "info", None)
    row(
        "chain, of which: the stand-in's own start, with nothing to do (median s)",
        statistics.median(agents),
        None,
        "info",
        None,
    )
    row(
        "chain: the engine's part (agent up, less the stand-in's start, + start line; s)",
        statistics.median(engine_parts),
        None,
        "info",
        None,
    )
    row(
        f"chain: the engine's part / the floor without the work{of}",
        statistics.median(engine_ratios),
        None,
        "info",
        None,
    )
    row(
        f"chain: hand-off / (floor + the stand-in's own start and commit){of}",
        statistics.median(model_ratios),
        None,
        "info",
        None,
    )


def fake_history(env: dict[str, str], tmp: Path, runs: int, stages: int) -> None:
    """``runs`` earlier, finished ``stages``-stage runs under $AUTORUN_HOME."""
    repo = make_repo(tmp / "history-repo", env)
    plan = repo / "history.md"
    plan.write_text(plan_text(stages))
    out = engine(env, "orchestrate", str(plan), "--no-launch", "--no-monitor", "--json", cwd=repo)
    orch = Path(json.loads(out.stdout)["orch_dir"])
    status = json.loads((orch / "status.json").read_text())
    head = run(["git", "-C", str(repo), "rev-parse", "HEAD"], env).stdout.strip()
    status["status"] = "completed"
    status["completed_at"] = status.get("created_at")
    for st in status["stages"].values():
        st["status"] = "completed"
        st["merge_commit"] = head
    (orch / "status.json").write_text(json.dumps(status, indent=2))
    for i in range(runs - 1):
        dst = orch.parent / f"{orch.name}-h{i}"
        shutil.copytree(orch, dst)
        data = json.loads((dst / "status.json").read_text())
        data["orch_dir"] = str(dst)
        (dst / "status.json").write_text(json.dumps(data, indent=2))


def bookkeeping_setup(tmp: Path, history: int) -> tuple[dict[str, str], Path]:
    """A run with stage 1 in progress in its own worktree (as launch leaves it),
    with ``history`` earlier finished runs beside it: the stage's environment and
    worktree."""
    env = base_env(tmp / f"book-{history}")
    repo = make_repo(tmp / f"book-{history}" / "repo", env)
    if history:
        fake_history(env, tmp / f"book-{history}", history, 200)
    plan = repo / "plan.md"
    plan.write_text(plan_text(2))
    out = engine(env, "orchestrate", str(plan), "--no-launch", "--no-monitor", "--json", cwd=repo)
    orch = json.loads(out.stdout)["orch_dir"]
    wt = Path(env["AUTORUN_HOME"]) / "worktrees" / Path(orch).name / "stage-1"
    status_path = Path(orch) / "status.json"
    data = json.loads(status_path.read_text())
    run(
        [
            "git",
            "-C",
            str(repo),
            "worktree",
            "add",
            "-q",
            "-b",
            f"autorun/{Path(orch).name}/s1",
            str(wt),
            "HEAD",
        ],
        env,
    )
    st = data["stages"]["1"]
    st.update(
        {"status": "in_progress", "worktree": str(wt), "branch": f"autorun/{Path(orch).name}/s1"}
    )
    status_path.write_text(json.dumps(data, indent=2))
    return dict(env, AUTORUN_ORCH_DIR=orch, AUTORUN_STAGE="1"), wt


def bookkeeping(tmp: Path, history: int, rounds: int) -> None:
    """The bookkeeping calls with no history and with ``history`` earlier runs,
    measured interleaved (one of each per round, the median of the rounds): a
    shared machine's load shifts between cases measured minutes apart."""
    cases = {h: bookkeeping_setup(tmp, h) for h in (0, history)}
    times: dict[tuple[int, str], list[float]] = {}

    calls = {
        "interp": [PY, "-I", "-c", "pass"],
        "phase": [PY, "-I", "-m", "autorun_py", "phase", "implement", "started"],
        "context": [PY, "-I", "-m", "autorun_py", "context", "--json"],
    }
    for _ in range(rounds):
        for h, (stage_env, wt) in cases.items():
            for call, argv in calls.items():
                t0 = time.perf_counter()
                run(argv, stage_env, cwd=wt)
                times.setdefault((h, call), []).append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    interp = statistics.median(times[(0, "interp")] + times[(history, "interp")])
    for h in (0, history):
        label = f"history={h}"
        phase, ctx = med[(h, "phase")], med[(h, "context")]
        row(
            f"{label}: `phase PHASE started` (s)",
            phase,
            interp,
            "<= 2.5x interpreter",
            phase <= 2.5 * interp,
        )
        row(f"{label}: `context` (s)", ctx, interp, "<= 2.5x interpreter", ctx <= 2.5 * interp)
    for call in ("phase", "context"):
        with_h, none = med[(history, call)], med[(0, call)]
        row(
            f"`{call}` with {history} earlier runs / none (ratio of the medians)",
            with_h,
            none,
            "info",
            None,
        )
        # The goal on the rounds' paired ratios (each round's two calls a few ms
        # apart): a ratio of medians moved 1.01-1.12 between runs of 31 rounds
        # on this machine while the median of the paired ratios stayed 1.00-1.01.
        paired = statistics.median(a / b for a, b in zip(times[(history, call)], times[(0, call)]))
        row(
            f"`{call}` with {history} earlier runs / none (median of {rounds} rounds' ratios)",
            paired,
            None,
            "<= 1.1",
            paired <= 1.1,
        )


def merge_repo(tmp: Path, worktrees: int) -> tuple[dict[str, str], Path]:
    """A repository with ``worktrees`` other (detached) worktrees, and its env."""
    base = tmp / f"merge-{worktrees}"
    env = base_env(base)
    repo = make_repo(base / "repo", env)
    for i in range(worktrees):
        run(
            [
                "git",
                "-C",
                str(repo),
                "worktree",
                "add",
                "-q",
                "--detach",
                str(base / "other" / f"w{i}"),
                "HEAD",
            ],
            env,
        )
    bindir = base / "bin"
    bindir.mkdir()
    real = shutil.which("git") or "/usr/bin/git"
    (bindir / "git").write_text(COUNTING_GIT.format(real=real))
    (bindir / "git").chmod(0o755)
    return env, repo


def merge_once(env: dict[str, str], repo: Path, round_no: int) -> tuple[int, float]:
    """A one-stage run's merge (``autorun merge``, its stage committed): its git
    calls and wall time."""
    base = repo.parent
    plan = repo / f"plan{round_no}.md"
    plan.write_text(plan_text(1).replace("# Bench plan", f"# Bench plan {round_no}"))
    run(["git", "-C", str(repo), "add", "-A"], env)
    run(["git", "-C", str(repo), "commit", "-q", "-m", f"plan {round_no}"], env)
    out = engine(env, "orchestrate", str(plan), "--no-launch", "--no-monitor", "--json", cwd=repo)
    orch = json.loads(out.stdout)["orch_dir"]
    # The stage's session stays up (the stand-in idles at its prompt after its
    # start line): a session killed under it would be recovered as a failed stage.
    env = dict(env, AUTORUN_STANDIN_IDLE="1")
    engine(env, "launch-ready", orch, "--json")
    deadline = time.monotonic() + 120
    # Its start line ran: the prepared start taken (or, in a tree before that, the
    # stage registered by `autorun stage start`).
    taken = Path(orch) / "stages" / "stage-1-start.txt.taken"
    events = Path(orch) / "events.jsonl"
    while True:
        data = json.loads((Path(orch) / "status.json").read_text())
        if taken.exists() or '"stage_registered"' in events.read_text():
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"merge bench: stage 1 never started: {data['stages']['1']}")
        time.sleep(0.1)
    wt = Path(data["stages"]["1"]["worktree"])
    (wt / f"work{round_no}.txt").write_text("work\n")
    run(["git", "-C", str(wt), "add", "-A"], env)
    run(["git", "-C", str(wt), "commit", "-q", "-m", "work"], env)
    gitlog = base / f"git{round_no}.log"
    bindir = base / "bin"
    menv = dict(env, PATH=f"{bindir}{os.pathsep}{env['PATH']}", AUTORUN_BENCH_GITLOG=str(gitlog))
    t0 = time.perf_counter()
    res = engine(menv, "merge", orch, "1", "--json", cwd=repo, check=False)
    wall = time.perf_counter() - t0
    kill_tmux(env)
    if res.returncode != 0:
        raise SystemExit(f"merge (round {round_no}) failed: {res.stderr[-1500:]}")
    return len(gitlog.read_text().splitlines()), wall


def merge_cost(tmp: Path, trees: int, rounds: int) -> None:
    """Merges with no other worktree and with ``trees``, interleaved (one of each per
    round, a fresh one-stage run each time), medians over the rounds."""
    setups = {w: merge_repo(tmp, w) for w in (0, trees)}
    seen: dict[int, list[tuple[int, float]]] = {0: [], trees: []}
    for r in range(rounds):
        for w, (env, repo) in setups.items():
            seen[w].append(merge_once(env, repo, r))
    for w, results in seen.items():
        calls = max(c for c, _ in results)
        wall = statistics.median(t for _, t in results)
        MERGE[w] = (calls, wall)
        row(f"worktrees={w}: git calls per merge", calls, None, "<= 15", calls <= 15)
        row(f"worktrees={w}: merge wall (s, median of {rounds})", wall, None, "info", None)
    # Each round's two merges ran back to back: the median of their ratios does not
    # move with this machine's speed between rounds (a ratio of medians does; it is
    # shown too). One merge's wall varies by +-20% here: hence 15 rounds.
    ratio_of_medians = MERGE[trees][1] / MERGE[0][1]
    row(f"merge wall, {trees} worktrees / none (ratio of the medians)", ratio_of_medians, None,
        "info", None)  # fmt: skip
    paired = statistics.median(b / a for (_, a), (_, b) in zip(seen[0], seen[trees]))
    row(
        f"merge wall, {trees} worktrees / none (median of the {rounds} rounds' ratios)",
        paired,
        None,
        "<= 1.2",
        paired <= 1.2,
    )


MERGE: dict[int, tuple[int, float]] = {}


# One phase-sized update, 15 times, in the run named by argv[1]: the median (s).
TXN_CODE = (
    "import sys, time, statistics\n"
    "from pathlib import Path\n"
    "from autorun_py.state import StatusStore\n"
    "store = StatusStore(Path(sys.argv[1]))\n"
    "ts = []\n"
    "for i in range(15):\n"
    "    t0 = time.perf_counter()\n"
    "    with store.transaction() as txn:\n"
    "        txn.state.stages[1].counters['bench'] = i\n"
    "    ts.append(time.perf_counter() - t0)\n"
    "print(statistics.median(ts))\n"
)


def transaction_cost(tmp: Path, n: int) -> float:
    env = base_env(tmp / f"txn-{n}")
    repo = make_repo(tmp / f"txn-{n}" / "repo", env)
    plan = repo / "plan.md"
    plan.write_text(plan_text(n))
    out = engine(env, "orchestrate", str(plan), "--no-launch", "--no-monitor", "--json", cwd=repo)
    orch = json.loads(out.stdout)["orch_dir"]
    out = run([PY, "-c", TXN_CODE, orch], env)
    return float(out.stdout.strip())


def simulate_cost(tmp: Path, rounds: int = 9) -> tuple[float, float, float]:
    """``simulate`` of a 1,000-stage chain and of a 1,000-stage fan-out, interleaved
    (one of each per round): their medians and the median of the rounds' ratios."""
    env = base_env(tmp / "sim")
    chain, fan = tmp / "sim" / "chain.md", tmp / "sim" / "fan.md"
    chain.write_text(plan_text(1000, chain=True))
    fan.write_text(plan_text(1000))
    code = (
        "import sys, time, statistics\n"
        "from pathlib import Path\n"
        "from autorun_py.plan import load_plan\n"
        "from autorun_py.simulate import simulate\n"
        "deps = []\n"
        "for f in sys.argv[2:]:\n"
        "    plan = load_plan(Path(f))\n"
        "    deps.append({s.number: list(s.depends_on) for s in plan.stages})\n"
        "ts = [[], []]\n"
        "for _ in range(int(sys.argv[1])):\n"
        "    for i, d in enumerate(deps):\n"
        "        dur = {n: 1.0 for n in d}\n"
        "        t0 = time.perf_counter()\n"
        "        simulate(d, dur, schedule='dataflow', max_parallel=8)\n"
        "        ts[i].append(time.perf_counter() - t0)\n"
        "ratio = statistics.median(a / b for a, b in zip(*ts))\n"
        "print(statistics.median(ts[0]), statistics.median(ts[1]), ratio)\n"
    )
    out = run([PY, "-c", code, str(rounds), str(chain), str(fan)], env)
    a, b, r = out.stdout.split()
    return float(a), float(b), float(r)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke check")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument("--root", type=Path, help="the per-stage and hand-off rows of this source tree")
    args = ap.parse_args()
    global ROOT
    if args.root is not None:
        ROOT = args.root.resolve()
        if not (ROOT / "autorun_py" / "__main__.py").is_file():
            raise SystemExit(f"{ROOT}: not an autorun source tree (no autorun_py/__main__.py)")
    sizes = [6] if args.quick else [6, 30, 100]
    history = 20 if args.quick else 150
    trees = 32 if args.quick else 256
    t_start = time.monotonic()
    subprocess.run(
        [PY, "-m", "compileall", "-q", str(ROOT / "autorun_py")], capture_output=True, check=False
    )
    with tempfile.TemporaryDirectory(prefix="autorun-engine-cost-") as td:
        tmp = Path(td)
        for n in sizes:
            print(f"per-stage run, N={n} ...", file=sys.stderr)
            per_stage(tmp, n)
        print("per-stage run, N=6, engine calls with CLAUDECODE=1 ...", file=sys.stderr)
        per_stage(tmp, 6, claude_shell=True)
        print("chain hand-off ...", file=sys.stderr)
        chain_handoff(tmp, rounds=1 if args.quick else 5)
        if args.root is not None:
            return _print(args, t_start)
        print(f"bookkeeping calls, history 0 and {history}, interleaved ...", file=sys.stderr)
        bookkeeping(tmp, history, rounds=11 if args.quick else 31)
        print(f"merges, worktrees 0 and {trees}, interleaved ...", file=sys.stderr)
        merge_cost(tmp, trees, rounds=3 if args.quick else 15)
        print("state transactions ...", file=sys.stderr)
        small, big = transaction_cost(tmp, 6), transaction_cost(tmp, 1000)
        row("state transaction at 6 stages (s)", small, None, "info", None)
        row("state transaction at 1000 stages (s)", big, None, "<= 0.010", big <= 0.010)
        print("simulate ...", file=sys.stderr)
        chain_t, fan_t, sim_ratio = simulate_cost(tmp)
        row("simulate 1000-stage chain (s, median)", chain_t, fan_t, "info", None)
        row(
            "simulate 1000-stage chain / fan-out (median of 9 rounds' ratios)",
            sim_ratio,
            None,
            "<= 1.2",
            sim_ratio <= 1.2,
        )
    return _print(args, t_start)


def _print(args: argparse.Namespace, t_start: float) -> int:
    total = time.monotonic() - t_start
    if args.json:
        print(json.dumps({"rows": ROWS, "seconds": round(total, 1)}, indent=2))
    else:
        print(f"{'figure':64} {'value':>9} {'floor':>9} {'ratio':>7}  {'goal':<20} ok")
        for r in ROWS:
            fl = "" if r["floor"] is None else f"{r['floor']:.4f}"
            ra = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
            ok = "" if r["ok"] is None else ("yes" if r["ok"] else "NO")
            print(f"{r['figure']:64} {r['value']:9.4f} {fl:>9} {ra:>7}  {r['goal']:<20} {ok}")
        print(f"({total:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
