"""What the plugin's UserPromptSubmit hook (scripts/prompt-hook) costs per prompt.

Claude Code runs it on every prompt of every session where the plugin is
installed. Measured in one run, N calls each, the hook's JSON on stdin:

- ``true``: the floor (starting any process);
- the hook on an ordinary prompt (the common case: one ``cat``, a pattern match);
- the hook on an ``/autorun:status`` prompt (shim + engine write the record);
- the ``!`` line's ``autorun --args-of status status`` taking it, against the
  same command with its argument given directly (what ``--args-of`` adds).

    .venv/bin/python benchmarks/prompt_hook.py [--calls 100]

Uses a temporary AUTORUN_HOME and the engine of this checkout (``.venv``, via a
throwaway shim data dir that points at it); nothing else is touched.
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

ROOT = Path(__file__).resolve().parent.parent


def timed(argv: list[str], stdin: bytes, env: dict[str, str], calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        subprocess.run(argv, input=stdin, env=env, check=False, capture_output=True)
        out.append(time.perf_counter() - started)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="autorun-bench-") as tmp:
        env = dict(os.environ)
        env["AUTORUN_HOME"] = str(Path(tmp) / "autorun")
        env["CLAUDE_CODE_SESSION_ID"] = session = "0b7d4c2e-1f3a-4b5c-8d9e-aabbccddeeff"
        engine = [sys.executable, "-m", "autorun_py"]
        env["PYTHONPATH"] = str(ROOT)
        hook = [str(ROOT / "scripts" / "prompt-hook")]

        def payload(prompt: str) -> bytes:
            return json.dumps(
                {"session_id": session, "prompt": prompt, "cwd": tmp, "prompt_id": "p"}
            ).encode()

        floor = timed(["true"], payload("x"), env, args.calls)
        ordinary = timed(hook, payload("explain this function to me"), env, args.calls)
        # The autorun case through the engine directly (the shim adds its own
        # few ms, measured by tests/test_shim.py).
        record = timed(
            [*engine, "hook", "user-prompt-submit"], payload("/autorun:status x"), env, args.calls
        )
        take, direct = [], []
        for _ in range(args.calls):
            subprocess.run(
                [*engine, "hook", "user-prompt-submit"],
                input=payload("/autorun:status nope"),
                env=env,
                check=True,
            )
            take += timed([*engine, "--args-of", "status", "status"], b"", env, 1)
            direct += timed([*engine, "status", "nope"], b"", env, 1)

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.1f} ms"

    print(f"prompt hook cost, median of {args.calls} calls each")
    print(f"  true (process floor)                 {ms(floor)}")
    print(f"  hook, ordinary prompt                {ms(ordinary)}")
    print(f"  engine records an /autorun: prompt   {ms(record)}")
    print(f"  `!` line with --args-of              {ms(take)}")
    print(f"  same command, argument given         {ms(direct)}")
    ratio = statistics.median(ordinary) / statistics.median(floor)
    added = 1000 * (statistics.median(take) - statistics.median(direct))
    print(f"  ordinary prompt vs floor: {ratio:.1f}x; --args-of adds {added:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
