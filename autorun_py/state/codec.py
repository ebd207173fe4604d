"""``status.json`` text <-> the model: the readable layout, and a reader that
does not parse the stages a transaction does not need.

The layout (:func:`dumps_readable`) is one top-level key per line and one stage
per line. A transaction reads a file in exactly that layout by the fast path
(:func:`read_state` with ``lazy``): the top level is parsed and checked in full,
and each stage line only as far as its status and dependencies (checked, with
the stage numbers, the waves and the dependency cycle check, as on every read);
the rest of a stage is checked and converted when it is first looked up
(:class:`~autorun_py.state.run.StageMap`; a bad field is then one error naming
it, before anything is written), and a stage never looked up is written back as
the text it was read as. Anything else (the seed's own format, an older schema,
a file a person reformatted, any line the fast path does not take) goes to the
full reader, as does every plain read (``status``, ``report``, the monitor):
the whole file parsed, every field checked, so a bad file gets the same one
error naming the field either way.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any, Callable, Optional, cast

from autorun_py.errors import AutorunError
from autorun_py.state.run import (
    LazyStage,
    RunState,
    StageMap,
    validate_refs,
    validate_top,
)
from autorun_py.state.schema import MAX_STAGE, Bad
from autorun_py.state.stage import (
    SCHEMA_VERSION,
    STAGE_KEYS,
)
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
_STAGE_HEAD = (
    '"status": "(' + "|".join(STATUSES) + ')", "name": (?:' + _STR + "|null), "
    rf'"depends_on": \[({_INT}(?:, {_INT})*)?\], '
)


def dumps_readable(data: Any, stage_lines: Optional[list[str]] = None) -> str:
    """JSON with one top-level key per line and one stage per line.

    Readable with ``cat`` (as the seed suggests), yet encoded by the C encoder:
    ``json.dumps(indent=...)`` takes the pure-Python path and was half the cost
    of a status update. One encoder object serves every value
    (``json.dumps(..., ensure_ascii=False)`` builds a new one per call).
    ``stage_lines``: the lines of the ``stages`` object, already encoded (they
    and the top-level lines are joined once: the text is copied once).
    """
    if not isinstance(data, dict):
        return _ENCODE(data)
    enc = _ENCODE
    parts: list[str] = []
    for key, value in data.items():
        if key == "stages" and stage_lines is not None:
            if stage_lines:
                parts.append('  "stages": {\n' + stage_lines[0])
                parts.extend(stage_lines[1:])
                parts[-1] += "\n  }"
            else:
                parts.append('  "stages": {}')
        elif isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            inner = ",\n".join([f"    {enc(k)}: {enc(v)}" for k, v in value.items()])
            parts.append(f"  {_ENCODE_KEY(key)}: {{\n{inner}\n  }}")
        else:
            parts.append(f"  {_ENCODE_KEY(key)}: {enc(value)}")
    if not parts:
        return "{\n\n}\n"
    parts[0] = "{\n" + parts[0]
    parts[-1] += "\n}\n"
    return ",\n".join(parts)


def render_state(state: RunState, **top: Any) -> str:
    """The status file's text for ``state`` (``top``: keys added at the end); a stage
    never looked up since it was read is its text as read."""
    raw = state.top_raw()
    raw.update(top)
    stages, enc = state.stages, _ENCODE
    lines = [
        f'    "{n}": {enc(stages[n].to_raw()) if text is None else text}'
        for n, text in stages.texts()
    ]
    return dumps_readable(raw, lines)


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
    state = _read_fast(text, path) if lazy and len(text) >= FAST_MIN_CHARS else None
    if state is None:  # every field checked: the whole file parsed at once is quickest
        return RunState.from_raw(parse_full(text, path), path)
    return state


# A key autorun does not know with a plain value (a string, an integer, a literal,
# a list of strings: the launcher's and the session's extras a launched stage
# carries before its status). Anything else goes to :func:`_stage_line`.
_EXTRA = (
    '"(?!(?:' + "|".join(sorted(STAGE_KEYS)) + ')")[a-z_][a-z0-9_]*": (?:'
    + _STR + "|" + _INT + r"|null|true|false|\[(?:" + _STR + "(?:, " + _STR + r")*)?\]), "
)
# A whole stage line: its plain extras, then what autorun writes from its status on.
_PLAIN_LINE = r'^    "([1-9][0-9]{0,5})": (\{(?:' + _EXTRA + ")*" + _STAGE_HEAD + r".*\})(,?)$"
# Below this size the whole file is parsed (as quick, with no pattern to compile:
# ~1.5 ms once per process). Measured: at 30 stages (25 KB) a transaction takes
# 1.0-1.8 ms on the fast path against 3.5-3.8 ms parsed whole, a lazy read
# 0.1-0.2 ms against 0.8-1.4; at 6 stages (5.5 KB) the whole parse is 0.2-0.3 ms.
FAST_MIN_CHARS = 12 << 10


@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The stage patterns, compiled on first use (a bookkeeping call on a small run
    never needs them)."""
    return re.compile(_STAGE_HEAD), re.compile(_PLAIN_LINE, re.MULTILINE)


def _deps(text: Optional[str]) -> tuple[int, ...]:
    return tuple(map(int, text.split(", "))) if text else ()


def _stage_line(line: str, last: bool) -> Optional[tuple[int, LazyStage]]:
    """``    "N": {...},`` of a stage with keys autorun does not know (before its
    status: each key and value parsed by json's own scanner) -> (N, the stage)."""
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
        while not value.startswith('"status": ', pos):
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
    m = _patterns()[0].match(value, pos)
    if m is None:
        return None
    return int(key), LazyStage(value, m.group(1), _deps(m.group(2)))


def _stage_lines(block: str) -> Optional[dict[int, LazyStage]]:
    """The stages of the ``stages`` object's lines, or None (not autorun's layout)."""
    plain = _patterns()[1]
    found = plain.findall(block)
    if len(found) == block.count("\n") + 1:  # every line a plain stage line
        if found[-1][4] or not all(f[4] for f in found[:-1]):
            return None
        lazy = {
            int(k): LazyStage(t, s, tuple(map(int, d.split(", "))) if d else ())
            for k, t, s, d, _ in found
        }
        return lazy if len(lazy) == len(found) else None
    lazy = {}
    pos, size = 0, len(block)
    for m in plain.finditer(block):
        start = m.start()
        if start != pos:  # lines of stages with keys autorun does not know
            for line in block[pos : start - 1].split("\n"):
                entry = _stage_line(line, False)
                if entry is None or entry[0] in lazy:
                    return None
                lazy[entry[0]] = entry[1]
        key, text, status, deps, comma = m.groups()
        pos = m.end() + 1
        n = int(key)
        if (comma == ",") != (pos <= size) or n in lazy:
            return None
        lazy[n] = LazyStage(text, status, _deps(deps))
    if pos < size:
        lines = block[pos:].split("\n")
        for i, line in enumerate(lines):
            entry = _stage_line(line, i == len(lines) - 1)
            if entry is None or entry[0] in lazy:
                return None
            lazy[entry[0]] = entry[1]
    return lazy


def _read_fast(text: str, path: Path) -> Optional[RunState]:
    start = text.find(_STAGES_OPEN)
    if start < 0:
        return None
    body = start + len(_STAGES_OPEN)
    # the key after the stages is always the current wave (RunState's field order);
    # searched from the end: only the few lines after the stages are read
    close = text.rfind(_STAGES_CLOSE + ',\n  "current_wave": ')
    if close < body:
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
    lazy = _stage_lines(text[body:close])
    if lazy is None or (lazy and max(lazy) > MAX_STAGE):
        return None
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
