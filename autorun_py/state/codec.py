"""``status.json`` text <-> the model: the readable layout, and a reader that
does not parse the stages it does not need.

The layout (:func:`dumps_readable`) is one top-level key per line and one stage
per line. A file in exactly that layout is read by :func:`read_state`'s fast
path: the top level is parsed and checked in full, and each stage line only as
far as its status and dependencies (checked, with the stage numbers, the waves
and the dependency cycle check, as on every read); the rest of a stage is
checked and converted when it is first looked up (:class:`~autorun_py.state.
model.StageMap`), and a stage never looked up is written back as the text it
was read as. Anything else (the seed's own format, an older schema, a file a
person reformatted, any field the fast path does not accept) takes the full
path: the whole file parsed, every field checked, as before; so a bad file
gets the same one error naming the field either way.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Optional, cast

from autorun_py.errors import AutorunError
from autorun_py.state.model import (
    SCHEMA_VERSION,
    STAGE_KEYS,
    LazyStage,
    RunState,
    StageMap,
    validate_refs,
    validate_top,
)
from autorun_py.state.schema import MAX_STAGE, Bad
from autorun_py.statuses import STATUSES

_ENCODE = json.JSONEncoder(ensure_ascii=False).encode  # built once, not per value
_ENCODE_KEY = json.JSONEncoder().encode
# json's own C scanner, for the values of keys autorun does not know (not in typeshed)
_SCAN: Callable[[str, int], tuple[Any, int]] = cast(Any, json.JSONDecoder()).scan_once
scanstring: Callable[[str, int], tuple[str, int]] = cast(Any, json.decoder).scanstring

_STAGES_OPEN = '\n  "stages": {\n'
_STAGES_CLOSE = "\n  }"
_INT = "(?:0|[1-9][0-9]{0,14})"  # < 2**53
_STR = r'"[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*"'
# A stage as autorun writes it, from its status on (any keys autorun does not know
# come before it): the status, the name, the dependencies.
_STAGE_HEAD = re.compile(
    '"status": "(' + "|".join(STATUSES) + ')", "name": (?:' + _STR + "|null), "
    rf'"depends_on": \[({_INT}(?:, {_INT})*)?\], '
)


def dumps_readable(data: Any, stage_texts: Optional[list[tuple[int, str]]] = None) -> str:
    """JSON with one top-level key per line and one stage per line.

    Readable with ``cat`` (as the seed suggests), yet encoded by the C encoder:
    ``json.dumps(indent=...)`` takes the pure-Python path and was half the cost
    of a status update. One encoder object serves every value
    (``json.dumps(..., ensure_ascii=False)`` builds a new one per call).
    ``stage_texts``: the ``stages`` object's entries as ``(number, JSON text)``.
    """
    if not isinstance(data, dict):
        return _ENCODE(data)
    enc = _ENCODE
    parts = []
    for key, value in data.items():
        if key == "stages" and stage_texts is not None:
            if stage_texts:
                inner = ",\n".join([f'    "{n}": {text}' for n, text in stage_texts])
                parts.append(f'  "stages": {{\n{inner}\n  }}')
            else:
                parts.append('  "stages": {}')
        elif isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            inner = ",\n".join([f"    {enc(k)}: {enc(v)}" for k, v in value.items()])
            parts.append(f"  {_ENCODE_KEY(key)}: {{\n{inner}\n  }}")
        else:
            parts.append(f"  {_ENCODE_KEY(key)}: {enc(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def render_state(state: RunState, **top: Any) -> str:
    """The status file's text for ``state`` (``top``: keys added at the end)."""
    raw = state.top_raw()
    raw.update(top)
    stages = state.stages
    texts = []
    for n in sorted(stages):
        text = stages.text_of(n)
        texts.append((n, text if text is not None else _ENCODE(stages[n].to_raw())))
    return dumps_readable(raw, texts)


def parse_full(text: str, path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise AutorunError(f"status file is not valid JSON: {exc}", path=path) from None
    except RecursionError:
        raise AutorunError("status file is nested too deeply", path=path) from None
    if not isinstance(raw, dict):
        raise AutorunError("status file does not hold a JSON object", path=path)
    return raw


def read_state(text: str, path: Path, *, lazy: bool = False) -> RunState:
    """The run in ``text`` (the fast path when the layout allows, else the full one).

    Every field is checked, unless ``lazy``: then each stage's status and
    dependencies are, and the rest of a stage when it is first looked up (a
    transaction: what it changes is checked before it is written; a stage it never
    looks at is written back as it was read).
    """
    state = _read_fast(text, path)
    if state is None:
        return RunState.from_raw(parse_full(text, path), path)
    if not lazy:
        state.stages.load_all()
    return state


# A whole stage line whose stage has no keys autorun does not know (most do not).
_PLAIN_LINE = re.compile(
    r'    "([1-9][0-9]{0,5})": (\{' + _STAGE_HEAD.pattern + r".*\})(,?)", re.DOTALL
)


def _stage_line(line: str, last: bool) -> Optional[tuple[int, LazyStage]]:
    """``    "N": {...},`` -> (N, the stage as text with its status and dependencies)."""
    m = _PLAIN_LINE.fullmatch(line)
    if m is not None and (m.group(5) == "") == last:
        deps = m.group(4)
        return int(m.group(1)), LazyStage(
            m.group(2), m.group(3), tuple(int(d) for d in deps.split(", ")) if deps else ()
        )
    end = line.find('": {', 5)
    if end < 0 or not line.startswith('    "'):
        return None
    key = line[5:end]
    if not (key.isdigit() and key.isascii() and key[0] != "0" and len(key) <= 6):
        return None
    value = line[end + 3 :] if last else line[end + 3 : -1]
    if not value.endswith("}") or not (last or line.endswith(",")):
        return None
    pos = 1
    try:
        while not value.startswith('"status": ', pos):  # keys autorun does not know
            if value[pos] != '"':
                return None
            name, pos = scanstring(value, pos + 1)
            if name in STAGE_KEYS or not value.startswith(": ", pos):
                return None
            _, pos = _SCAN(value, pos + 2)
            if not value.startswith(", ", pos):
                return None
            pos += 2
    except (StopIteration, ValueError, RecursionError, IndexError):
        return None
    m = _STAGE_HEAD.match(value, pos)
    if m is None:
        return None
    deps = m.group(2)
    return int(key), LazyStage(
        value, m.group(1), tuple(int(d) for d in deps.split(", ")) if deps else ()
    )


def _read_fast(text: str, path: Path) -> Optional[RunState]:
    start = text.find(_STAGES_OPEN)
    if start < 0:
        return None
    body = start + len(_STAGES_OPEN)
    close = text.find(_STAGES_CLOSE, body)
    if close < 0:
        return None
    outer: list[list[tuple[str, Any]]] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        outer[:] = [items]  # the outermost object is the last one to close
        return dict(items)

    try:
        top = json.loads(
            text[:start] + '\n  "stages": {}' + text[close + len(_STAGES_CLOSE) :],
            object_pairs_hook=pairs,
        )
        validate_top(top)
    except (ValueError, RecursionError, Bad):
        return None
    if [k for k, _ in outer[0] if k == "stages"] != ["stages"]:
        return None  # a second key of that name: the full parser decides
    if top.get("schema_version") != SCHEMA_VERSION or top["stages"] != {}:
        return None
    lines = text[body:close].split("\n")
    lazy: dict[int, LazyStage] = {}
    last = len(lines) - 1
    for i, line in enumerate(lines):
        entry = _stage_line(line, i == last)
        if entry is None or entry[0] in lazy or entry[0] > MAX_STAGE:
            return None
        lazy[entry[0]] = entry[1]
    known = set(lazy)
    deps = {n: st.depends_on for n, st in lazy.items()}
    for n, ds in deps.items():
        for d in ds:
            if d not in known or d == n:
                return None
    try:
        validate_refs(top, known, deps)
    except Bad:
        return None
    del top["stages"]
    return RunState.from_top(top, StageMap.of_texts(lazy, path), path)
