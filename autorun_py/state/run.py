"""The run as a typed dataclass, declared once (the same way as a stage:
:mod:`autorun_py.state.stage`), its stages (:class:`StageMap`, converted when
first used), the checks on read of the top level, and migration."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from autorun_py.errors import AutorunError
from autorun_py.state.schema import (
    KINDS,
    MAX_STAGE,
    RUN_RUNNING,
    Bad,
    check_numbers,
    is_int,
    kind_of,
    short,
)
from autorun_py.state.stage import (
    SCHEMA_VERSION,
    STAGE_STATUSES,
    STATUS_FILE,
    TERMINAL,
    StageState,
    _check,
    _kind,
    _load,
    raw_fields,
    validate_stage,
)

if TYPE_CHECKING:  # annotations only
    from autorun_py.schedule import StageView
    from autorun_py.state.side import MonitorState

# --------------------------------------------------------------------------- stages


class LazyStage(NamedTuple):
    """A stage kept as the JSON text it was read as, until first used."""

    text: str
    status: str  # checked on read
    depends_on: tuple[int, ...]  # checked on read


# A stage's estimate, as autorun writes it: only the counters come after it.
_ESTIMATE = (
    r', "estimate_hours": (?:null|'
    r"(-?(?:0|[1-9][0-9]{0,15})(?:\.[0-9]{1,20})?(?:[eE][-+]?[0-9]{1,3})?)"
    r'), "counters": \{'
)


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

    def estimate_of(self, number: int) -> Optional[float]:
        """The stage's ``estimate_hours`` (the scheduler's weights), read from the text
        of a stage not yet converted when it is plainly a number or null (autorun
        writes it last but the counters; a bad one: the stage is checked, and the
        error names it)."""
        st = self._stages[number]
        if st is None:
            text = self._lazy[number].text
            m = re.compile(_ESTIMATE).match(text, max(0, text.rfind(', "estimate_hours": ')))
            if m is not None:
                v = m.group(1)
                if v is None:
                    return None
                hours = float(v)
                if 0 <= hours < 1e9:
                    return hours
            st = self._convert(number)
        return st.estimate_hours

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
    """The run as ``status.json`` holds it (the fields in the file's order)."""
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

_RUN_CHECKED = tuple(
    (k, kind)
    for k, kind in RUN_FIELDS
    if k not in ("schema_version", "stages", "waves", "critical_path")
)
_REQUIRED = tuple(k for k, kind in RUN_FIELDS if kind is KINDS["text"])


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
