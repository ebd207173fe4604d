"""The kinds of value a status field holds: for each, how it is checked on read,
loaded into the model and dumped back to JSON (pure; no I/O).

The model (:mod:`autorun_py.state.stage`, :mod:`~autorun_py.state.run`) names
a kind per dataclass field; the key lists, the conversions and the checks are
all derived from those fields, so a field is declared once.
"""

from __future__ import annotations

import json
from typing import Any, Callable, NamedTuple, Optional

from autorun_py import statuses as _statuses

MAX_INT = (1 << 53) - 1  # what every JSON reader agrees on
MAX_STAGE = 100_000

RUN_RUNNING = "running"
RUN_COMPLETED = "completed"
RUN_FINISHED_WITH_FAILURES = "finished_with_failures"
RUN_CANCELLED = "cancelled"
RUN_STATUSES = (RUN_RUNNING, RUN_COMPLETED, RUN_FINISHED_WITH_FAILURES, RUN_CANCELLED)
SCHEDULES = ("dataflow", "waves")

_STAGE_STATUS_SET = frozenset(_statuses.STATUSES)


class Bad(Exception):
    """A field that is not what autorun writes: ``<field>: <problem>``."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def kind_of(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    return "an object"


def short(v: Any) -> str:
    text = json.dumps(v) if not isinstance(v, (dict, list)) else kind_of(v)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------- checks
# Each check gets a present value (JSON null included) and the field's dotted
# name. ``type(v) is str``: json gives exact types, and a bool is not a number.


def _check_text(v: Any, where: str) -> None:
    if not (type(v) is str and v):
        raise Bad(where, "expected a non-empty string")


def check_str(v: Any, where: str) -> None:
    if v is not None and type(v) is not str:
        raise Bad(where, f"expected a string, not {kind_of(v)}")


def _check_count(v: Any, where: str, minimum: int = 0) -> None:
    if v is not None and (type(v) is not int or not minimum <= v <= MAX_INT):
        raise Bad(where, f"expected a whole number >= {minimum}, not {short(v)}")


def _check_parallel(v: Any, where: str) -> None:
    _check_count(v, where, 1)


def _check_object(v: Any, where: str) -> None:
    if v is not None and type(v) is not dict:
        raise Bad(where, f"expected an object, not {kind_of(v)}")


def _check_nothing(v: Any, where: str) -> None:
    return None


def _check_stage_status(v: Any, where: str) -> None:
    if type(v) is not str or v not in _STAGE_STATUS_SET:
        raise Bad(
            where,
            f"unknown stage status {short(v)} (one of: {', '.join(_statuses.STATUSES)})",
        )


def _check_run_status(v: Any, where: str) -> None:
    if v not in RUN_STATUSES:
        raise Bad(where, f"unknown run status {short(v)}")


def _check_schedule(v: Any, where: str) -> None:
    if v not in SCHEDULES:
        raise Bad(where, f'expected "dataflow" or "waves", not {short(v)}')


def _check_hours(v: Any, where: str) -> None:
    if v is not None and (type(v) not in (int, float) or not 0 <= v < 1e9):
        raise Bad(where, f"expected a number of hours, not {short(v)}")


def _check_counters(v: Any, where: str) -> None:
    if v is None:
        return
    if type(v) is not dict:
        raise Bad(where, f"expected an object, not {kind_of(v)}")
    for key, n in v.items():
        if type(n) is not int or not 0 <= n <= MAX_INT:
            raise Bad(f"{where}.{key}", f"expected a whole number >= 0, not {short(n)}")


def check_numbers(v: Any, where: str, known: Optional[set[int]]) -> None:
    """A list of stage numbers (each one a stage of the run when ``known`` is given)."""
    if type(v) is not list or not all(type(n) is int for n in v):
        raise Bad(where, "expected a list of stage numbers")
    if known is not None:
        for n in v:
            if n not in known:
                raise Bad(where, f"stage {n} does not exist")


# --------------------------------------------------------------------------- kinds


class Kind(NamedTuple):
    check: Callable[[Any, str], None]  # a present value (null included), its field name
    load: Callable[[Any], Any]  # a checked raw value -> the model's value
    dump: Callable[[Any], Any]  # the model's value -> the raw value
    null_is_missing: bool = False  # JSON null loads as the field's default
    null_ok: bool = True  # JSON null passes the check (skipped: reads are hot)


def same(v: Any) -> Any:
    return v


_same = same


def _ints(v: Any) -> list[int]:
    return [int(n) for n in v or ()]


KINDS: dict[str, Kind] = {
    # a required, non-empty string (the run's identity)
    "text": Kind(_check_text, str, _same, null_ok=False),
    # a string the model always holds (JSON null reads as "None", as it always has)
    "str": Kind(check_str, str, _same),
    "optional str": Kind(check_str, _same, _same),
    # the run's base commit: written as "" when unknown
    "commit": Kind(check_str, _same, lambda v: v or ""),
    "stage status": Kind(_check_stage_status, str, _same, null_ok=False),
    "run status": Kind(_check_run_status, str, _same, null_ok=False),
    "schedule": Kind(_check_schedule, str, _same, null_ok=False),
    "count": Kind(_check_count, int, _same, null_is_missing=True),
    "optional count": Kind(_check_count, _same, _same),
    "parallel": Kind(_check_parallel, _same, _same),
    "object": Kind(_check_object, lambda v: dict(v or {}), dict),
    # an object or nothing; anything else reads as nothing
    "optional object": Kind(
        _check_nothing,
        lambda v: dict(v) if isinstance(v, dict) else None,
        lambda v: None if v is None else dict(v),
    ),
    "hours": Kind(_check_hours, _same, _same),
    "counters": Kind(
        _check_counters, lambda v: {str(k): int(n) for k, n in (v or {}).items()}, dict
    ),
    # stage numbers: checked against the run's stages by the model's validation
    "numbers": Kind(_check_nothing, _ints, list),
    "waves": Kind(
        _check_nothing, lambda v: [_ints(w) for w in v or ()], lambda v: [list(w) for w in v]
    ),
}
