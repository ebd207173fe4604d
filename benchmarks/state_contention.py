"""16 processes x 100 locked status updates while a reader parses status.json in a loop.

Prints updates per second and checks nothing was lost:
    python benchmarks/state_contention.py [--writers 16] [--updates 100]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writers", type=int, default=16)
    ap.add_argument("--updates", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AUTORUN_HOME"] = str(Path(tmp) / "home")
        from autorun_py.plan import load_plan
        from autorun_py.rundir import create_orchestration
        from benchmarks.contention import drill

        repo = Path(tmp) / "repo"
        repo.mkdir()
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "b",
            "GIT_AUTHOR_EMAIL": "b@x",
            "GIT_COMMITTER_NAME": "b",
            "GIT_COMMITTER_EMAIL": "b@x",
        }
        for cmd in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "init"]):
            subprocess.run(["git", "-C", str(repo), *cmd], check=True, env=env)
        plan = repo / "plan.md"
        plan.write_text(
            "".join(
                f"## Stage {i}: Stage {i}\nDepends on: none\n\nWork {i}.\n\n"
                for i in range(1, args.writers + 1)
            )
        )
        orch = Path(create_orchestration(load_plan(plan), repo).orch_dir)
        r = drill(orch, list(range(1, args.writers + 1)), args.updates)
    total = r.writers * r.updates_each
    ok = (
        r.revision_delta == total
        and r.phase_events == total
        and r.bad_reads == 0
        and r.bad_event_lines == 0
    )
    print(f"writers={r.writers} updates/writer={r.updates_each} total={total}")
    print(f"elapsed={r.seconds:.2f}s  updates/s={r.updates_per_second:.0f}")
    print(
        f"revisions={r.revision_delta} phase_events={r.phase_events} "
        f"reader: {r.reads} reads, {r.bad_reads} unparsable; bad event lines={r.bad_event_lines}"
    )
    print("consistent: " + ("yes" if ok else "NO"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
