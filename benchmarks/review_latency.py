"""How fast `autorun review wait` returns after the user saves.

For each of N saves: write a fresh review file, start
``python -m autorun_py review wait FILE --no-open --json --settle 0`` as a
subprocess, wait until it is waiting (its record under review/.waiting/ exists),
save every answer (``--settle 0``: the wake-up itself is measured, not the
autosave grace period)
(alternately in place and by write-new-then-rename, as vim and IDEs do), and
time from the end of the save to the process's exit. Prints figures measured
in this run. State goes to a temporary AUTORUN_HOME; no desktop notification
or tmux server is touched.

    .venv/bin/python benchmarks/review_latency.py [--saves 50] [--poll]

``--poll`` forces the polling fallback (AUTORUN_REVIEW_POLL=1) for comparison.

The baseline is measured in the same run (``--baseline-saves``, default 20): the
reference's waiter, a shell loop that checks the file's modification time every
2 seconds (given nanosecond mtimes, so it never misses a save within the same
second), with each save at a random moment of its poll cycle. The run prints the
ratio of the reference's median to ours.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--saves", type=int, default=50)
    ap.add_argument("--poll", action="store_true", help="force the polling fallback")
    ap.add_argument("--baseline-saves", type=int, default=20, help="saves against the reference")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="autorun-bench-") as tmp:
        home = Path(tmp) / "autorun"
        env = dict(os.environ)
        env["AUTORUN_HOME"] = str(home)
        env["AUTORUN_TMUX_SOCKET"] = f"autorun-bench-{os.getpid()}"  # no server: no message
        for var in ("DISPLAY", "WAYLAND_DISPLAY", "TMUX", "TMUX_PANE"):
            env.pop(var, None)
        if args.poll:
            env["AUTORUN_REVIEW_POLL"] = "1"
        else:
            env.pop("AUTORUN_REVIEW_POLL", None)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        os.environ["AUTORUN_HOME"] = str(home)
        sys.path.insert(0, str(ROOT))
        from autorun_py.review import new_review
        from autorun_py.review.format import end_marker, read_meta, start_marker

        waiting = home / "review" / ".waiting"
        latencies: list[float] = []
        kinds = {"in-place": [], "rename": []}  # type: dict[str, list[float]]
        for i in range(args.saves):
            path = new_review(f"bench {i}", ["Which database?", "Which port?"], "Benchmark.")
            text = path.read_text()
            proc = subprocess.Popen(
                [sys.executable, "-m", "autorun_py", "review", "wait", str(path)]
                + ["--no-open", "--json", "--timeout", "60", "--settle", "0"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
            deadline = time.monotonic() + 30
            while not list(waiting.glob(f"{path.name}.*.json")):
                if proc.poll() is not None or time.monotonic() > deadline:
                    print(proc.communicate(), file=sys.stderr)
                    raise SystemExit("review wait did not start")
                time.sleep(0.01)
            time.sleep(0.05)  # let it settle into its wait
            meta = read_meta(text)
            assert meta is not None
            answered = text
            for n in (1, 2):
                start, end = start_marker(n, meta.nonce), end_marker(n, meta.nonce)
                answered = answered.replace(f"{start}\n\n{end}", f"{start}\nanswer {i}\n{end}")
            kind = "in-place" if i % 2 == 0 else "rename"
            if kind == "in-place":
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(answered)
            else:
                tmp_file = path.with_name(f".{path.name}.swp")
                tmp_file.write_text(answered, encoding="utf-8")
                os.replace(tmp_file, path)
            saved = time.perf_counter()
            out, err = proc.communicate(timeout=60)
            done = time.perf_counter()
            if proc.returncode != 0 or f"answer {i}".encode() not in out:
                raise SystemExit(f"save {i}: exit {proc.returncode}: {err.decode()}")
            latencies.append(done - saved)
            kinds[kind].append(done - saved)

        baseline = reference_latencies(new_review, args.baseline_saves)

    def ms(x: float) -> str:
        return f"{x * 1000:.1f} ms"

    mode = "polling fallback (0.1 s)" if args.poll else "native observer (watchdog)"
    print(f"review wait latency, save -> process exit, {len(latencies)} saves, {mode}")
    print(f"  median {ms(statistics.median(latencies))}")
    print(f"  mean   {ms(statistics.mean(latencies))}")
    print(f"  p90    {ms(sorted(latencies)[int(0.9 * (len(latencies) - 1))])}")
    print(f"  worst  {ms(max(latencies))}")
    print(f"  best   {ms(min(latencies))}")
    for kind, values in kinds.items():
        if values:
            med, worst = ms(statistics.median(values)), ms(max(values))
            print(f"  {kind:8s} median {med}, worst {worst} ({len(values)} saves)")
    ok = statistics.median(latencies) < 0.2
    print(f"  target: median < 200 ms: {'met' if ok else 'NOT met'}")
    if baseline:
        ref = statistics.median(baseline)
        print(
            f"reference (mtime checked every 2 s), {len(baseline)} saves: median {ms(ref)}, "
            f"worst {ms(max(baseline))}"
        )
        print(f"  ratio reference/autorun (median): {ref / statistics.median(latencies):.1f}x")
    return 0 if ok else 1


REFERENCE_WAITER = r"""
f=$1
m0=$(stat -c %.9Y "$f")
while sleep 2; do
    m=$(stat -c %.9Y "$f" 2>/dev/null || echo gone)
    [ "$m" != "$m0" ] && exit 0
done
"""


def reference_latencies(new_review: Any, saves: int) -> list[float]:
    """The reference's wait: poll the file's mtime every 2 s, from a shell loop."""
    import random

    rng = random.Random(7)
    out: list[float] = []
    for i in range(saves):
        path = new_review(f"reference {i}", ["Which database?"], "Baseline.")
        proc = subprocess.Popen(["bash", "-c", REFERENCE_WAITER, "ref", str(path)])
        time.sleep(0.1 + rng.random() * 2.0)  # a random moment of its 2 s cycle
        path.write_text(path.read_text().replace("**Your answer**:", "**Your answer**: x"))
        saved = time.perf_counter()
        proc.wait(timeout=10)
        out.append(time.perf_counter() - saved)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
