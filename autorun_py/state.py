"""The run's state: ``<orch_dir>/status.json``, one file lock, atomic writes.

Every read-modify-write goes through :meth:`StatusStore.transaction`, which
holds one lock file beside it (:class:`autorun_py.flock.FlockLock`, a blocking
flock), re-reads the file, lets the caller change the typed model, writes a
temp file in the same directory (flushed and fsynced) and ``os.replace``-s it
over ``status.json``, then appends the transaction's events to ``events.jsonl``
while still holding the lock.
Readers never lock: ``os.replace`` means they see the old or the new file,
never a part of one.

The JSON keeps every field of the seed's schema; autorun adds its own
(``schema_version``, ``revision``, per-stage ``worktree``/``session``/...).
Unknown fields are carried through untouched, so a newer writer's additions
survive an older reader's write.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, TypedDict, TypeVar, cast

from autorun_py import fsutil
from autorun_py import statuses as _statuses
from autorun_py.errors import AutorunError, ExitCode
from autorun_py.events import event_line, flush_journal, log_size, make_event, utc_now, write_lines

if TYPE_CHECKING:
    from autorun_py.schedule import StageView

SCHEMA_VERSION = 1
STATUS_FILE = "status.json"
JOURNAL_KEY = "event_journal"  # the last transaction's events (see autorun_py.events)
KILL_ENV = "AUTORUN_TEST_KILL_AT"  # tests only: SIGKILL this process at a named point


def _kill_point(name: str) -> None:
    """SIGKILL this process here when ``$AUTORUN_TEST_KILL_AT`` names this point
    (crash tests of the commit order; never set outside tests)."""
    if os.environ.get(KILL_ENV) == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


PHASES = ("triage", "research", "create_plan", "implement", "merge")
SEED_PHASES = ("research", "create_plan", "implement", "merge")

# A stage's statuses are declared once, in autorun_py/statuses.py (the scheduler's too).
PENDING = _statuses.PENDING
IN_PROGRESS = _statuses.IN_PROGRESS
COMPLETED = _statuses.COMPLETED
FAILED = _statuses.FAILED
BLOCKED = _statuses.BLOCKED
CANCELLED = _statuses.CANCELLED
STAGE_STATUSES = _statuses.STATUSES
TERMINAL = _statuses.TERMINAL

# Legal stage transitions: from -> allowed targets.
TRANSITIONS: dict[str, frozenset[str]] = {
    # pending -> failed: its launch keeps failing; -> cancelled: `autorun cancel`
    PENDING: frozenset({IN_PROGRESS, BLOCKED, FAILED, CANCELLED}),
    IN_PROGRESS: frozenset({COMPLETED, FAILED, PENDING, CANCELLED}),  # -> pending: launch failed
    FAILED: frozenset({PENDING}),  # retry
    BLOCKED: frozenset({PENDING}),  # the failed (or cancelled) ancestor is retried
    CANCELLED: frozenset({PENDING}),  # retry
    COMPLETED: frozenset(),
}

RUN_RUNNING = "running"
RUN_COMPLETED = "completed"
RUN_FINISHED_WITH_FAILURES = "finished_with_failures"
RUN_CANCELLED = "cancelled"


# --------------------------------------------------------------------------- raw JSON


class RawPhase(TypedDict, total=False):
    started_at: Optional[str]
    completed_at: Optional[str]
    current_phase: Optional[int]
    total_phases: Optional[int]


class RawStage(TypedDict, total=False):
    status: str
    name: str
    depends_on: list[int]
    branch: Optional[str]
    context_file: str
    plan_file: Optional[str]
    started_at: Optional[str]
    completed_at: Optional[str]
    phases: dict[str, RawPhase]
    # autorun's additions
    worktree: Optional[str]
    session: Optional[str]
    claude_session_id: Optional[str]
    launched_at: Optional[str]
    start_commit: Optional[str]
    merge_commit: Optional[str]
    failure: Optional[str]
    failed_at: Optional[str]
    launch_attempts: int
    merge_state: Optional[str]
    merge_detail: dict[str, Any]
    merge_intent: Optional[dict[str, Any]]
    estimate_hours: Optional[float]
    counters: dict[str, int]


class RawStatus(TypedDict, total=False):
    plan_path: str
    plan_name: str
    project_slug: str
    project_root: str
    base_branch: str
    created_at: str
    stages: dict[str, RawStage]
    current_wave: int
    waves: list[list[int]]
    # autorun's additions
    schema_version: int
    revision: int
    orch_dir: str
    status: str
    completed_at: Optional[str]
    base_commit: str
    schedule: str
    max_parallel: Optional[int]
    critical_path: list[int]
    monitor: dict[str, Any]


# --------------------------------------------------------------------------- model


_PHASE_KEYS = frozenset(("started_at", "completed_at", "current_phase", "total_phases"))


@dataclass
class Phase:
    started_at: Optional[str] = None
    completed_at: Optional[str] = None
    current_phase: Optional[int] = None
    total_phases: Optional[int] = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_raw(cls, raw: RawPhase, with_progress: bool) -> Phase:
        get = cast(dict[str, Any], raw).get
        phase = cls(
            started_at=get("started_at"),
            completed_at=get("completed_at"),
            current_phase=get("current_phase"),
            total_phases=get("total_phases"),
        )
        if not _PHASE_KEYS.issuperset(raw):
            phase.extra = {k: v for k, v in raw.items() if k not in _PHASE_KEYS}
        return phase

    def to_raw(self, with_progress: bool) -> RawPhase:
        raw = cast(RawPhase, dict(self.extra))
        raw["started_at"] = self.started_at
        raw["completed_at"] = self.completed_at
        if with_progress or self.current_phase is not None or self.total_phases is not None:
            raw["current_phase"] = self.current_phase
            raw["total_phases"] = self.total_phases
        return raw


_STAGE_KEYS = (
    "status name depends_on branch context_file plan_file started_at completed_at phases "
    "worktree session claude_session_id launched_at start_commit merge_commit failure failed_at "
    "launch_attempts merge_state merge_detail merge_intent estimate_hours counters"
).split()

_STAGE_KEY_SET = frozenset(_STAGE_KEYS)


@dataclass
class StageState:
    number: int
    name: str
    depends_on: list[int]
    context_file: str
    status: str = PENDING
    branch: Optional[str] = None
    plan_file: Optional[str] = None
    started_at: Optional[str] = None
    completed_at: Optional[str] = None
    phases: dict[str, Phase] = field(default_factory=dict)
    worktree: Optional[str] = None
    session: Optional[str] = None
    claude_session_id: Optional[str] = None
    launched_at: Optional[str] = None
    start_commit: Optional[str] = None
    merge_commit: Optional[str] = None
    failure: Optional[str] = None
    failed_at: Optional[str] = None
    launch_attempts: int = 0
    merge_state: Optional[str] = None  # None | "conflict" | "blocked"
    merge_detail: dict[str, Any] = field(default_factory=dict)
    # a merge in flight: what it is about to do (autorun_py.gitmerge module doc)
    merge_intent: Optional[dict[str, Any]] = None
    estimate_hours: Optional[float] = None
    counters: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        phases = self.phases
        for name in SEED_PHASES:
            if name not in phases:
                phases[name] = Phase()

    def phase(self, name: str) -> Phase:
        return self.phases.setdefault(name, Phase())

    def current_phase(self) -> Optional[str]:
        """The phase that started last and has not completed."""
        best: Optional[tuple[str, str]] = None
        for name in PHASES:
            ph = self.phases.get(name)
            if ph and ph.started_at and not ph.completed_at:
                if best is None or ph.started_at >= best[1]:
                    best = (name, ph.started_at)
        return best[0] if best else None

    @classmethod
    def from_raw(cls, number: int, raw: RawStage) -> StageState:
        data: dict[str, Any] = dict(raw)
        phases_raw = data.pop("phases", {}) or {}
        known = {k: data.pop(k) for k in _STAGE_KEY_SET.intersection(data)}
        stage = cls(
            number=number,
            name=str(known.get("name", f"Stage {number}")),
            depends_on=[int(d) for d in known.get("depends_on", [])],
            context_file=str(known.get("context_file", "")),
            status=str(known.get("status", PENDING)),
            branch=known.get("branch"),
            plan_file=known.get("plan_file"),
            started_at=known.get("started_at"),
            completed_at=known.get("completed_at"),
            worktree=known.get("worktree"),
            session=known.get("session"),
            claude_session_id=known.get("claude_session_id"),
            launched_at=known.get("launched_at"),
            start_commit=known.get("start_commit"),
            merge_commit=known.get("merge_commit"),
            failure=known.get("failure"),
            failed_at=known.get("failed_at"),
            launch_attempts=int(known.get("launch_attempts", 0) or 0),
            merge_state=known.get("merge_state"),
            merge_detail=dict(known.get("merge_detail") or {}),
            merge_intent=(
                dict(known["merge_intent"]) if isinstance(known.get("merge_intent"), dict) else None
            ),
            estimate_hours=known.get("estimate_hours"),
            counters={str(k): int(v) for k, v in (known.get("counters") or {}).items()},
            phases={
                name: Phase.from_raw(ph, name == "implement") for name, ph in phases_raw.items()
            },
        )
        stage.extra = data
        return stage

    def to_raw(self) -> RawStage:
        raw = cast(RawStage, dict(self.extra))
        raw.update(
            {
                "status": self.status,
                "name": self.name,
                "depends_on": list(self.depends_on),
                "branch": self.branch,
                "context_file": self.context_file,
                "plan_file": self.plan_file,
                "started_at": self.started_at,
                "completed_at": self.completed_at,
                "phases": {
                    name: ph.to_raw(name == "implement") for name, ph in self.phases.items()
                },
                "worktree": self.worktree,
                "session": self.session,
                "claude_session_id": self.claude_session_id,
                "launched_at": self.launched_at,
                "start_commit": self.start_commit,
                "merge_commit": self.merge_commit,
                "failure": self.failure,
                "failed_at": self.failed_at,
                "launch_attempts": self.launch_attempts,
                "merge_state": self.merge_state,
                "merge_detail": dict(self.merge_detail),
                "merge_intent": None if self.merge_intent is None else dict(self.merge_intent),
                "estimate_hours": self.estimate_hours,
                "counters": dict(self.counters),
            }
        )
        return raw


_RUN_KEYS = (
    "plan_path plan_name project_slug project_root base_branch created_at stages current_wave "
    "waves schema_version revision orch_dir status completed_at base_commit schedule "
    "max_parallel critical_path monitor"
).split()


@dataclass
class RunState:
    plan_path: str
    plan_name: str
    project_slug: str
    project_root: str
    base_branch: str
    created_at: str
    orch_dir: str
    stages: dict[int, StageState]
    waves: list[list[int]]
    current_wave: int = 1
    schema_version: int = SCHEMA_VERSION
    revision: int = 0
    status: str = RUN_RUNNING
    completed_at: Optional[str] = None
    base_commit: Optional[str] = None
    schedule: str = "dataflow"
    max_parallel: Optional[int] = None
    critical_path: list[int] = field(default_factory=list)
    monitor: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    # -- derived views ----------------------------------------------------------
    def stage(self, number: int) -> StageState:
        try:
            return self.stages[number]
        except KeyError:
            known = ", ".join(str(n) for n in sorted(self.stages))
            raise AutorunError(
                f"{self.plan_name} has no stage {number} (stages: {known})",
                path=Path(self.orch_dir) / STATUS_FILE,
            ) from None

    def deps(self) -> dict[int, tuple[int, ...]]:
        return {n: tuple(s.depends_on) for n, s in self.stages.items()}

    def is_finished(self) -> bool:
        return all(s.status in TERMINAL for s in self.stages.values())

    def views(self) -> dict[int, StageView]:
        """What the scheduler (:mod:`autorun_py.schedule`) needs of each stage."""
        from autorun_py.schedule import StageView

        return {n: StageView(s.status, tuple(s.depends_on)) for n, s in self.stages.items()}

    def ready(self) -> list[int]:
        """The stages that may start now: :func:`autorun_py.schedule.ready_stages`, the
        one readiness rule (the run's schedule; a dependency on a stage that is not in
        the run is an error, never a satisfied dependency)."""
        from autorun_py.schedule import ready_stages

        return ready_stages(self.views(), schedule=self.schedule, waves=self.waves)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STAGE_STATUSES, 0)
        for s in self.stages.values():
            out[s.status] = out.get(s.status, 0) + 1
        return out

    def lowest_open_wave(self) -> int:
        for i, wave in enumerate(self.waves, start=1):
            if any(self.stages[n].status not in TERMINAL for n in wave if n in self.stages):
                return i
        return max(len(self.waves), 1)

    # -- (de)serialisation --------------------------------------------------------
    @classmethod
    def from_raw(cls, raw: RawStatus, path: Optional[Path] = None) -> RunState:
        try:
            validate_raw(raw)
        except _Bad as exc:
            # "<orch>/status.json: stages.3.depends_on: expected a list of stage numbers"
            raise AutorunError(str(exc), path=path or STATUS_FILE) from None
        data: dict[str, Any] = dict(migrate(dict(raw), path))
        try:
            stages_raw = data.pop("stages")
            known = {k: data.pop(k) for k in list(data) if k in _RUN_KEYS}
            state = cls(
                plan_path=str(known["plan_path"]),
                plan_name=str(known["plan_name"]),
                project_slug=str(known["project_slug"]),
                project_root=str(known["project_root"]),
                base_branch=str(known["base_branch"]),
                created_at=str(known.get("created_at", "")),
                orch_dir=str(known.get("orch_dir") or (path.parent if path else "")),
                stages={int(k): StageState.from_raw(int(k), v) for k, v in stages_raw.items()},
                waves=[[int(n) for n in w] for w in known.get("waves", [])],
                current_wave=int(known.get("current_wave", 1)),
                schema_version=int(known.get("schema_version", SCHEMA_VERSION)),
                revision=int(known.get("revision", 0)),
                status=str(known.get("status", RUN_RUNNING)),
                completed_at=known.get("completed_at"),
                base_commit=known.get("base_commit"),
                schedule=str(known.get("schedule", "dataflow")),
                max_parallel=known.get("max_parallel"),
                critical_path=[int(n) for n in known.get("critical_path", [])],
                monitor=dict(known.get("monitor") or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise AutorunError(
                f"status file is not a valid autorun status ({type(exc).__name__}: {exc})",
                path=path,
            ) from None
        state.extra = data
        return state

    def to_raw(self) -> RawStatus:
        raw = cast(RawStatus, dict(self.extra))
        raw.update(
            {
                "schema_version": self.schema_version,
                "revision": self.revision,
                "plan_path": self.plan_path,
                "plan_name": self.plan_name,
                "project_slug": self.project_slug,
                "project_root": self.project_root,
                "base_branch": self.base_branch,
                "created_at": self.created_at,
                "orch_dir": self.orch_dir,
                "status": self.status,
                "completed_at": self.completed_at,
                "base_commit": self.base_commit or "",
                "schedule": self.schedule,
                "max_parallel": self.max_parallel,
                "stages": {str(n): self.stages[n].to_raw() for n in sorted(self.stages)},
                "current_wave": self.current_wave,
                "waves": [list(w) for w in self.waves],
                "critical_path": list(self.critical_path),
                "monitor": dict(self.monitor),
            }
        )
        return raw


# --------------------------------------------------------------------------- validation

# A status file is ours, but a person (or a crash of another tool) may have
# edited it. Every field is checked on read, so that a bad one is one error
# naming the file and the field, never a traceback somewhere later.

MAX_STATUS_BYTES = 64 << 20
_MAX_STAGE = 100_000
_MAX_INT = (1 << 53) - 1  # what every JSON reader agrees on


class _Bad(Exception):
    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _want_str(obj: dict[str, Any], key: str, where: str, *, required: bool = False) -> None:
    if key not in obj:
        if required:
            raise _Bad(f"{where}{key}", "missing")
        return
    v = obj[key]
    if required and not (isinstance(v, str) and v):
        raise _Bad(f"{where}{key}", "expected a non-empty string")
    if v is not None and not isinstance(v, str):
        raise _Bad(f"{where}{key}", f"expected a string, not {_kind(v)}")


def _want_int(obj: dict[str, Any], key: str, where: str, *, minimum: int = 0) -> None:
    v = obj.get(key)
    if v is None:
        return
    if not _is_int(v) or not minimum <= v <= _MAX_INT:
        raise _Bad(f"{where}{key}", f"expected a whole number >= {minimum}, not {_short(v)}")


def _want_dict(obj: dict[str, Any], key: str, where: str) -> None:
    v = obj.get(key)
    if v is not None and not isinstance(v, dict):
        raise _Bad(f"{where}{key}", f"expected an object, not {_kind(v)}")


def _kind(v: Any) -> str:
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


def _short(v: Any) -> str:
    text = json.dumps(v) if not isinstance(v, (dict, list)) else _kind(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _stage_numbers(
    v: Any, where: str, known: Optional[set[int]], *, what: str = "a list of stage numbers"
) -> None:
    if not isinstance(v, list) or not all(_is_int(n) for n in v):
        raise _Bad(where, f"expected {what}")
    if known is not None:
        for n in v:
            if n not in known:
                raise _Bad(where, f"stage {n} does not exist")


_STAGE_STR_FIELDS = (
    "name context_file branch plan_file started_at completed_at worktree session "
    "claude_session_id launched_at start_commit merge_commit failure failed_at merge_state "
    "launcher"
).split()
_RUN_STR_FIELDS = "created_at orch_dir completed_at base_commit".split()
_RUN_STATUSES = (RUN_RUNNING, RUN_COMPLETED, RUN_FINISHED_WITH_FAILURES, RUN_CANCELLED)


_STAGE_STATUS_SET = frozenset(STAGE_STATUSES)


def _validate_stage(number: int, st: Any, known: set[int]) -> None:
    # Inline type checks (``type(v) is str``: json gives exact types, and a bool
    # is not a number here): this runs on every read of every stage.
    if type(st) is not dict:
        raise _Bad(f"stages.{number}", f"expected an object, not {_kind(st)}")
    status = st.get("status", PENDING)
    if type(status) is not str or status not in _STAGE_STATUS_SET:
        raise _Bad(
            f"stages.{number}.status",
            f"unknown stage status {_short(status)} (one of: {', '.join(STAGE_STATUSES)})",
        )
    for key in _STAGE_STR_FIELDS:
        v = st.get(key)
        if v is not None and type(v) is not str:
            raise _Bad(f"stages.{number}.{key}", f"expected a string, not {_kind(v)}")
    deps = st.get("depends_on")
    if deps is not None:
        where = f"stages.{number}.depends_on"
        if type(deps) is not list:
            raise _Bad(where, "expected a list of stage numbers")
        for d in deps:
            if type(d) is not int:
                raise _Bad(where, "expected a list of stage numbers")
            if d not in known:
                raise _Bad(where, f"stage {d} does not exist")
            if d == number:
                raise _Bad(where, "a stage cannot depend on itself")
    la = st.get("launch_attempts")
    if la is not None and (type(la) is not int or not 0 <= la <= _MAX_INT):
        raise _Bad(
            f"stages.{number}.launch_attempts", f"expected a whole number >= 0, not {_short(la)}"
        )
    md = st.get("merge_detail")
    if md is not None and type(md) is not dict:
        raise _Bad(f"stages.{number}.merge_detail", f"expected an object, not {_kind(md)}")
    est = st.get("estimate_hours")
    if est is not None and (type(est) not in (int, float) or not 0 <= est < 1e9):
        raise _Bad(
            f"stages.{number}.estimate_hours", f"expected a number of hours, not {_short(est)}"
        )
    counters = st.get("counters")
    if counters is not None:
        if type(counters) is not dict:
            raise _Bad(f"stages.{number}.counters", f"expected an object, not {_kind(counters)}")
        for key, v in counters.items():
            if type(v) is not int or not 0 <= v <= _MAX_INT:
                raise _Bad(
                    f"stages.{number}.counters.{key}",
                    f"expected a whole number >= 0, not {_short(v)}",
                )
    phases = st.get("phases")
    if phases is not None:
        if type(phases) is not dict:
            raise _Bad(f"stages.{number}.phases", f"expected an object, not {_kind(phases)}")
        for name, ph in phases.items():
            if type(ph) is not dict:
                raise _Bad(f"stages.{number}.phases.{name}", f"expected an object, not {_kind(ph)}")
            for key in ("started_at", "completed_at"):
                v = ph.get(key)
                if v is not None and type(v) is not str:
                    raise _Bad(
                        f"stages.{number}.phases.{name}.{key}", f"expected a string, not {_kind(v)}"
                    )
            for key in ("current_phase", "total_phases"):
                v = ph.get(key)
                if v is not None and (type(v) is not int or not 0 <= v <= _MAX_INT):
                    raise _Bad(
                        f"stages.{number}.phases.{name}.{key}",
                        f"expected a whole number >= 0, not {_short(v)}",
                    )


def validate_raw(raw: Any) -> None:
    """Raise ``_Bad(field, problem)`` for the first field that is not what autorun writes."""
    if not isinstance(raw, dict):
        raise _Bad("(top level)", f"expected an object, not {_kind(raw)}")
    version = raw.get("schema_version", 0)
    if not _is_int(version) or version < 0:
        raise _Bad("schema_version", f"expected a whole number, not {_short(version)}")
    for key in ("plan_path", "plan_name", "project_slug", "project_root", "base_branch"):
        _want_str(raw, key, "", required=True)
    for key in _RUN_STR_FIELDS:
        _want_str(raw, key, "")
    status = raw.get("status", RUN_RUNNING)
    if status not in _RUN_STATUSES:
        raise _Bad("status", f"unknown run status {_short(status)}")
    schedule = raw.get("schedule", "dataflow")
    if schedule not in ("dataflow", "waves"):
        raise _Bad("schedule", f'expected "dataflow" or "waves", not {_short(schedule)}')
    for key in ("revision", "current_wave"):
        _want_int(raw, key, "")
    _want_int(raw, "max_parallel", "", minimum=1)
    _want_dict(raw, "monitor", "")
    stages = raw.get("stages")
    if not isinstance(stages, dict):
        raise _Bad("stages", f"expected an object of stages, not {_kind(stages)}")
    known: set[int] = set()
    for key in stages:
        if not (isinstance(key, str) and key.isdigit() and key.isascii()):
            raise _Bad(f"stages.{key}", "a stage key must be a stage number")
        n = int(key)
        if not 1 <= n <= _MAX_STAGE or str(n) != key:
            raise _Bad(f"stages.{key}", "a stage key must be a stage number")
        known.add(n)
    for key, st in stages.items():
        _validate_stage(int(key), st, known)
    waves = raw.get("waves")
    if waves is not None:
        if not isinstance(waves, list):
            raise _Bad("waves", f"expected a list of waves, not {_kind(waves)}")
        for i, wave in enumerate(waves):
            _stage_numbers(wave, f"waves.{i}", known)
    if raw.get("critical_path") is not None:
        _stage_numbers(raw["critical_path"], "critical_path", known)
    from autorun_py.graph import find_cycle

    deps = {int(k): tuple(v.get("depends_on") or ()) for k, v in stages.items()}
    cycle = find_cycle(deps)
    if cycle:
        raise _Bad("stages", "dependency cycle: " + " -> ".join(map(str, cycle)))


def migrate(raw: dict[str, Any], path: Optional[Path] = None) -> dict[str, Any]:
    """Bring a raw status dict from any older schema up to :data:`SCHEMA_VERSION`.

    Version 0 is the seed's own format (no ``schema_version``): it gains the
    fields autorun adds, with neutral values. Each future version adds one step.
    """
    version = raw.get("schema_version", 0)
    if not _is_int(version) or version < 0:
        raise AutorunError(
            f"schema_version: expected a whole number, not {_short(version)}",
            path=path or STATUS_FILE,
        )
    if version > SCHEMA_VERSION:
        raise AutorunError(
            f"status.json has schema version {version}, newer than this autorun "
            f"understands ({SCHEMA_VERSION}); upgrade autorun",
            path=path,
        )
    if version == 0:
        raw.setdefault("revision", 0)
        raw.setdefault("status", RUN_RUNNING)
        raw.setdefault("schedule", "waves")  # the seed's behaviour
        for st in (raw.get("stages") or {}).values():
            st.setdefault("launch_attempts", 0)
        raw["schema_version"] = 1
    return raw


# --------------------------------------------------------------------------- store

T = TypeVar("T")


@dataclass
class PendingEvent:
    type: str
    fields: dict[str, Any]


class Transaction:
    """What a caller sees inside :meth:`StatusStore.transaction`."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.events: list[PendingEvent] = []

    def emit(self, event_type: str, **fields: Any) -> None:
        self.events.append(PendingEvent(event_type, fields))


class StatusStore:
    """``status.json`` of one orchestration: locked read-modify-write, lock-free reads."""

    def __init__(self, orch_dir: Path, *, lock_timeout: float = 60.0) -> None:
        self.orch_dir = Path(orch_dir)
        self.path = self.orch_dir / STATUS_FILE
        self.lock_path = self.orch_dir / (STATUS_FILE + ".lock")
        self.lock_timeout = lock_timeout

    def exists(self) -> bool:
        return self.path.is_file()

    def read(self) -> RunState:
        return RunState.from_raw(self.read_raw(), self.path)

    def read_raw(self) -> RawStatus:
        try:
            # never a symlink, a FIFO or a device; bounded
            text = fsutil.read_text_bounded(self.path, MAX_STATUS_BYTES, follow_symlinks=False)
        except FileNotFoundError:
            raise AutorunError(
                "no status.json here: not an orchestration directory", path=self.orch_dir
            ) from None
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise AutorunError(f"status file is not valid JSON: {exc}", path=self.path) from None
        except RecursionError:
            raise AutorunError("status file is nested too deeply", path=self.path) from None
        if not isinstance(raw, dict):
            raise AutorunError("status file does not hold a JSON object", path=self.path)
        return cast(RawStatus, raw)

    def _lock(self) -> fsutil.Lock:
        # Blocks in flock and wakes as the holder lets go (no polls); the same
        # kernel lock as filelock's on this path (autorun_py/flock.py).
        lock = fsutil.Lock(
            self.lock_path,
            timeout=self.lock_timeout,
            message=f"timed out after {self.lock_timeout:.0f}s waiting for the status lock",
            exit_code=ExitCode.FAILURE,
        )
        return lock.acquire()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Lock, read, let the caller mutate, write atomically, append events; unlock.

        Crash-safe order (see :mod:`autorun_py.events`): the previous
        transaction's journal is flushed first; the new ``status.json`` carries
        this transaction's events in ``event_journal`` (the commit point); then
        they are appended to ``events.jsonl``.
        """
        lock = self._lock()
        try:
            # the events go where status.json is, never through a symlink placed
            # there: refused before anything changes
            fsutil.refuse_symlink(self.orch_dir / "events.jsonl")
            txn = Transaction(self.read())
            state = txn.state
            flush_journal(self.orch_dir, state.extra.pop(JOURNAL_KEY, None))
            yield txn
            state = txn.state
            state.revision += 1
            state.current_wave = state.lowest_open_wave()
            events = [
                make_event(
                    self.orch_dir,
                    ev.type,
                    plan_name=state.plan_name,
                    project_slug=state.project_slug,
                    **ev.fields,
                )
                for ev in txn.events
            ]
            raw = state.to_raw()
            raw_any = cast(dict[str, Any], raw)
            raw_any[JOURNAL_KEY] = {"offset": log_size(self.orch_dir), "events": events}
            write_json_atomic(self.path, raw)
            _kill_point("state:after-status-write")
            write_lines(self.orch_dir, [event_line(ev) for ev in events], _kill_point)
        finally:
            lock.release()

    def flush_events(self) -> int:
        """Append the events of a committed transaction that a killed writer
        left in ``status.json``'s journal; return how many (under the lock)."""
        lock = self._lock()
        try:
            return flush_journal(self.orch_dir, self.read_raw().get(JOURNAL_KEY))
        finally:
            lock.release()

    def clean_stale_temps(self) -> int:
        """Remove temp files left by writers killed mid-write; return how many.

        Under the lock: a live writer's temp file is never taken from under it.
        """
        lock = self._lock()
        try:
            n = 0
            for p in self.orch_dir.glob(f".{STATUS_FILE}.*.tmp"):
                with contextlib.suppress(OSError):
                    p.unlink()
                    n += 1
            return n
        finally:
            lock.release()

    def update(self, fn: Callable[[Transaction], T]) -> T:
        with self.transaction() as txn:
            return fn(txn)


_ENCODE = json.JSONEncoder(ensure_ascii=False).encode  # built once, not per value
_ENCODE_KEY = json.JSONEncoder().encode


def dumps_readable(data: Any) -> str:
    """JSON with one top-level key per line and one stage per line.

    Readable with ``cat`` (as the seed suggests), yet encoded by the C encoder:
    ``json.dumps(indent=...)`` takes the pure-Python path and was half the cost
    of a status update. One encoder object serves every value
    (``json.dumps(..., ensure_ascii=False)`` builds a new one per call).
    """
    if not isinstance(data, dict):
        return _ENCODE(data)
    enc = _ENCODE
    parts = []
    for key, value in data.items():
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            inner = ",\n".join([f"    {enc(k)}: {enc(v)}" for k, v in value.items()])
            parts.append(f"  {_ENCODE_KEY(key)}: {{\n{inner}\n  }}")
        else:
            parts.append(f"  {_ENCODE_KEY(key)}: {enc(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temp file in the same directory, fsync, and rename over ``path``
    (:func:`autorun_py.fsutil.write_text_atomic`: never through a symlink)."""
    fsutil.write_text_atomic(Path(path), dumps_readable(data))


# --------------------------------------------------------------------------- transitions


def transition(txn: Transaction, number: int, target: str, **event_fields: Any) -> StageState:
    """Move stage ``number`` to ``target``, rejecting illegal moves; stamps and events."""
    state = txn.state
    stage = state.stage(number)
    if target not in TRANSITIONS.get(stage.status, frozenset()):
        raise AutorunError(
            f"stage {number} ({stage.name}) is {stage.status}; it cannot become {target}",
            path=Path(state.orch_dir) / STATUS_FILE,
        )
    now = utc_now()
    previous = stage.status
    stage.status = target
    if target == IN_PROGRESS:
        stage.started_at = stage.started_at or now
        stage.failure = None
        txn.emit("stage_started", stage=number, name=stage.name, **event_fields)
    elif target == COMPLETED:
        stage.completed_at = now
        stage.merge_state = None
        txn.emit("stage_completed", stage=number, name=stage.name, **event_fields)
    elif target == FAILED:
        stage.failed_at = now
        txn.emit("stage_failed", stage=number, name=stage.name, **event_fields)
    elif target == BLOCKED:
        txn.emit("stage_blocked", stage=number, name=stage.name, **event_fields)
    elif target == CANCELLED:
        stage.failed_at = now  # when it ended without a merge (durations use it)
        stage.extra["cancelled_at"] = now
        txn.emit("stage_cancelled", stage=number, name=stage.name, **event_fields)
    elif target == PENDING:
        txn.emit("stage_reset", stage=number, name=stage.name, previous=previous, **event_fields)
    return stage


def update_phase(
    txn: Transaction,
    number: int,
    phase: str,
    action: str,
    *,
    current: Optional[int] = None,
    total: Optional[int] = None,
) -> StageState:
    """Record a phase start or end (``autorun phase``); the stage must be in progress."""
    if phase not in PHASES:
        raise AutorunError(f"unknown phase {phase!r} (phases: {', '.join(PHASES)})")
    if action not in ("started", "completed"):
        raise AutorunError(f"unknown phase action {action!r} (started or completed)")
    stage = txn.state.stage(number)
    if stage.status != IN_PROGRESS:
        raise AutorunError(
            f"stage {number} ({stage.name}) is {stage.status}; phases are recorded only "
            "for a stage in progress",
            path=Path(txn.state.orch_dir) / STATUS_FILE,
        )
    ph = stage.phase(phase)
    now = utc_now()
    if action == "started":
        if ph.started_at is None or ph.completed_at is not None:
            ph.started_at = now
            ph.completed_at = None
    else:
        ph.started_at = ph.started_at or now
        ph.completed_at = now
    if current is not None:
        ph.current_phase = current
    if total is not None:
        ph.total_phases = total
    fields: dict[str, Any] = {"stage": number, "phase": phase, "status": action}
    if current is not None:
        fields["current_phase"] = current
    if total is not None:
        fields["total_phases"] = total
    txn.emit("phase_status", **fields)
    return stage


def block_descendants(txn: Transaction, number: int) -> list[int]:
    """Mark every pending descendant of ``number`` blocked; return them."""
    from autorun_py.graph import descendants

    blocked = []
    for d in sorted(descendants(txn.state.deps(), number)):
        st = txn.state.stages[d]
        if st.status == PENDING:
            transition(txn, d, BLOCKED, blocked_by=number)
            blocked.append(d)
    return blocked


def fail_stage(txn: Transaction, number: int, reason: str) -> list[int]:
    """Mark a stage failed (keeping its branch and worktree) and block its descendants."""
    stage = transition(txn, number, FAILED, reason=reason)
    stage.failure = reason
    blocked = block_descendants(txn, number)
    finish_if_done(txn)
    return blocked


def finish_if_done(txn: Transaction) -> bool:
    """When every stage is terminal, mark the run finished (once) and say so."""
    state = txn.state
    if state.status != RUN_RUNNING or not state.is_finished():
        return False
    counts = state.counts()
    end_run(
        txn,
        RUN_COMPLETED if counts[COMPLETED] == len(state.stages) else RUN_FINISHED_WITH_FAILURES,
    )
    return True


def end_run(txn: Transaction, result: str) -> None:
    """Mark the run ended with ``result`` (completed, finished_with_failures, cancelled)."""
    state = txn.state
    counts = state.counts()
    state.status = result
    state.completed_at = utc_now()
    txn.emit(
        "orchestration_complete",
        result=result,
        completed=counts[COMPLETED],
        failed=counts[FAILED],
        blocked=counts[BLOCKED],
        cancelled=counts[CANCELLED],
        total_stages=len(state.stages),
    )
