"""Benchmark the scheduler on a fixed-seed corpus of random stage graphs.

For every graph (5 to 60 stages; each stage depends on a random subset of the
earlier ones, at a density drawn per graph; lognormal durations) it simulates
the run under ``dataflow`` and under the seed's ``waves`` barrier, without a
cap and with caps 2 and 4, and prints the median and worst ratio of makespan
to the lower bound ``max(critical path, total work / cap)``, then the ratio of
the waves makespan to the dataflow makespan.

Two extra dataflow rows show what the priority is worth: ``dataflow~est``
ranks by the remaining path computed from estimates that are off by a
lognormal factor (sigma 0.5), as a real plan's estimates would be;
``dataflow#`` ignores the remaining path and starts ready stages in stage
number order.

    .venv/bin/python benchmarks/schedule.py [--seed 20240604] [--dags 240]

Exits 1 if dataflow misses the acceptance bar: exactly the bound without a
cap, within 10% of it at the median with a cap.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Sequence

from autorun_py.graph import remaining_path
from autorun_py.simulate import simulate

CAPS: tuple[int | None, ...] = (None, 2, 4)


def random_dag(rng: random.Random) -> tuple[dict[int, tuple[int, ...]], dict[int, float]]:
    n = rng.randint(5, 60)
    # Edge probability between 0.02 (wide, nearly independent stages) and 0.5 (near-chains).
    density = 0.02 * (25.0 ** rng.random())
    deps = {i: tuple(j for j in range(1, i) if rng.random() < density) for i in range(1, n + 1)}
    durations = {i: rng.lognormvariate(0.0, 1.0) for i in deps}
    return deps, durations


def cap_name(cap: int | None) -> str:
    return "unlimited" if cap is None else f"cap {cap}"


def summary(xs: Sequence[float]) -> str:
    return f"{statistics.median(xs):7.4f} {max(xs):7.4f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=20240604)
    ap.add_argument("--dags", type=int, default=240)
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    corpus = [random_dag(rng) for _ in range(args.dags)]
    # Estimates as a plan would give them: the true duration off by a lognormal factor.
    noisy = [{n: d * rng.lognormvariate(0.0, 0.5) for n, d in dur.items()} for _, dur in corpus]

    rows = ("dataflow", "dataflow~est", "dataflow#", "waves")
    ratios: dict[tuple[str, int | None], list[float]] = {(r, c): [] for r in rows for c in CAPS}
    waves_over_flow: dict[int | None, list[float]] = {c: [] for c in CAPS}
    exact = 0
    sims = 0
    t0 = time.perf_counter()
    for (deps, dur), est in zip(corpus, noisy):
        prio = {
            "dataflow": remaining_path(deps, dur),
            "dataflow~est": remaining_path(deps, est),
            "dataflow#": {},
        }
        for cap in CAPS:
            flow = None
            for row in rows:
                schedule = "waves" if row == "waves" else "dataflow"
                res = simulate(
                    deps,
                    dur,
                    schedule=schedule,
                    max_parallel=cap,
                    priority=prio.get(row, prio["dataflow"]),
                )
                sims += 1
                ratios[(row, cap)].append(res.ratio)
                if row == "dataflow":
                    flow = res
                    if cap is None and res.makespan == res.lower_bound:
                        exact += 1
                if row == "waves" and flow is not None:
                    waves_over_flow[cap].append(res.makespan / flow.makespan)
    elapsed = time.perf_counter() - t0

    sizes = [len(d) for d, _ in corpus]
    print(
        f"corpus: {len(corpus)} random DAGs (seed {args.seed}), {min(sizes)}-{max(sizes)} stages "
        f"(median {statistics.median(sizes):g}), lognormal(0, 1) durations"
    )
    print(f"{sims} simulations in {elapsed:.2f} s")
    print()
    print("makespan / lower bound, lower bound = max(critical path, total work / cap)")
    head = "".join(f" | {cap_name(c):>15}" for c in CAPS)
    print(f"{'schedule':<13}{head}")
    print(f"{'':<13}" + f" | {'median':>7} {'worst':>7}" * len(CAPS))
    for row in rows:
        print(f"{row:<13}" + "".join(f" | {summary(ratios[(row, c)])}" for c in CAPS))
    print()
    print("waves makespan / dataflow makespan (same graph, same cap)")
    print(f"{'':<13}{head}")
    print(f"{'median worst':<13}" + "".join(f" | {summary(waves_over_flow[c])}" for c in CAPS))
    print(f"{'best':<13}" + "".join(f" | {min(waves_over_flow[c]):15.4f}" for c in CAPS))
    slower = [sum(x > 1 for x in waves_over_flow[c]) for c in CAPS]
    print(f"{'waves slower':<13}" + "".join(f" | {f'{k}/{len(corpus)}':>15}" for k in slower))
    print()
    print(f"dataflow without a cap equals the bound exactly on {exact}/{len(corpus)} graphs")

    ok = exact == len(corpus)
    for cap in CAPS[1:]:
        med = statistics.median(ratios[("dataflow", cap)])
        ok = ok and med <= 1.10
    print("acceptance (exact unlimited, median within 10% with a cap):", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
