"""A state transaction (issue 16 goal 4) against an earlier commit, in one run.

The transaction is ``benchmarks/engine_cost.py``'s row: the median of 15
transactions that each change one stage's counter, in one process, on a run of
6 and of 1,000 independent stages (made by ``orchestrate --no-launch``). Each
tree's timing process runs with that tree's package (``PYTHONPATH``), the trees
interleaved round by round (load on the machine slows both alike). Printed per
size: each tree's figure (the median of the rounds), and this tree's / the
earlier one's; and per tree, 1,000 stages / 6 stages (how far from flat in N).

    .venv/bin/python benchmarks/state_transaction.py [--base REV] [--rounds 3]

``--base`` defaults to ``398dc27`` (main before the state package).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine_cost as ec  # noqa: E402  (the benchmark this row comes from)
from startup import export  # noqa: E402

CODE = ec.TXN_CODE  # the very update engine_cost times


def make_run(tmp: Path, n: int) -> tuple[dict[str, str], str]:
    env = ec.base_env(tmp / f"run-{n}")
    repo = ec.make_repo(tmp / f"run-{n}" / "repo", env)
    plan = repo / "plan.md"
    plan.write_text(ec.plan_text(n))
    out = ec.engine(
        env, "orchestrate", str(plan), "--no-launch", "--no-monitor", "--json", cwd=repo
    )

    return env, json.loads(out.stdout)["orch_dir"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="398dc27", help="the earlier commit (default 398dc27)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="autorun-state-txn-") as td:
        tmp = Path(td)
        trees = {"this": ec.ROOT, args.base: export(args.base, tmp / "base")}
        runs = {n: make_run(tmp, n) for n in (6, 1000)}
        times: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for n, (env, orch) in runs.items():
                for name, tree in trees.items():
                    # a copy of the run per tree and round: each starts from the same file
                    copy = tmp / f"copy-{n}"
                    shutil.rmtree(copy, ignore_errors=True)
                    shutil.copytree(orch, copy)
                    tree_env = {**env, "PYTHONPATH": str(tree)}
                    out = ec.run([ec.PY, "-c", CODE, str(copy)], tree_env, cwd=tmp)
                    times.setdefault((name, n), []).append(float(out.stdout))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{'figure':52} {'value':>9} {'vs':>9} {'ratio':>7}")
    for n in (6, 1000):
        this, base = med[("this", n)], med[(args.base, n)]
        figure = f"transaction at {n} stages (s): this / {args.base}"
        print(f"{figure:52} {this:9.4f} {base:9.4f} {this / base:7.2f}")
    for name in trees:
        big, small = med[(name, 1000)], med[(name, 6)]
        print(f"{f'{name}: 1000 stages / 6 stages':52} {big:9.4f} {small:9.4f} {big / small:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
