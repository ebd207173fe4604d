"""The state schema, declared once: the dataclass fields are the JSON keys; the
file written is byte for byte what autorun always wrote; the reader that leaves
untouched stages as text answers exactly what the full reader answers."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autorun_py.errors import AutorunError
from autorun_py.state import (
    RUN_FIELDS,
    RUN_KEYS,
    STAGE_FIELDS,
    STAGE_KEYS,
    STAGE_STATUSES,
    Phase,
    RunState,
    StageState,
    StatusStore,
    codec,
    dumps_readable,
    read_state,
    render_state,
)
from autorun_py.state import stage as model
from autorun_py.state.schema import Bad

FIXTURES = Path(__file__).parent / "fixtures" / "state"


def _names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} - {"number", "extra"}


def test_the_dataclass_fields_are_the_json_keys() -> None:
    """A field added to a dataclass is a JSON key (with a kind), and nothing else
    is: the key lists, to_raw and from_raw all come from the fields."""
    assert _names(StageState) == STAGE_KEYS == {k for k, _ in STAGE_FIELDS}
    assert _names(RunState) == RUN_KEYS == {k for k, _ in RUN_FIELDS}
    assert _names(Phase) == {k for k, _ in model.PHASE_FIELDS}
    stage = StageState(number=1, name="One", context_file="/c")
    assert set(stage.to_raw()) == STAGE_KEYS
    assert set(RunState(plan_name="p").top_raw()) == RUN_KEYS
    assert set(Phase().to_raw(True)) == _names(Phase)
    assert set(Phase().to_raw(False)) == {"started_at", "completed_at"}
    # and back: every key read lands in its field, nothing in extra
    again = StageState.from_raw(1, stage.to_raw())
    assert again == stage and again.extra == {}


def test_an_unknown_annotation_has_no_silent_kind() -> None:
    @dataclasses.dataclass
    class Drifted:
        ok: str = ""
        odd: set[int] = dataclasses.field(default_factory=set)

    with pytest.raises(KeyError):
        model.raw_fields(Drifted)


def test_every_stage_field_but_the_merge_intent_is_checked() -> None:
    known = {1, 2}
    for key, _ in STAGE_FIELDS:
        raw = StageState(number=2, name="Two", context_file="/c").to_raw()
        raw[key] = [[]]
        if key == "merge_intent":  # any value; anything but an object reads as none
            model.validate_stage(2, raw, known)
            assert StageState.from_raw(2, raw).merge_intent is None
            continue
        with pytest.raises(Bad, match=rf"^stages\.2\.{key}: "):
            model.validate_stage(2, raw, known)


def _orch(tmp_path: Path, text: str) -> Path:
    orch = tmp_path / "orch"
    orch.mkdir()
    (orch / "status.json").write_text(text)
    return orch


@pytest.mark.parametrize("layout", ["readable", "one line"])
def test_an_existing_file_is_rewritten_byte_for_byte(
    tmp_path: Path, layout: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file the previous autorun wrote (unknown keys, extras, progress, escapes),
    after a transaction that changes nothing: the same bytes, revision + 1; by the
    fast reader (the readable layout) and by the full one (any other layout)."""
    before = (FIXTURES / "status-v1.json").read_text()
    text = before if layout == "readable" else json.dumps(json.loads(before))
    assert (codec._read_fast(text, tmp_path / "status.json") is not None) == (layout == "readable")
    monkeypatch.setattr(codec, "FAST_MIN_CHARS", 0)  # the fast path for a small file too
    orch = _orch(tmp_path, text)
    with StatusStore(orch).transaction():
        pass
    assert (orch / "status.json").read_text() == (FIXTURES / "status-v1-rewritten.json").read_text()


# --------------------------------------------------------------------------- fast == full

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
_scalar = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | _text
_json = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)
_opt_text = st.none() | _text
_key = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
_plain = st.none() | st.booleans() | st.integers(-5, 10**15) | _text | st.lists(_text, max_size=3)


@st.composite
def _stage(draw: Any, number: int, earlier: list[int]) -> dict[str, Any]:
    stage = StageState(
        number=number,
        status=draw(st.sampled_from(STAGE_STATUSES)),
        name=draw(_text),
        depends_on=draw(st.lists(st.sampled_from(earlier), unique=True)) if earlier else [],
        context_file=draw(_text),
        branch=draw(_opt_text),
        worktree=draw(_opt_text),
        launch_attempts=draw(st.integers(0, 5)),
        merge_detail=draw(st.dictionaries(_text, _json, max_size=2)),
        merge_intent=draw(st.none() | st.dictionaries(_text, _json, max_size=2)),
        estimate_hours=draw(st.none() | st.floats(0, 100) | st.integers(0, 100)),
        counters=draw(st.dictionaries(_text, st.integers(0, 9), max_size=2)),
    )
    stage.phase("implement").current_phase = draw(st.none() | st.integers(0, 4))
    stage.phase("triage").started_at = draw(_opt_text)
    raw = stage.to_raw()
    extras = draw(st.dictionaries(_text.filter(lambda k: k not in STAGE_KEYS), _json, max_size=2))
    # and the kind a launch writes: plain values under plain names (codec._EXTRA)
    plain = draw(st.dictionaries(_key.filter(lambda k: k not in STAGE_KEYS), _plain, max_size=3))
    return {**plain, **extras, **raw}


@st.composite
def _status(draw: Any) -> dict[str, Any]:
    n = draw(st.integers(1, 6))
    stages = {str(i): draw(_stage(i, list(range(1, i)))) for i in range(1, n + 1)}
    raw = RunState(
        plan_path="/p/plan.md",
        plan_name="plan",
        project_slug="plan",
        project_root="/p",
        base_branch="main",
        orch_dir="/o",
        waves=[list(range(1, n + 1))],
        monitor=draw(st.dictionaries(_text, _json, max_size=2)),
    ).top_raw()
    raw["stages"] = stages
    raw["event_journal"] = {"offset": 0, "events": []}
    return raw


@settings(max_examples=150, deadline=None)
@given(_status(), st.sampled_from([None, 1]))
def test_the_fast_reader_answers_what_the_full_reader_answers(
    raw: dict[str, Any], touch: int | None
) -> None:
    path = Path("/o/status.json")
    text = dumps_readable(raw)
    fast = codec._read_fast(text, path)
    assert fast is not None  # whatever autorun writes, the fast path takes
    full = RunState.from_raw(json.loads(text), path)
    assert fast.views() == full.views() and fast.counts() == full.counts()
    assert fast.lowest_open_wave() == full.lowest_open_wave()
    converted = codec._read_fast(text, path)
    assert converted is not None
    converted.stages.load_all()  # every stage checked and converted from its text
    assert converted.to_raw() == full.to_raw() == read_state(text, path).to_raw()
    if touch is not None:
        fast.stages[touch].counters["x"] = 1
        full.stages[touch].counters["x"] = 1
    assert render_state(fast) == render_state(full)  # untouched stages: their text
    assert {n: fast.stages[n] for n in fast.stages} == dict(full.stages.items())


@pytest.mark.parametrize(
    "line",
    [
        '    "2": {"status": "pending", "name": "B", "depends_on": [7], "x": 1}',  # no stage 7
        '    "2": {"status": "pending", "name": "B", "depends_on": [2]}',  # itself
        '    "2": {"status": "exploded", "name": "B", "depends_on": []}',
        '    "2": {"name": "B", "status": "pending", "depends_on": []}',  # not autorun's order
        '    "02": {"status": "pending", "name": "B", "depends_on": []}',
        '    "2": {"x": [1,}, "status": "pending", "name": "B", "depends_on": []}',
        '    "2": {"branch": "b", "status": "pending", "name": "B", "depends_on": []}',
        '    "2": {"x": ["a", 1], "status": "pending", "name": "B", "depends_on": [7]}',
    ],
)
def test_what_the_fast_reader_does_not_take_goes_to_the_full_one(line: str) -> None:
    raw = json.loads((FIXTURES / "status-v1.json").read_text())
    text = dumps_readable(raw)
    lines = text.split("\n")
    i = next(k for k, v in enumerate(lines) if v.startswith('    "2": '))
    lines[i] = line + ","
    assert codec._read_fast("\n".join(lines), Path("/o/status.json")) is None


def test_a_transaction_checks_what_it_uses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a transaction, every stage's status and dependencies are checked; the rest
    of a stage when the transaction looks it up: a bad field there is one error
    naming it and nothing is written; a stage it never looks at is written back as
    the text it was read as. Reading the run (``status``, ``report``...) checks all."""
    monkeypatch.setattr(codec, "FAST_MIN_CHARS", 0)  # the fast path for a small file too
    raw = json.loads((FIXTURES / "status-v1.json").read_text())
    raw["stages"]["2"]["worktree"] = 42
    orch = _orch(tmp_path, dumps_readable(raw))
    status = orch / "status.json"
    bad_line = next(v for v in status.read_text().split("\n") if v.startswith('    "2": '))
    with pytest.raises(AutorunError, match=r"stages\.2\.worktree: expected a string, not a number"):
        StatusStore(orch).read()
    before = status.read_bytes()
    with pytest.raises(AutorunError, match=r"stages\.2\.worktree"):
        with StatusStore(orch).transaction() as txn:
            txn.state.stages[2].counters["x"] = 1
    assert status.read_bytes() == before
    with StatusStore(orch).transaction() as txn:
        txn.state.stages[3].counters["x"] = 1
    assert bad_line in status.read_text().split("\n")
    assert json.loads(status.read_text())["stages"]["3"]["counters"] == {"x": 1}


def test_fixture_is_what_autorun_writes(tmp_path: Path) -> None:
    """The fixture is a file autorun wrote (so the byte-for-byte test means something)."""
    shutil.copy(FIXTURES / "status-v1.json", tmp_path / "status.json")
    state = StatusStore(tmp_path).read()
    state.extra.pop("event_journal")
    assert (
        render_state(state, event_journal={"offset": 0, "events": []})
        == (FIXTURES / "status-v1.json").read_text()
    )


def test_the_side_channels_have_names() -> None:
    """Counters by name (mypy checks the names: autorun_py.state.side.CounterName),
    the Claude sessions a stage ran, the monitor's per-stage record."""
    from autorun_py.state.side import stage_watch

    stage = StageState(number=1, name="One", context_file="/c")
    assert stage.count("nudges") == 0
    assert stage.bump("nudges") == 1 and stage.bump("nudges") == 2
    assert stage.to_raw()["counters"] == {"nudges": 2}
    stage.add_session_id("a")
    stage.add_session_id("b")
    stage.add_session_id("a")
    assert stage.session_ids == ["a", "b"] and stage.to_raw()["claude_session_ids"] == ["a", "b"]
    stage.extra["claude_session_ids"] = "not a list"  # a hand-edited file: no crash
    assert stage.session_ids == []
    state = RunState(plan_name="p")
    stage_watch(state.monitor, 3)["nudge_streak"] = 2
    assert state.top_raw()["monitor"] == {"stages": {"3": {"nudge_streak": 2}}}


@settings(max_examples=60, deadline=None)
@given(_status())
def test_the_scheduler_weights_convert_no_stage(raw: dict[str, Any]) -> None:
    """The launcher's priorities read each stage's estimate without converting it,
    and read what the full reader reads."""
    from autorun_py.launch import _priority

    path = Path("/o/status.json")
    text = dumps_readable(raw)
    fast = codec._read_fast(text, path)
    assert fast is not None
    full = RunState.from_raw(json.loads(text), path)
    assert _priority(fast) == _priority(full)
    assert all(fast.stages.text_of(n) is not None for n in fast.stages)


def test_a_bad_estimate_is_named_when_the_launcher_reads_it(tmp_path: Path) -> None:
    raw = json.loads((FIXTURES / "status-v1.json").read_text())
    raw["stages"]["2"]["estimate_hours"] = -3
    state = codec._read_fast(dumps_readable(raw), tmp_path / "status.json")
    assert state is not None
    with pytest.raises(
        AutorunError, match=r"stages\.2\.estimate_hours: expected a number of hours"
    ):
        state.stages.estimate_of(2)


def test_a_small_file_is_read_whole(tmp_path: Path) -> None:
    """Below FAST_MIN_CHARS a transaction parses the whole file (as quick, and no
    pattern to compile in a bookkeeping call); above it, the fast path."""
    text = (FIXTURES / "status-v1.json").read_text()
    assert len(text) < codec.FAST_MIN_CHARS
    assert read_state(text, tmp_path / "status.json", lazy=True).stages.text_of(2) is None


def test_a_launched_stage_line_is_taken_whole_by_the_one_pattern() -> None:
    """The extras a launch gives a stage (its launcher, session ids, start time), before
    its status, do not send its line to the key-by-key reader (at 100 launched stages
    that was most of a read); a value that is not plain still does."""
    plain = codec._patterns()[1]
    head = '"status": "in_progress", "name": "B", "depends_on": [1], "branch": "x"}'
    extras = '"launcher": "tmux", "claude_session_ids": ["a-1", "b-2"], "launch_n": 3, '
    assert plain.match(f'    "2": {{{extras}"session_started_at": "2026-12-01T17:20:28Z", {head}')
    assert plain.match(f'    "2": {{"cleanup_tip": "", "k": null, "ok": true, "ids": [], {head},')
    assert not plain.match(f'    "2": {{"x": {{"y": 1}}, {head}')  # a nested value
    assert not plain.match(f'    "2": {{"name": "A", {head}')  # a key of autorun's own
    line = f'    "2": {{{extras}"x": {{"y": [1]}}, {head}'
    assert codec._stage_line(line, True) is not None  # (taken key by key instead)
