"""The master plan's grammar: the Markdown it reads through, the line patterns
(stage and wave headings, dependency, estimate and table lines), and the
parsing of one dependency or estimate value. Pure functions over strings."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

_NameGroup = tuple[str, tuple[str, ...]]


# --------------------------------------------------------------------------- markdown

_BLOCK_MD: Optional[MarkdownIt] = None
_INLINE_MD: Optional[MarkdownIt] = None


def _block_md() -> MarkdownIt:
    """Block-level parser (inline parsing is done lazily, only where needed)."""
    global _BLOCK_MD
    if _BLOCK_MD is None:
        from markdown_it import MarkdownIt

        _BLOCK_MD = MarkdownIt("commonmark").enable("table").disable("inline")
    return _BLOCK_MD


def _plain_lines(content: str) -> list[str]:
    """The plain text of inline Markdown ``content``, one string per source line."""
    if not _INLINE_SYNTAX.search(content):
        return [line.strip() for line in content.split("\n")]
    global _INLINE_MD
    if _INLINE_MD is None:
        from markdown_it import MarkdownIt

        _INLINE_MD = MarkdownIt("commonmark")
    lines: list[str] = [""]
    # The inline parser alone (content is already normalized by the block parse).
    for child in _INLINE_MD.inline.parse(content, _INLINE_MD, {}, []):
        if child.type in ("text", "text_special"):
            lines[-1] += child.content
        elif child.type == "code_inline":  # keep the backticks: `--json` is part of a name
            lines[-1] += child.markup + child.content + child.markup
        elif child.type == "image":
            lines[-1] += "".join(c.content for c in child.children or ())
        elif child.type in ("softbreak", "hardbreak"):
            lines.append("")
    return lines


# Characters that can start inline syntax; text without any of them is already plain.
_INLINE_SYNTAX = re.compile(r"[\\`*_\[\]!<>&~]|  $", re.MULTILINE)


def _plain(content: str) -> str:
    return " ".join(_plain_lines(content))


# --------------------------------------------------------------------------- patterns

_I = re.IGNORECASE
_NUM = r"[0-9]+"
_SEP_HEAD = r"\s*(?:[:.)|\-–—]+\s*|\s+|$)"
_STAGE_HEAD = re.compile(
    r"^[\W_]*?\bstage\s*#?\s*(" + _NUM + r")(?![0-9]|\.[0-9]|[^\W\d_])" + _SEP_HEAD + r"(.*)$",
    _I | re.DOTALL,
)
_STAGE_NEAR = re.compile(r"^[\W_]*?\bstage\s*#?\s*[-−+]?[0-9]", _I)
_TABLE_STAGE_CELL = re.compile(
    r"^[\W_]*?(?:stage\s*)?#?\s*(" + _NUM + r")(?![0-9]|\.[0-9]|[^\W\d_])" + _SEP_HEAD + r"(.*)$",
    _I | re.DOTALL,
)
# "Wave 2", "Wave 2: Core", "Wave 2 — Core", "Wave 2 (parallel)"; not a title such
# as "Wave 2 master plan", where the number is followed by more words.
_WAVE_HEAD = re.compile(r"^[\W_]*?\bwave\s*#?\s*(" + _NUM + r")(?![0-9])\s*(?:$|[:.)(|\-–—])", _I)
_WAVE_LINE = re.compile(r"^wave\s*[:：]\s*#?\s*(" + _NUM + r")(?![0-9])", _I)

_DEP_WORDS = r"(?:depends\s+on|depend\s+on|dependencies|dependency|deps|blocked\s+by)"
_DEP_COLON = re.compile(r"^" + _DEP_WORDS + r"\s*(?:\([^)]*\))?\s*(?:[:：]|\s[-–—])\s*(.*)$", _I)
_DEP_BARE = re.compile(r"^" + _DEP_WORDS + r"\s*(?:\([^)]*\))?\s*[:：]?\s*$", _I)
_DEP_LOOSE = re.compile(r"^(?:depends\s+on|blocked\s+by)\s+(.*)$", _I)
# Without a colon, only "Depends on Stage 1..." / "Depends on none" is a dependency line;
# "Depends on the cache being warm" is prose.
_LOOSE_VALUE = re.compile(r"^[\s*_`]*(?:stages?\s*#?\s*[0-9]|#?[0-9]|none\b|nothing\b)", _I)
_DEP_PREFILTER = re.compile(
    r"(?im)^[\s*_`~>+\-]*(?:depend|deps|blocked|estimat|effort|duration|time\s+estimate|wave)"
)

_HEAD_DEPS = re.compile(
    r"\s*[(\[]\s*(?:depends\s+on|dependencies|deps|blocked\s+by)\s*[:：]?\s*([^()\[\]]*)[)\]]\s*$",
    _I,
)
_EST_LINE = re.compile(
    r"^(?:estimated?(?:\s+(?:effort|time|duration|hours))?|effort|time\s+estimate|duration)"
    r"\s*(?:\([^)]*\))?\s*[:：]\s*(.*)$",
    _I,
)
_EST_VALUE = re.compile(
    r"([0-9]+(?:\.[0-9]+)?)(?:\s*(?:-|–|—|to)\s*([0-9]+(?:\.[0-9]+)?))?\s*"
    r"(h|hrs?|hours?|m|mins?|minutes?|d|days?|w|wks?|weeks?)?(?![a-z])",
    _I,
)
_UNIT_HOURS = {"h": 1.0, "m": 1 / 60, "d": 8.0, "w": 40.0}

_NONE_VALUE = re.compile(
    r"^(?:none|nothing|no\b|n/?a\b|nil\b|null\b|independent|not\s+applicable|"
    r"-+$|—|–|∅|\(\s*none\s*\)|\[\s*\])",
    _I,
)
_RANGE = r"(?:\s*(?:-|–|—|to|through|\.\.)\s*(?:#|s)?\s*[0-9]+)?"
_LIST_SEP = r"\s*(?:,\s*and\b|,|;|&|\+|/|\band\b|\bor\b)?\s*"
_ITEM = r"(?:#|s)?\s*[0-9]+(?![0-9])" + _RANGE
_NUM_LIST = re.compile(r"^\s*" + _ITEM + r"(?:" + _LIST_SEP + _ITEM + r")*\s*$", _I)
_RANGE_ITEM = re.compile(
    r"([0-9]+)(?:\s*(?:-|–|—|to|through|\.\.)\s*(?:stage\s*)?(?:#|s)?\s*([0-9]+))?", _I
)
_PARENS = re.compile(r"\([^()]*\)|\[[^\[\]]*\]\([^()]*\)")
_HR_LINE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")

MAX_STAGE_NUMBER = 10**9 - 1
MAX_RANGE = 1000


class _Unreadable(Exception):
    """A dependency value that cannot be read (message is the reason)."""


def _to_int(digits: str) -> int:
    if len(digits.lstrip("0")) > 9:
        raise _Unreadable(f"stage number {digits[:12]}... is too large")
    return int(digits)


@dataclass
class _DepValue:
    """What a dependency line's value names: stage numbers and names, or nothing."""
    numbers: tuple[int, ...] = ()
    names: tuple[str, ...] = ()  # references by stage name, resolved once all stages are known
    empty: bool = False  # nothing after the colon
    # (a comma-separated chunk without numbers, its name parts): resolved as a whole first
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()


def _expand(text: str) -> list[int]:
    out: list[int] = []
    for m in _RANGE_ITEM.finditer(text):
        a = _to_int(m.group(1))
        if m.group(2) is None:
            out.append(a)
            continue
        b = _to_int(m.group(2))
        if b < a:
            raise _Unreadable(f"the range {a}-{b} runs backwards")
        if b - a > MAX_RANGE:
            raise _Unreadable(f"the range {a}-{b} is too large")
        out.extend(range(a, b + 1))
    return out


# One part of a dependency list: "Stage 3", "3", "#3", "S3", "Stages 3-5", "3 to 5".
_PART_NUMBERS = re.compile(
    r"^(?:stages?\s*)?(?:#|s)?\s*[0-9]+(?![0-9])"
    r"(?:\s*(?:-|–|—|to|through|\.\.)\s*(?:stages?\s*)?(?:#|s)?\s*[0-9]+)?$",
    _I,
)
_CHUNK_SPLIT = re.compile(r"[,;]")
_TITLED_REF = re.compile(r"^stage\s*#?\s*([0-9]{1,9})\s*(?::|—|–|\s-)\s*(\S.*)$", _I)
_PART_SPLIT = re.compile(r"\s*(?:&|\+|/|\band\b|\bor\b)\s*", _I)
_PART_STRIP = " \t*_`~.:'\""

DEPENDENCY_FORMS = (
    "expected stage numbers ('Stage 1, Stage 2', '1, 2', 'Stages 1-3', '#1'), "
    "a stage's exact name, or 'None'; notes go in parentheses ('Stage 1 (the API)')"
)


def parse_dependency_value(value: str) -> _DepValue:
    """Read the text after ``Depends on:``; raises _Unreadable.

    Every comma/``and``-separated part is either stage numbers or a stage name
    (``names``, resolved or rejected once all stages are known): no part is
    dropped because it is not understood.
    """
    cleaned = value.strip().strip(" \t*_`~.;,:")
    if not cleaned:
        return _DepValue(empty=True)
    if _NONE_VALUE.match(cleaned):
        return _DepValue()
    unparened = cleaned
    while True:
        nxt = _PARENS.sub(" ", unparened)
        if nxt == unparened:
            break
        unparened = nxt
    if not re.search(r"[0-9]", unparened) and re.search(r"[0-9]", cleaned):
        unparened = re.sub(r"[()\[\]]", " ", cleaned)
    unparened = unparened.strip().strip(" \t*_`~.;,:")
    if _NUM_LIST.match(unparened):
        return _DepValue(numbers=tuple(_expand(unparened)))
    numbers: list[int] = []
    groups: list[tuple[str, tuple[str, ...]]] = []
    for chunk in _CHUNK_SPLIT.split(unparened):
        chunk = re.sub(r"\s+", " ", chunk.strip(_PART_STRIP))
        names: list[str] = []
        mixed = False
        if _TITLED_REF.match(chunk):  # "Stage 3: Build and deploy", checked against the title
            groups.append((chunk, (chunk,)))
            continue
        for part in _PART_SPLIT.split(chunk):
            part = part.strip(_PART_STRIP)
            if not part:
                continue
            if _PART_NUMBERS.match(part):
                numbers.extend(_expand(part))
                mixed = True
            else:
                names.append(part)
        if names:
            # A name may itself contain "and" ("Build and deploy"): the whole chunk too.
            groups.append(("" if mixed else chunk, tuple(names)))
    if not numbers and not groups:
        raise _Unreadable("no stage numbers")
    return _DepValue(
        numbers=tuple(numbers),
        names=tuple(n for _, parts in groups for n in parts),
        groups=tuple(groups),
    )


_NUMBER_WORDS = {
    w: n
    for n, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_STOP_WORDS = {"the", "a", "an", "stage", "stages", "step", "part", "phase", "of"}


def _suggest(ref: str, names: dict[int, str]) -> str:
    """'; did you mean ...?' for an unreadable dependency part, or ''."""
    words = _norm_name(ref).split()
    numbers = [_NUMBER_WORDS[w] for w in words if w in _NUMBER_WORDS]
    digits = re.findall(r"[0-9]+", ref)
    if len(numbers) + len(digits) == 1:
        n = numbers[0] if numbers else int(digits[0][:9])
        return f" (did you mean 'Stage {n}'?)"
    key = [w for w in words if w not in _STOP_WORDS]
    if key:
        fits = [n for n, name in names.items() if set(key) <= set(_norm_name(name).split())]
        if len(fits) == 1:
            return f" (did you mean 'Stage {fits[0]}', {names[fits[0]]!r}?)"
    return ""


def _name_groups(dv: _DepValue) -> tuple[_NameGroup, ...]:
    return dv.groups


# A loose dependency line ("Depends on Stage 1 ...", no colon) that names a stage is
# read strictly: a part that is not understood is an error, not prose.
_LOOSE_STAGE = re.compile(r"^[\s*_`]*stages?\s*#?\s*[0-9]", _I)


def parse_estimate(value: str) -> Optional[float]:
    """Hours in an estimate such as ``3h``, ``90 min``, ``2-3 days`` (upper bound), or None."""
    m = _EST_VALUE.search(value)
    if not m:
        return None
    amount = float(m.group(2) or m.group(1))
    unit = (m.group(3) or "h")[0].lower()
    hours = amount * _UNIT_HOURS.get(unit, 1.0)
    if hours != hours or hours in (float("inf"), float("-inf")) or hours > 1e7:
        return None
    return hours


def _norm_name(name: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", name.casefold())).strip()


def _norm_header(text: str) -> str:
    return re.sub(r"\s+", " ", text.casefold()).strip(" *_`:.")


def _clean_name(name: str) -> str:
    name = _CONTROL.sub(" ", name)
    name = re.sub(r"\s+", " ", name).strip()
    return name.strip(" *_~").strip()


def _fmt_list(numbers: Sequence[int], limit: int = 12) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f", ... ({len(numbers)} in all)" if len(numbers) > limit else "")
