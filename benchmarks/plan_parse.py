"""Benchmark: parse + validate + waves of a large generated master plan, and CLI start-up.

Generates a plan of N stages (default 2,000) in random order, each depending on up
to 4 random earlier stages, with the dependency lines in mixed styles and scopes
holding lists and fenced code; then times ``parse_plan`` (markdown tokens, stage
extraction, validation, cycle check, waves, critical path) and, separately,
``compute_waves``. Also times ``autorun --version`` and ``autorun plan check``
against a bare ``python -c pass`` of the same interpreter. Every figure is
measured in this run.

    .venv/bin/python benchmarks/plan_parse.py [--stages 2000] [--seed 1] [--runs 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autorun_py import graph
from autorun_py.plan import parse_plan

DEP_STYLES = (
    lambda ds: "**Dependencies**: " + (", ".join(f"Stage {d}" for d in ds) or "None"),
    lambda ds: "Depends on: " + (", ".join(str(d) for d in ds) or "nothing"),
    lambda ds: "- Depends on: " + (("Stages " + " and ".join(map(str, ds))) if ds else "—"),
)


def generate(stages: int, seed: int) -> str:
    rng = random.Random(seed)
    sections = []
    for n in range(1, stages + 1):
        deps = sorted(rng.sample(range(max(1, n - 50), n), min(n - 1, rng.randint(0, 4))))
        style = DEP_STYLES[n % len(DEP_STYLES)]
        sections.append(
            f"## Stage {n}: Component {n} — `mod_{n}`\n{style(deps)}\n\n"
            f"Build **component {n}** and its tests.\n\n- parse the input\n- emit events\n\n"
            f"```python\n# Stage {n + stages}: not a stage\nprint({n})\n```\n"
        )
    rng.shuffle(sections)
    return f"# Generated plan ({stages} stages)\n\n" + "\n".join(sections)


def timed(fn: object, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - t0)
    return out


def wall(argv: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stages", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--startup-runs", type=int, default=15)
    args = ap.parse_args()

    text = generate(args.stages, args.seed)
    path = Path("/tmp/generated-plan.md")
    plan = parse_plan(text, path)
    edges = sum(len(s.depends_on) for s in plan.stages)
    assert len(plan.stages) == args.stages
    print(
        f"plan: {args.stages} stages, {edges} dependencies, {len(text.splitlines())} lines, "
        f"{len(text) / 1024:.0f} KiB; {len(plan.waves)} waves, critical path "
        f"{len(plan.critical_path)} stages"
    )
    parse = timed(lambda: parse_plan(text, path), args.runs)
    deps = plan.deps()
    waves = timed(lambda: graph.compute_waves(deps), args.runs)
    print(
        f"parse+validate+waves+critical path: median {statistics.median(parse) * 1000:.0f} ms, "
        f"best {min(parse) * 1000:.0f} ms, worst {max(parse) * 1000:.0f} ms ({args.runs} runs)"
    )
    print(f"compute_waves alone: median {statistics.median(waves) * 1000:.1f} ms")

    exe = Path(sys.executable)
    autorun = exe.with_name("autorun")
    cli = [str(autorun)] if autorun.exists() else [str(exe), "-m", "autorun_py"]
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "plan.md"
        small.write_text(generate(10, args.seed), encoding="utf-8")
        big = Path(tmp) / "big.md"
        big.write_text(text, encoding="utf-8")
        n = args.startup_runs
        base = wall([str(exe), "-c", "pass"], n)
        version = wall([*cli, "--version"], n)
        check = wall([*cli, "plan", "check", str(small), "--json"], n)
        check_big = wall([*cli, "plan", "check", str(big), "--json"], max(3, n // 5))
    print(f"start-up (median of {n}, interpreter {exe}):")
    print(f"  python -c pass                      {base * 1000:6.0f} ms")
    print(f"  autorun --version                   {version * 1000:6.0f} ms")
    print(f"  autorun plan check (10 stages)      {check * 1000:6.0f} ms")
    print(f"  autorun plan check ({args.stages} stages)  {check_big * 1000:6.0f} ms")


if __name__ == "__main__":
    main()
