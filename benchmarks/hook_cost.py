"""What the plugin's hooks (hooks/hooks.json) cost a Claude Code session, per call.

Each hook entry is ``test -z "${AUTORUN_STAGE:-}" || exec <shim> hook <Event>``
run by ``sh -c``. Printed, median of N calls each, against ``python -I -c pass``
measured in the same run:

1. outside an autorun stage: the ``sh -c`` guard alone (what every session that
   is not a stage pays);
2. ``python -I -m autorun_py hook Stop`` outside a stage (no status read: the
   environment says no stage);
3. inside a stage whose work is merged (``Stop`` reads status.json, records the
   stop under the status lock, lets it through);
4. inside a stage with committed work not handed over (``Stop`` refuses, with
   git calls for the next step).

    .venv/bin/python benchmarks/hook_cost.py [-n 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _time(argv: list[str], env: dict[str, str], n: int, stdin: str = "{}") -> float:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, input=stdin, env=env, capture_output=True, text=True, check=False)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20)
    n = ap.parse_args().n
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        base = dict(os.environ)
        base.update({"AUTORUN_HOME": f"{tmp}/home", "HOME": tmp, "AUTORUN_ORCH_DIR": ""})
        base.pop("AUTORUN_STAGE", None)
        base["AUTORUN_TMUX_SOCKET"] = f"hookbench{os.getpid()}"
        floor = _time([py, "-I", "-c", "pass"], base, n)
        guard = 'test -z "${AUTORUN_STAGE:-}" || exec false'
        rows = [("sh -c guard, outside a stage", _time(["sh", "-c", guard], base, n))]
        hook = [py, "-I", "-m", "autorun_py", "hook", "Stop"]
        rows.append(("hook Stop, outside a stage", _time(hook, base, n)))
        # A run with one stage (no agent is started: --no-launch), its worktree made
        # by hand, one commit in it.
        repo = Path(tmp, "repo")
        repo.mkdir()
        git = ["git", "-C", str(repo)]
        env = dict(base, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b",
                   GIT_COMMITTER_EMAIL="b@b")  # fmt: skip
        _run([*git, "init", "-q", "-b", "main"], repo, env)
        (repo / "a.txt").write_text("a\n")
        _run([*git, "add", "-A"], repo, env)
        _run([*git, "commit", "-q", "-m", "init"], repo, env)
        plan = Path(tmp, "plan.md")
        plan.write_text("# P\n\n## Stage 1: One\n\n**Dependencies**: None\n\nDo it.\n")
        out = _run(
            [py, "-m", "autorun_py", "orchestrate", str(plan), "--no-launch", "--no-monitor",
             "--json"], repo, env)  # fmt: skip
        orch = Path(json.loads(out)["orch_dir"])
        status = json.loads((orch / "status.json").read_text())
        st = status["stages"]["1"]
        wt = Path(tmp, "wt")
        head = _run([*git, "rev-parse", "HEAD"], repo, env)
        _run(
            [*git, "worktree", "add", "-q", "-b", "autorun/bench/stage-1", str(wt), head], repo, env
        )
        (wt / "b.txt").write_text("b\n")
        _run(["git", "-C", str(wt), "add", "-A"], wt, env)
        _run(["git", "-C", str(wt), "commit", "-q", "-m", "work"], wt, env)
        st.update(status="in_progress", worktree=str(wt), branch="autorun/bench/stage-1",
                  start_commit=head, claude_session_id="sid")  # fmt: skip
        (orch / "status.json").write_text(json.dumps(status))
        stage_env = dict(env, AUTORUN_ORCH_DIR=str(orch), AUTORUN_STAGE="1",
                         AUTORUN_STOP_REFUSALS="1000000")  # fmt: skip
        rows.append(
            ("hook Stop, stage not handed over (refusal)",
             _time(hook, stage_env, n, json.dumps({"session_id": "sid"})))
        )  # fmt: skip
        rows.append(
            ("hook Stop, an older session of the stage",
             _time(hook, stage_env, n, json.dumps({"session_id": "older"})))
        )  # fmt: skip
    print(f"python -I -c pass (floor): {floor * 1000:.1f} ms (median of {n})")
    for name, secs in rows:
        print(f"{name:45} {secs * 1000:7.1f} ms   {secs / floor:5.2f}x floor")


if __name__ == "__main__":
    main()
