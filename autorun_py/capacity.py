"""How many stages run at once by default, from the machine.

Each stage is a Claude Code session of several hundred MB, and all of them share
one usage limit, so a plan of 40 independent stages must not start 40 sessions.
The default cap is ``min(cores * 2, available memory / SESSION_MB)``, at least 1;
``--max-parallel``, ``AUTORUN_MAX_PARALLEL`` or the config's ``max_parallel``
override it (in that order); a run whose every launcher has a cap of its own
(``--launcher tmux=2,background=4``) is capped at their sum instead. Each launcher's
own cap is applied at claim time (:func:`autorun_py.launchers.place`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

SESSION_MB = 600  # a Claude Code session's resident memory, roughly
SESSIONS_PER_CORE = 2  # sessions mostly wait on the model, not the CPU


@dataclass(frozen=True)
class ParallelCap:
    """How many stages run at once, and why that many."""
    value: int
    reason: str  # how it was chosen, for the summary


def cpu_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def available_memory_mb() -> tuple[Optional[int], str]:
    """(MB of memory available for new processes, how it was measured) or (None, why not)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024, "available"
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None, "unknown"
    if pages <= 0 or size <= 0:
        return None, "unknown"
    return pages * size // (2 * 1024 * 1024), "half of physical"


def machine_default() -> ParallelCap:
    cores = cpu_cores()
    by_cores = cores * SESSIONS_PER_CORE
    mem, how = available_memory_mb()
    if mem is None:
        return ParallelCap(
            max(1, by_cores), f"{cores} core(s) x {SESSIONS_PER_CORE}; memory unknown"
        )
    by_memory = mem // SESSION_MB
    value = max(1, min(by_cores, by_memory))
    return ParallelCap(
        value,
        f"min({cores} core(s) x {SESSIONS_PER_CORE}, {mem / 1024:.1f} GB {how} memory / "
        f"{SESSION_MB} MB per session)",
    )


def resolve_max_parallel(
    flag: Optional[int],
    env: Optional[str],
    configured: Optional[int],
    *,
    launcher_caps: Sequence[Optional[int]] = (),
) -> ParallelCap:
    """The cap for a new run: the flag, else the environment, else the config, else
    the sum of the launchers' caps when every launcher has one (``tmux=2,background=4``:
    6), else the machine default. ``env`` is the raw ``AUTORUN_MAX_PARALLEL`` value
    (validated here)."""
    from autorun_py.errors import AutorunError

    if flag is not None:
        return ParallelCap(flag, "--max-parallel")
    if env is not None and env.strip():
        try:
            value = int(env.strip())
        except ValueError:
            value = 0
        if value < 1:
            raise AutorunError(
                f"AUTORUN_MAX_PARALLEL must be a positive number of stages, not {env!r}"
            )
        return ParallelCap(value, "AUTORUN_MAX_PARALLEL")
    if configured is not None:
        return ParallelCap(configured, "config max_parallel")
    if launcher_caps and all(c is not None for c in launcher_caps):
        return ParallelCap(sum(c or 0 for c in launcher_caps), "the sum of the launchers' caps")
    cap = machine_default()
    return ParallelCap(cap.value, f"machine default: {cap.reason}")
