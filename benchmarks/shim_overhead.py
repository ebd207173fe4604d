"""What scripts/autorun costs: the first call (builds the venv) and later calls,
against running the engine's interpreter directly. One run, figures printed.

    .venv/bin/python benchmarks/shim_overhead.py [--calls 20]

Installs come from a wheelhouse rebuilt from this interpreter's packages (no
network), into a scratch copy of the plugin.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from e2e.harness import build_plugin  # noqa: E402
from e2e.wheelhouse import build_wheelhouse, offline_pip_env  # noqa: E402


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shim-bench-") as tmp:
        base = Path(tmp)
        root = build_plugin(base / "plugin")
        env = dict(os.environ, AUTORUN_HOME=str(base / "home"))
        env.update(offline_pip_env(build_wheelhouse(base / "wheels")))
        shim = [str(root / "scripts" / "autorun"), "--data-dir", str(base / "data")]
        direct = [str(base / "data" / "venv" / "bin" / "python"), "-I", "-m", "autorun_py"]

        first = timed([*shim, "--version"], env)
        via_shim = [timed([*shim, "--version"], env) for _ in range(args.calls)]
        via_python = [timed([*direct, "--version"], env) for _ in range(args.calls)]

        med_shim = statistics.median(via_shim)
        med_direct = statistics.median(via_python)
        rows = [
            ("first call (creates the venv, offline wheelhouse)", f"{first:.2f} s"),
            ("later calls via the shim (median)", f"{med_shim * 1000:.1f} ms"),
            ("the venv's python directly (median)", f"{med_direct * 1000:.1f} ms"),
            ("shim overhead", f"{(med_shim - med_direct) * 1000:.1f} ms"),
        ]
        for label, value in rows:
            print(f"{label:<52} {value}")
        print(f"({args.calls} calls each, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
