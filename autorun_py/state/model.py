"""The run's state as typed dataclasses, declared once.

Every JSON key of a stage or a run is a dataclass field here, in the order the
file holds them, with the kind of value it holds (:mod:`autorun_py.state.schema`;
the kind comes from the field's annotation, or from ``metadata["kind"]`` for the
few that need their own). The key lists, the raw <-> model conversions and the
checks on read are all derived from these fields. Keys the model does not know
(a newer writer's, another tool's) live in ``extra`` and are written back
untouched, before the known ones, as they always were.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, cast

from autorun_py import statuses as _statuses
from autorun_py.errors import AutorunError
from autorun_py.state.schema import (
    KINDS,
    MAX_STAGE,
    RUN_RUNNING,
    Bad,
    Kind,
    check_numbers,
    is_int,
    kind_of,
    short,
)
from autorun_py.state.side import CounterName, MonitorState

if TYPE_CHECKING:
    from autorun_py.schedule import StageView

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
            out[key] = kind.load(v)
    return out


def _check(kinds: tuple[tuple[str, Kind], ...], raw: dict[str, Any], where: str) -> None:
    for key, kind in kinds:
        if key in raw:
            kind.check(raw[key], where + key)


# --------------------------------------------------------------------------- phase


@dataclass
class Phase:
    started_at: Optional[str] = None
    completed_at: Optional[str] = None
    # written for the implement phase always, for the others once set
    current_phase: Optional[int] = _kind("progress", None)
    total_phases: Optional[int] = _kind("progress", None)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any], with_progress: bool = False) -> Phase:
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


# --------------------------------------------------------------------------- stage


@dataclass
class StageState:
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
}


# --------------------------------------------------------------------------- stages


class LazyStage(NamedTuple):
    """A stage kept as the JSON text it was read as, until first used."""

    text: str
    status: str  # checked on read
    depends_on: tuple[int, ...]  # checked on read


class StageMap(MutableMapping[int, StageState]):
    """The run's stages by number.

    A stage the fast reader (:mod:`autorun_py.state.codec`) read stays its JSON
    text until it is first looked up: then it is checked field by field and
    converted (a bad field is one error naming the file and the field, before
    anything is written). Its status and dependencies are read and checked for
    every stage up front, so the run's derived views (ready, counts, waves,
    finished) never convert a stage, and a stage that was never looked up is
    written back as the very text it was read as.
    """

    def __init__(self, stages: Optional[Mapping[int, StageState]] = None) -> None:
        self._stages: dict[int, Optional[StageState]] = dict(stages or {})
        self._lazy: dict[int, LazyStage] = {}
        self._path: Optional[Path] = None

    @classmethod
    def of_texts(cls, texts: Mapping[int, LazyStage], path: Optional[Path]) -> StageMap:
        out = cls()
        out._stages = dict.fromkeys(texts)
        out._lazy = dict(texts)
        out._path = path
        return out

    def __getitem__(self, number: int) -> StageState:
        st = self._stages[number]
        return st if st is not None else self._convert(number)

    def __setitem__(self, number: int, stage: StageState) -> None:
        self._stages[number] = stage
        self._lazy.pop(number, None)

    def __delitem__(self, number: int) -> None:
        del self._stages[number]
        self._lazy.pop(number, None)

    def __iter__(self) -> Iterator[int]:
        return iter(self._stages)

    def __len__(self) -> int:
        return len(self._stages)

    def __contains__(self, number: object) -> bool:
        return number in self._stages

    def __repr__(self) -> str:
        return f"StageMap({dict(self.items())!r})"

    def status_of(self, number: int) -> str:
        st = self._stages[number]
        return st.status if st is not None else self._lazy[number].status

    def deps_of(self, number: int) -> tuple[int, ...]:
        st = self._stages[number]
        return tuple(st.depends_on) if st is not None else self._lazy[number].depends_on

    def text_of(self, number: int) -> Optional[str]:
        """The JSON text of a stage never looked up since it was read, else None."""
        lazy = self._lazy.get(number)
        return lazy.text if lazy is not None and self._stages[number] is None else None

    def load_all(self) -> None:
        """Check and convert every stage still held as text."""
        for number in list(self._lazy):
            self._convert(number)

    def texts(self) -> list[tuple[int, Optional[str]]]:
        """``(number, text)`` by number: the JSON text of a stage never looked up
        since it was read, else None."""
        lazy = self._lazy
        return [
            (n, None if st is not None else lazy[n].text) for n, st in sorted(self._stages.items())
        ]

    def _convert(self, number: int) -> StageState:
        lazy = self._lazy[number]
        where = self._path or STATUS_FILE
        try:
            raw = json.loads(lazy.text)
        except ValueError as exc:
            raise AutorunError(f"stages.{number}: not valid JSON: {exc}", path=where) from None
        except RecursionError:
            raise AutorunError(f"stages.{number}: nested too deeply", path=where) from None
        try:
            validate_stage(number, raw, self._stages.keys())
        except Bad as exc:
            raise AutorunError(str(exc), path=where) from None
        stage = StageState.from_raw(number, raw)
        if stage.status != lazy.status or tuple(stage.depends_on) != lazy.depends_on:
            raise AutorunError(f"stages.{number}: a key appears twice", path=where)
        self._stages[number] = stage
        del self._lazy[number]
        return stage


# --------------------------------------------------------------------------- run


@dataclass
class RunState:
    # In the file's order (a default for each: dataclasses keep required fields first).
    schema_version: int = SCHEMA_VERSION
    revision: int = 0
    plan_path: str = _kind("text", "")
    plan_name: str = _kind("text", "")
    project_slug: str = _kind("text", "")
    project_root: str = _kind("text", "")
    base_branch: str = _kind("text", "")
    created_at: str = ""
    orch_dir: str = _kind("optional str", "")  # empty or null: the file's directory
    status: str = _kind("run status", RUN_RUNNING)
    completed_at: Optional[str] = None
    base_commit: Optional[str] = _kind("commit", None)
    schedule: str = _kind("schedule", "dataflow")
    max_parallel: Optional[int] = _kind("parallel", None)
    stages: StageMap = _kind("stages", factory=StageMap)
    current_wave: int = 1
    waves: list[list[int]] = field(default_factory=list)
    critical_path: list[int] = field(default_factory=list)
    monitor: MonitorState = _kind("object", factory=dict)  # autorun_py/state/side.py
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.stages, StageMap):
            self.stages = StageMap(self.stages)

    # -- derived views (from each stage's status and dependencies: no conversion) --
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
        deps_of = self.stages.deps_of
        return {n: deps_of(n) for n in self.stages}

    def is_finished(self) -> bool:
        status_of = self.stages.status_of
        return all(status_of(n) in TERMINAL for n in self.stages)

    def views(self) -> dict[int, StageView]:
        """What the scheduler (:mod:`autorun_py.schedule`) needs of each stage."""
        from autorun_py.schedule import StageView

        status_of, deps_of = self.stages.status_of, self.stages.deps_of
        return {n: StageView(status_of(n), deps_of(n)) for n in self.stages}

    def ready(self) -> list[int]:
        """The stages that may start now: :func:`autorun_py.schedule.ready_stages`, the
        one readiness rule (the run's schedule; a dependency on a stage that is not in
        the run is an error, never a satisfied dependency)."""
        from autorun_py.schedule import ready_stages

        return ready_stages(self.views(), schedule=self.schedule, waves=self.waves)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STAGE_STATUSES, 0)
        status_of = self.stages.status_of
        for n in self.stages:
            s = status_of(n)
            out[s] = out.get(s, 0) + 1
        return out

    def lowest_open_wave(self) -> int:
        stages, status_of = self.stages, self.stages.status_of
        for i, wave in enumerate(self.waves, start=1):
            if any(status_of(n) not in TERMINAL for n in wave if n in stages):
                return i
        return max(len(self.waves), 1)

    # -- (de)serialisation --------------------------------------------------------
    @classmethod
    def from_raw(cls, raw: Mapping[str, Any], path: Optional[Path] = None) -> RunState:
        try:
            validate_raw(raw)
        except Bad as exc:
            # "<orch>/status.json: stages.3.depends_on: expected a list of stage numbers"
            raise AutorunError(str(exc), path=path or STATUS_FILE) from None
        data = migrate(dict(raw), path)
        stages_raw = data.pop("stages")
        try:
            stages = {int(k): StageState.from_raw(int(k), v) for k, v in stages_raw.items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise AutorunError(
                f"status file is not a valid autorun status ({type(exc).__name__}: {exc})",
                path=path,
            ) from None
        return cls.from_top(data, StageMap(stages), path)

    @classmethod
    def from_top(cls, data: dict[str, Any], stages: StageMap, path: Optional[Path]) -> RunState:
        """The run from its checked top-level keys (``data``, without ``stages``;
        what is left in it becomes ``extra``) and its stages."""
        try:
            known = _load(RUN_FIELDS, data)
            known["stages"] = stages
            if not known.get("orch_dir"):
                known["orch_dir"] = str(path.parent) if path else ""
            state = cls(**known)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise AutorunError(
                f"status file is not a valid autorun status ({type(exc).__name__}: {exc})",
                path=path,
            ) from None
        state.extra = data
        return state

    def top_raw(self) -> dict[str, Any]:
        """The top-level keys (``stages`` holds a placeholder ``{}``)."""
        raw = dict(self.extra)
        for key, kind in RUN_FIELDS:
            raw[key] = {} if key == "stages" else kind.dump(getattr(self, key))
        return raw

    def to_raw(self) -> dict[str, Any]:
        raw = self.top_raw()
        stages = self.stages
        out = {}
        for n in sorted(stages):
            text = stages.text_of(n)
            out[str(n)] = json.loads(text) if text is not None else stages[n].to_raw()
        raw["stages"] = out
        return raw


RUN_FIELDS = raw_fields(RunState)
RUN_KEYS = frozenset(key for key, _ in RUN_FIELDS)


# --------------------------------------------------------------------------- validation

# A status file is ours, but a person (or a crash of another tool) may have
# edited it. Every field is checked before it is used, so that a bad one is one
# error naming the file and the field, never a traceback somewhere later.

_STAGE_CHECKED = tuple((k, kind) for k, kind in STAGE_FIELDS if k not in ("depends_on", "phases"))
_RUN_CHECKED = tuple(
    (k, kind)
    for k, kind in RUN_FIELDS
    if k not in ("schema_version", "stages", "waves", "critical_path")
)
_REQUIRED = tuple(k for k, kind in RUN_FIELDS if kind is KINDS["text"])


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


def validate_top(raw: Any) -> None:
    """Every top-level field but the stages and the fields that name stages."""
    if not isinstance(raw, dict):
        raise Bad("(top level)", f"expected an object, not {kind_of(raw)}")
    version = raw.get("schema_version", 0)
    if not is_int(version) or version < 0:
        raise Bad("schema_version", f"expected a whole number, not {short(version)}")
    for key in _REQUIRED:
        if key not in raw:
            raise Bad(key, "missing")
    _check(_RUN_CHECKED, raw, "")


def stage_numbers(stages: Any) -> set[int]:
    """The stage numbers of a raw ``stages`` object (each key checked)."""
    if not isinstance(stages, dict):
        raise Bad("stages", f"expected an object of stages, not {kind_of(stages)}")
    known: set[int] = set()
    for key in stages:
        if not (isinstance(key, str) and key.isdigit() and key.isascii()):
            raise Bad(f"stages.{key}", "a stage key must be a stage number")
        n = int(key)
        if not 1 <= n <= MAX_STAGE or str(n) != key:
            raise Bad(f"stages.{key}", "a stage key must be a stage number")
        known.add(n)
    return known


def validate_refs(
    raw: Mapping[str, Any], known: set[int], deps: dict[int, tuple[int, ...]]
) -> None:
    """The fields that name stages (waves, the critical path), and no dependency cycle."""
    waves = raw.get("waves")
    if waves is not None:
        if not isinstance(waves, list):
            raise Bad("waves", f"expected a list of waves, not {kind_of(waves)}")
        for i, wave in enumerate(waves):
            check_numbers(wave, f"waves.{i}", known)
    if raw.get("critical_path") is not None:
        check_numbers(raw["critical_path"], "critical_path", known)
    if all(d < n for n, ds in deps.items() for d in ds):
        return  # every dependency an earlier stage (as plans mostly are): no cycle
    from autorun_py.graph import find_cycle

    cycle = find_cycle(deps)
    if cycle:
        raise Bad("stages", "dependency cycle: " + " -> ".join(map(str, cycle)))


def validate_raw(raw: Any) -> None:
    """Raise ``Bad(field, problem)`` for the first field that is not what autorun writes."""
    validate_top(raw)
    stages = raw.get("stages")
    known = stage_numbers(stages)
    for key, st in stages.items():
        validate_stage(int(key), st, known)
    deps = {int(k): tuple(v.get("depends_on") or ()) for k, v in stages.items()}
    validate_refs(raw, known, deps)


def migrate(raw: dict[str, Any], path: Optional[Path] = None) -> dict[str, Any]:
    """Bring a raw status dict from any older schema up to :data:`SCHEMA_VERSION`.

    Version 0 is the seed's own format (no ``schema_version``): it gains the
    fields autorun adds, with neutral values. Each future version adds one step.
    """
    version = raw.get("schema_version", 0)
    if not is_int(version) or version < 0:
        raise AutorunError(
            f"schema_version: expected a whole number, not {short(version)}",
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
