"""Random-kill drill: SIGKILL `autorun merge` after random delays, recover, check.

Each round resets one of three real scenarios (tests/killharness.py: the
user's checkout carried forward, the checkout on another branch, and
``merge --continue`` after a resolved conflict), starts ``autorun merge`` as a
real process, SIGKILLs it after a delay drawn uniformly from [0, 1.2 x the
unkilled merge's git phase measured in this run] after its first git call
(so the kills spread over the merge, not over Python's start-up), or, every
other round, 0-15 ms after the start of its git call number k (k drawn
uniformly from the merge's git calls: kills while a git runs, at every point
of the merge), waits for any git it started
to end, recovers with the real CLI (``autorun resume --no-monitor`` when a
merge was in flight, else the merge again) and checks the invariants: the base
never moved backwards or to anything but one merge on it, the stage ends
merged exactly once (one merge commit on the first-parent chain, one
merge_complete event, no intent left), the user's checkout is at exactly the
merged result (untouched when on another branch).

    .venv/bin/python benchmarks/merge_kill_drill.py [--kills 100] [--seed 1] [--json]

Everything lives in a temp dir (AUTORUN_HOME, HOME, a private tmux socket).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _isolate(tmp: Path) -> None:
    home = tmp / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(
        "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n"
    )
    os.environ.update(
        HOME=str(home),
        AUTORUN_HOME=str(home / ".autorun"),
        GIT_AUTHOR_NAME="drill",
        GIT_AUTHOR_EMAIL="drill@autorun.invalid",
        GIT_COMMITTER_NAME="drill",
        GIT_COMMITTER_EMAIL="drill@autorun.invalid",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        AUTORUN_TMUX_SOCKET=f"autorun-drill-{uuid.uuid4().hex[:12]}",
        AUTORUN_CLAUDE="true",
    )
    for var in ("TMUX", "TMUX_PANE", "CLAUDECODE"):
        os.environ.pop(var, None)


def _state_after_kill(sc: Any) -> str:
    """Where the kill landed, from what it left behind."""
    raw = json.loads((sc.orch / "status.json").read_text())
    st = raw["stages"]["1"]
    if st["status"] == "completed":
        return "after_completion"
    intent = st.get("merge_intent")
    if intent:
        return f"intent:{intent.get('step')}"
    from tests.killharness import git

    if git(sc.repo, "rev-parse", "main") != sc.base0:
        return "base_moved_unrecorded"
    return "before_any_change"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=100, help="rounds that end in a SIGKILL")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    opts = ap.parse_args()
    rng = random.Random(opts.seed)

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        _isolate(tmp)
        from tests.killharness import KINDS, Scenario

        scenarios = {k: Scenario(tmp / k, k) for k in KINDS}
        duration: dict[str, float] = {}
        steps: dict[str, int] = {}
        for kind, sc in scenarios.items():
            steps[kind] = len(sc.record_steps())
            # the git phase: from the first git call to the end
            times = []
            for _ in range(2):
                sc.reset()
                env = dict(os.environ)
                env.update(sc.wrapped_env(0))
                count = Path(env["KILLGIT_COUNT"])
                proc = subprocess.Popen(
                    [sys.executable, "-m", "autorun_py", *sc.merge_argv()],
                    cwd=sc.repo,
                    env=env,
                    stdout=subprocess.DEVNULL,
                )
                while not count.exists() and proc.poll() is None:
                    time.sleep(0.001)
                t0 = time.monotonic()
                proc.wait()
                times.append(time.monotonic() - t0)
            duration[kind] = min(times)

        rounds = kills = mid = 0
        landed: Counter[str] = Counter()
        by_mode: Counter[str] = Counter()
        recoveries: Counter[str] = Counter()
        violations: list[dict[str, Any]] = []
        t_start = time.monotonic()
        kinds = list(KINDS)
        while kills < opts.kills:
            kind = kinds[rounds % len(kinds)]
            rounds += 1
            sc = scenarios[kind]
            sc.reset()
            if rounds % 2:
                mode = "uniform"
                delay = rng.uniform(0, 1.2 * duration[kind])
                killed, git_calls = sc.kill_after(delay)
            else:
                mode = "anchored"
                anchor = rng.randint(1, steps[kind])
                delay = rng.uniform(0, 0.015)
                killed, git_calls = sc.kill_after(delay, from_git_call=anchor)
            bad = []
            moved = sc.base_ok_after_kill()
            if moved:
                bad.append(moved)
            where = _state_after_kill(sc) if killed else "not_killed"
            if killed:
                kills += 1
                landed[where] += 1
                by_mode[mode] += 1
                if where not in ("before_any_change", "after_completion"):
                    mid += 1
            try:
                how = sc.recover()
            except (AssertionError, subprocess.SubprocessError) as exc:
                how = "failed"
                bad.append(f"recovery failed: {exc}")
            recoveries[how] += 1
            bad += sc.check()
            if bad:
                violations.append(
                    {
                        "kind": kind,
                        "mode": mode,
                        "delay_s": round(delay, 4),
                        "git_calls": git_calls,
                        "landed": where,
                        "violations": bad,
                    }
                )
        elapsed = time.monotonic() - t_start
        subprocess.run(
            ["tmux", "-L", os.environ["AUTORUN_TMUX_SOCKET"], "kill-server"],
            capture_output=True,
            check=False,
        )

    figures = {
        "rounds": rounds,
        "kills": kills,
        "kills_mid_merge": mid,
        "kills_by_mode": dict(sorted(by_mode.items())),
        "landed": dict(sorted(landed.items())),
        "recoveries": dict(sorted(recoveries.items())),
        "invariant_violations": len(violations),
        "violation_details": violations[:10],
        "unkilled_merge_s": {k: round(v, 3) for k, v in duration.items()},
        "git_steps_per_merge": steps,
        "elapsed_s": round(elapsed, 1),
        "seed": opts.seed,
    }
    if opts.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"rounds: {rounds}, kills: {kills}, kills that landed mid-merge: {mid}")
        print("kills by delay mode: " + ", ".join(f"{k} {v}" for k, v in sorted(by_mode.items())))
        print("where the kills landed: " + ", ".join(f"{k} {v}" for k, v in sorted(landed.items())))
        print("recoveries: " + ", ".join(f"{k} {v}" for k, v in sorted(recoveries.items())))
        print(f"invariant violations: {len(violations)}")
        for v in violations[:10]:
            print(f"  {v}")
        print(
            "unkilled merge: "
            + ", ".join(f"{k} {duration[k]:.2f} s ({steps[k]} git calls)" for k in KINDS)
            + " (from the first git call)"
            + f"; drill took {elapsed:.0f} s"
        )
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
