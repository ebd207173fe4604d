"""A stage of the run as a typed dataclass, declared once (and its phases).

Every JSON key of a stage is a dataclass field here, in the order the file
holds them, with the kind of value it holds (:mod:`autorun_py.state.schema`;
the kind comes from the field's annotation, or from ``metadata["kind"]`` for the
few that need their own). The key lists, the raw <-> model conversions and the
checks on read are all derived from these fields. Keys the model does not know
(a newer writer's, another tool's) live in ``extra`` and are written back
untouched, before the known ones, as they always were.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Optional, cast

from autorun_py import statuses as _statuses
from autorun_py.state.schema import KINDS, Bad, Kind, check_numbers, check_str, kind_of, same

if TYPE_CHECKING:  # annotations only: a bookkeeping call need not load it
    from autorun_py.state.side import CounterName

SCHEMA_VERSION = 1
STATUS_FILE = "status.json"

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


def _kind(name: str, default: Any = MISSING, factory: Any = MISSING) -> Any:
    """A field whose kind is not the one its annotation gives."""
    if factory is not MISSING:
        return field(default_factory=factory, metadata={"kind": name})
    return field(default=default, metadata={"kind": name})


def _model_only(default: Any = MISSING, factory: Any = MISSING) -> Any:
    """A field of the model that is not a JSON key."""
    if factory is not MISSING:
        return field(default_factory=factory, metadata={"raw": False})
    return field(default=default, metadata={"raw": False})


# The kind an annotation means (``from __future__ import annotations``: the text).
_ANNOTATION_KINDS = {
    "str": "str",
    "Optional[str]": "optional str",
    "int": "count",
    "Optional[int]": "optional count",
    "Optional[float]": "hours",
    "dict[str, Any]": "object",
    "Optional[dict[str, Any]]": "optional object",
    "dict[str, int]": "counters",
    "list[int]": "numbers",
    "list[list[int]]": "waves",
}


def raw_fields(cls: type) -> tuple[tuple[str, Kind], ...]:
    """``(JSON key, kind)`` of each field of ``cls`` that is a JSON key, in file order."""
    out = []
    for f in fields(cls):
        if f.name == "extra" or f.metadata.get("raw") is False:
            continue
        name = f.metadata.get("kind") or _ANNOTATION_KINDS[cast(str, f.type)]
        out.append((f.name, KINDS[name]))
    return tuple(out)


def _load(kinds: tuple[tuple[str, Kind], ...], data: dict[str, Any]) -> dict[str, Any]:
    """Pop the known keys of ``data`` (leaving the unknown ones) as model values."""
    out: dict[str, Any] = {}
    for key, kind in kinds:
        if key in data:
            v = data.pop(key)
            if v is None and kind.null_is_missing:
                continue
            load = kind.load
            out[key] = v if load is same else load(v)
    return out


def _check(kinds: tuple[tuple[str, Kind], ...], raw: dict[str, Any], where: str) -> None:
    for key, kind in kinds:
        if key in raw:
            v = raw[key]
            if v is None and kind.null_ok:
                continue
            check = kind.check
            if check is check_str and type(v) is str:
                continue
            check(v, where + key)


# --------------------------------------------------------------------------- phase


@dataclass
class Phase:
    """When a phase of a stage started and completed."""
    started_at: Optional[str] = None
    completed_at: Optional[str] = None
    # written for the implement phase always, for the others once set
    current_phase: Optional[int] = _kind("progress", None)
    total_phases: Optional[int] = _kind("progress", None)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any], with_progress: bool = False) -> Phase:
        if _PHASE_KEYS.issuperset(raw):  # no keys to keep aside; every load is as is
            return cls(**raw)
        data = dict(raw)
        phase = cls(**_load(PHASE_FIELDS, data))
        phase.extra = data
        return phase

    def to_raw(self, with_progress: bool) -> dict[str, Any]:
        raw = dict(self.extra)
        progress = with_progress or self.current_phase is not None or self.total_phases is not None
        for key, kind in PHASE_FIELDS:
            if progress or kind is not KINDS["progress"]:
                raw[key] = kind.dump(getattr(self, key))
        return raw


def _load_phases(v: Any) -> dict[str, Phase]:
    return {name: Phase.from_raw(ph) for name, ph in (v or {}).items()}


def _dump_phases(v: dict[str, Phase]) -> dict[str, Any]:
    return {name: ph.to_raw(name == "implement") for name, ph in v.items()}


def _check_nothing(v: Any, where: str) -> None:
    return None


KINDS["progress"] = KINDS["optional count"]._replace()  # its own object: see Phase.to_raw
KINDS["phases"] = Kind(_check_nothing, _load_phases, _dump_phases)  # checked by validate_stage
KINDS["stages"] = Kind(_check_nothing, dict, dict)  # StageMap; checked by validate_raw
PHASE_FIELDS = raw_fields(Phase)
_PHASE_KEYS = frozenset(key for key, _ in PHASE_FIELDS)
assert all(kind.load is same and not kind.null_is_missing for _, kind in PHASE_FIELDS)


# --------------------------------------------------------------------------- stage


@dataclass
class StageState:
    """A stage as ``status.json`` holds it (the fields in the file's order)."""
    number: int = _model_only()
    status: str = _kind("stage status", PENDING)
    name: str = ""
    depends_on: list[int] = field(default_factory=list)
    branch: Optional[str] = None
    context_file: str = ""
    plan_file: Optional[str] = None
    started_at: Optional[str] = None
    completed_at: Optional[str] = None
    phases: dict[str, Phase] = _kind("phases", factory=dict)
    # autorun's additions
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

    def count(self, name: CounterName) -> int:
        return self.counters.get(name, 0)

    def bump(self, name: CounterName) -> int:
        """Add one to counter ``name``; return the new count."""
        n = self.counters[name] = self.counters.get(name, 0) + 1
        return n

    @property
    def session_ids(self) -> list[str]:
        """Every Claude session the stage ran (``claude_session_ids``), for the report."""
        ids = self.extra.get("claude_session_ids")
        return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []

    def add_session_id(self, session_id: str) -> None:
        ids = self.extra.setdefault("claude_session_ids", [])
        if isinstance(ids, list) and session_id not in ids:
            ids.append(session_id)

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
    def from_raw(cls, number: int, raw: Mapping[str, Any]) -> StageState:
        data = dict(raw)
        known = _load(STAGE_FIELDS, data)
        known.setdefault("name", f"Stage {number}")
        stage = cls(number=number, **known)
        stage.extra = data
        return stage

    def to_raw(self) -> dict[str, Any]:
        raw = dict(self.extra)
        for key, kind in STAGE_FIELDS:
            raw[key] = kind.dump(getattr(self, key))
        return raw


STAGE_FIELDS = raw_fields(StageState)
STAGE_KEYS = frozenset(key for key, _ in STAGE_FIELDS)

# Keys a stage holds in ``extra`` once set (so written before the fields, where
# files have them), checked on read as the fields are.
STAGE_SIDE_KEYS: dict[str, Kind] = {
    "launcher": KINDS["optional str"],  # the launcher it was claimed for (launchers/)
    "cleanup_tip": KINDS["optional str"],  # merged; its worktree still to remove (cleanup.py)
}


_STAGE_CHECKED = tuple((k, kind) for k, kind in STAGE_FIELDS if k not in ("depends_on", "phases"))


def validate_stage(number: int, st: Any, known: Any) -> None:
    """Raise ``Bad`` for the first field of stage ``number`` that is not what autorun
    writes (``known``: the run's stage numbers)."""
    if type(st) is not dict:
        raise Bad(f"stages.{number}", f"expected an object, not {kind_of(st)}")
    where = f"stages.{number}."
    _check(_STAGE_CHECKED, st, where)
    for key, kind in STAGE_SIDE_KEYS.items():
        if key in st:
            kind.check(st[key], where + key)
    deps = st.get("depends_on")
    if deps is not None:
        check_numbers(deps, where + "depends_on", known)
        if number in deps:
            raise Bad(where + "depends_on", "a stage cannot depend on itself")
    phases = st.get("phases")
    if phases is not None:
        if type(phases) is not dict:
            raise Bad(where + "phases", f"expected an object, not {kind_of(phases)}")
        for name, ph in phases.items():
            if type(ph) is not dict:
                raise Bad(f"{where}phases.{name}", f"expected an object, not {kind_of(ph)}")
            _check(PHASE_FIELDS, ph, f"{where}phases.{name}.")
