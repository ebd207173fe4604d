"""Reading and parsing a master plan: the bounded, UTF-8 file read and ``_Parser``.

Over 500 lines for a reason: ``_Parser`` is one pass over the plan's block
tokens whose steps (headings, sections, tables, dependency lines, merging,
validation) share the state of that one pass; the patterns and value parsers it
uses are in :mod:`autorun_py.plan.grammar`, the model in
:mod:`autorun_py.plan.model`."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from autorun_py import graph
from autorun_py.errors import AutorunError
from autorun_py.names import plan_name_from_path, project_slug
from autorun_py.plan.grammar import (
    _DEP_BARE,
    _DEP_COLON,
    _DEP_LOOSE,
    _DEP_PREFILTER,
    _EST_LINE,
    _HEAD_DEPS,
    _HR_LINE,
    _I,
    _LOOSE_STAGE,
    _LOOSE_VALUE,
    _STAGE_HEAD,
    _STAGE_NEAR,
    _TABLE_STAGE_CELL,
    _TITLED_REF,
    _WAVE_HEAD,
    _WAVE_LINE,
    DEPENDENCY_FORMS,
    _block_md,
    _clean_name,
    _fmt_list,
    _name_groups,
    _NameGroup,
    _norm_header,
    _norm_name,
    _plain,
    _plain_lines,
    _suggest,
    _to_int,
    _Unreadable,
    parse_dependency_value,
    parse_estimate,
)
from autorun_py.plan.model import Plan, PlanError, PlanProblem, Stage, front_matter_values

if TYPE_CHECKING:
    from markdown_it.token import Token

# --------------------------------------------------------------------------- loading


PLAN_SIZE_LIMIT = 4 << 20  # 4 MiB: far beyond any plan a person writes


def load_plan(path: Path) -> Plan:
    """Read and parse the master plan at ``path``.

    Raises :class:`PlanError` for an invalid plan (including a file that is not
    UTF-8 text) and :class:`AutorunError` naming the path when it cannot be read.
    """
    from autorun_py.fsutil import read_bytes_bounded

    path = Path(path)
    try:
        # Bounded and non-blocking: a FIFO, /dev/zero or a huge file is refused.
        data = read_bytes_bounded(path, PLAN_SIZE_LIMIT)
    except FileNotFoundError:
        raise AutorunError("no such file", path=path) from None
    except AutorunError as exc:
        if "is a directory" in exc.message:
            raise AutorunError("is a directory, not a master plan file", path=path) from None
        raise
    return parse_plan(decode_plan_bytes(data, path), path)


def decode_plan_bytes(data: bytes, path: Path) -> str:
    """``data`` as UTF-8 text (a BOM is allowed), or PlanError naming the bad line."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise PlanError(str(path), [PlanProblem(1, "not UTF-8 text (it looks like UTF-16)")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line = data[:start].count(b"\n") + 1
        col = start - (data.rfind(b"\n", 0, start) + 1) + 1
        bad = data[start : start + 1].hex()
        raise PlanError(
            str(path),
            [PlanProblem(line, f"not UTF-8 text (byte 0x{bad} at column {col})")],
        ) from None
    return text


def parse_plan(text: str, path: Path) -> Plan:
    """Parse master plan ``text`` (read from ``path``, which names the plan)."""
    return _Parser(text, Path(os.path.abspath(path))).run()


# --------------------------------------------------------------------------- parser


@dataclass
class _Heading:
    """A heading of the plan, where it is and what it says."""
    index: int  # token index of heading_open
    level: int
    line0: int  # 0-based first line of the heading
    end0: int  # 0-based line after the heading
    setext_dash: bool
    text: str


# A group of name references from one value: (the whole value, its parts).


@dataclass
class _DepInfo:
    """A stage's dependency line, before the names in it are resolved."""
    numbers: tuple[int, ...]
    names: tuple[_NameGroup, ...]
    line: int  # 1-based
    raw: str


@dataclass
class _Raw:
    """A stage as one source (a section or a table row) describes it."""

    number: int
    name: str
    line: int
    source: str  # "section" or "table"
    deps: Optional[_DepInfo] = None
    scope: str = ""
    estimate: Optional[float] = None
    declared_wave: Optional[int] = None


@dataclass
class _Merged:
    """A stage as the parser assembles it from its heading and body."""
    number: int
    name: str
    line: int
    scope: str
    estimate: Optional[float]
    declared_wave: Optional[int]
    declared_wave_line: int
    dep_lines: dict[int, int]  # dependency -> 1-based line naming it
    has_deps: bool
    in_section: bool


class _Parser:
    def __init__(self, text: str, path: Path) -> None:
        self.path = path
        self.problems: list[PlanProblem] = []
        self.warnings: list[tuple[int, str]] = []
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        self.lines = text.split("\n")
        self.front_matter: dict[str, str] = {}
        self._blank_front_matter()
        self.text = "\n".join(self.lines)
        self.name_refs: list[tuple[_Raw, _DepInfo]] = []

    # -- helpers

    def error(self, line: Optional[int], message: str) -> None:
        self.problems.append(PlanProblem(line, message))

    def warn(self, line: Optional[int], message: str) -> None:
        self.warnings.append((line or 0, message))

    def _blank_front_matter(self) -> None:
        """Blank a YAML front matter block (keeping line numbers)."""
        if not self.lines or self.lines[0].strip() != "---":
            return
        for k in range(1, min(len(self.lines), 200)):
            stripped = self.lines[k].strip()
            if stripped in ("---", "..."):
                self.front_matter = front_matter_values(self.lines[1:k])
                for j in range(k + 1):
                    self.lines[j] = ""
                return
            if stripped and not re.match(r"^(?:[\w.-]+\s*:|\s|-\s|#)", self.lines[k]):
                return

    # -- main

    def run(self) -> Plan:
        if "\x00" in self.text:
            line = self.text[: self.text.index("\x00")].count("\n") + 1
            raise PlanError(str(self.path), [PlanProblem(line, "not text: contains a NUL byte")])
        tokens = _block_md().parse(self.text)
        headings = self._headings(tokens)
        raws = self._sections(tokens, headings)
        raws.extend(self._tables(tokens))
        merged = self._merge(raws)
        if not merged:
            if not self.problems:
                self.error(
                    None,
                    "no stages found: expected headings like '## Stage 1: Name' or a table "
                    "with 'Stage' and 'Depends on' columns",
                )
            raise PlanError(str(self.path), self._sorted_problems())
        return self._build(merged)

    def _sorted_problems(self) -> list[PlanProblem]:
        seen: set[tuple[Optional[int], str]] = set()
        out: list[PlanProblem] = []
        for p in sorted(self.problems, key=lambda p: (p.line is not None, p.line or 0)):
            if (p.line, p.message) not in seen:
                seen.add((p.line, p.message))
                out.append(p)
        return out

    # -- headings and sections

    def _headings(self, tokens: list[Token]) -> list[_Heading]:
        out: list[_Heading] = []
        for i, tok in enumerate(tokens):
            if tok.type != "heading_open" or tok.level != 0 or tok.map is None:
                continue
            inline = tokens[i + 1]
            out.append(
                _Heading(
                    index=i,
                    level=int(tok.tag[1:]) if tok.tag[1:].isdigit() else 1,
                    line0=tok.map[0],
                    end0=tok.map[1],
                    setext_dash=tok.markup[:1] == "-",
                    text=_plain(inline.content),
                )
            )
        return out

    def _sections(self, tokens: list[Token], headings: list[_Heading]) -> list[_Raw]:
        kinds: list[str] = []
        for h in headings:
            if _STAGE_HEAD.match(h.text) or _STAGE_NEAR.match(h.text):
                kinds.append("stage")
            elif _WAVE_HEAD.match(h.text):
                kinds.append("wave")
            else:
                kinds.append("other")
        raws: list[_Raw] = []
        wave: Optional[tuple[int, int, int]] = None  # (number, level, line)
        for k, h in enumerate(headings):
            kind = kinds[k]
            if kind == "wave":
                m = _WAVE_HEAD.match(h.text)
                assert m is not None
                try:
                    wave = (_to_int(m.group(1)), h.level, h.line0 + 1)
                except _Unreadable:
                    wave = None
                continue
            if kind == "other":
                if wave is not None and h.level <= wave[1] and not h.setext_dash:
                    wave = None
                continue
            line = h.line0 + 1
            m = _STAGE_HEAD.match(h.text)
            number = 0
            if m is not None:
                try:
                    number = _to_int(m.group(1))
                except _Unreadable as exc:
                    self.error(line, str(exc))
                    continue
            if m is None or number < 1:
                self.error(
                    line,
                    f"stage numbers are positive integers: cannot read heading {h.text.strip()!r}",
                )
                continue
            # The section runs to the next stage or wave heading, or the next heading
            # at the same or a higher level (a setext '---' underline is not one).
            end_k = k + 1
            while end_k < len(headings):
                nh = headings[end_k]
                if kinds[end_k] != "other" or (nh.level <= h.level and not nh.setext_dash):
                    break
                end_k += 1
            end_tok = headings[end_k].index if end_k < len(headings) else len(tokens)
            end_line = headings[end_k].line0 if end_k < len(headings) else len(self.lines)
            name = m.group(2)
            in_heading = _HEAD_DEPS.search(name)  # "## Stage 3: Report (depends on 1, 2)"
            if in_heading:
                name = name[: in_heading.start()]
            raw = _Raw(
                number=number,
                name=_clean_name(name),
                line=line,
                source="section",
                declared_wave=wave[0] if wave is not None else None,
            )
            self._read_section(raw, tokens, h.index + 3, end_tok, h.end0, end_line)
            if in_heading and raw.deps is None:
                raw.deps, _ = self._dep_info(
                    raw, in_heading.group(1), h.line0, True, tokens, 0, 0, False
                )
            raws.append(raw)
        return raws

    def _read_section(
        self, raw: _Raw, tokens: list[Token], tok_lo: int, tok_hi: int, line_lo: int, line_hi: int
    ) -> None:
        removed: set[int] = set()
        found_deps = found_est = found_wave = False
        i = tok_lo
        while i < tok_hi:
            tok = tokens[i]
            i += 1
            if tok.type != "inline" or tok.map is None:
                continue
            parent = tokens[i - 2].type
            if parent not in ("paragraph_open", "heading_open"):
                continue
            if not _DEP_PREFILTER.search(tok.content):
                continue
            plain = _plain_lines(tok.content)
            for j, text in enumerate(plain):
                text = text.strip()
                src0 = tok.map[0] + j if tok.map[0] + j < tok.map[1] else tok.map[1] - 1
                if not found_deps:
                    value: Optional[str] = None
                    strict = True
                    m = _DEP_COLON.match(text)
                    if m:
                        value = m.group(1)
                    elif _DEP_BARE.match(text):
                        value = ""
                    else:
                        m = _DEP_LOOSE.match(text)
                        if m and _LOOSE_VALUE.match(m.group(1)):
                            value, strict = m.group(1), False
                    if value is not None:
                        src0 = self._locate(src0, tok.map, r"depend|deps|blocked")
                        info, extra = self._dep_info(
                            raw, value, src0, strict, tokens, i, tok_hi, j == len(plain) - 1
                        )
                        if info is not None or strict:
                            found_deps = True
                            raw.deps = info
                            removed.add(src0)
                            removed.update(extra)
                            continue
                if not found_est:
                    m = _EST_LINE.match(text)
                    if m:
                        found_est = True
                        raw.estimate = parse_estimate(m.group(1))
                        if raw.estimate is None:
                            self.warn(
                                src0 + 1,
                                f"stage {raw.number}: cannot read the estimate "
                                f"{m.group(1).strip()!r}; ignored",
                            )
                        continue
                if not found_wave:
                    m = _WAVE_LINE.match(text)
                    if m:
                        found_wave = True
                        try:
                            raw.declared_wave = _to_int(m.group(1))
                        except _Unreadable:
                            pass
        raw.scope = self._scope(line_lo, line_hi, removed)

    def _locate(self, src0: int, span: list[int], pattern: str) -> int:
        """The source line holding the keyword (plain-text lines can drift from source)."""
        if re.search(pattern, self.lines[src0], _I):
            return src0
        for k in range(span[0], span[1]):
            if re.search(pattern, self.lines[k], _I):
                return k
        return src0

    def _dep_info(
        self,
        raw: _Raw,
        value: str,
        src0: int,
        strict: bool,
        tokens: list[Token],
        after: int,
        tok_hi: int,
        last_line: bool,
    ) -> tuple[Optional[_DepInfo], set[int]]:
        """Dependencies from a dependency line (and a list right below it)."""
        extra: set[int] = set()
        try:
            dv = parse_dependency_value(value)
        except _Unreadable as exc:
            if strict:
                self.error(src0 + 1, f"stage {raw.number}: cannot read the dependencies: {exc}")
            return None, extra
        if dv.empty:
            items: list[str] = []
            j = after + 1  # token after the paragraph/heading close
            if (
                last_line
                and j < tok_hi
                and tokens[j].type
                in (
                    "bullet_list_open",
                    "ordered_list_open",
                )
            ):
                opener = tokens[j]
                close = opener.type.replace("_open", "_close")
                while j < tok_hi:
                    t = tokens[j]
                    if t.type == "inline":
                        items.append(_plain(t.content))
                    if t.type == close and t.level == opener.level:
                        break
                    j += 1
                if opener.map is not None:
                    extra.update(range(opener.map[0], opener.map[1]))
            if not items:
                if strict:
                    self.warn(
                        src0 + 1,
                        f"stage {raw.number}: empty dependency line read as 'no dependencies'",
                    )
                return _DepInfo((), (), src0 + 1, value), extra
            numbers: list[int] = []
            groups: list[_NameGroup] = []
            for item in items:
                try:
                    sub = parse_dependency_value(item)
                except _Unreadable as exc:
                    self.error(
                        src0 + 1, f"stage {raw.number}: cannot read the dependency {item!r}: {exc}"
                    )
                    continue
                numbers.extend(sub.numbers)
                groups.extend(_name_groups(sub))
            info = _DepInfo(tuple(numbers), tuple(groups), src0 + 1, value.strip())
        else:
            if not strict and dv.names and not _LOOSE_STAGE.match(value):
                return None, extra  # prose such as "Depends on 3rd-party APIs being up"
            info = _DepInfo(dv.numbers, _name_groups(dv), src0 + 1, value.strip())
        if info.names:
            self.name_refs.append((raw, info))
        return info, extra

    def _scope(self, lo: int, hi: int, removed: set[int]) -> str:
        lines = [self.lines[k] for k in range(lo, min(hi, len(self.lines))) if k not in removed]
        while lines and not lines[0].strip():
            lines.pop(0)
        while lines and (not lines[-1].strip() or _HR_LINE.match(lines[-1])):
            lines.pop()
        return "\n".join(line.rstrip() for line in lines)

    # -- tables

    def _tables(self, tokens: list[Token]) -> list[_Raw]:
        raws: list[_Raw] = []
        i = 0
        while i < len(tokens):
            if tokens[i].type != "table_open":
                i += 1
                continue
            rows: list[tuple[int, list[str]]] = []
            j = i + 1
            while j < len(tokens) and tokens[j].type != "table_close":
                t = tokens[j]
                if t.type == "tr_open":
                    rows.append(((t.map[0] if t.map else 0) + 1, []))
                elif t.type == "inline" and rows:
                    rows[-1][1].append(t.content)
                j += 1
            raws.extend(self._table_rows(rows))
            i = j + 1
        return raws

    def _table_rows(self, rows: list[tuple[int, list[str]]]) -> list[_Raw]:
        if len(rows) < 2:
            return []
        header = [_norm_header(_plain(c)) for c in rows[0][1]]
        stage_col = name_col = deps_col = est_col = wave_col = scope_col = None
        for c, h in enumerate(header):
            if deps_col is None and re.search(r"depend|\bdeps\b|blocked by", h):
                deps_col = c
            elif stage_col is None and re.match(
                r"^(?:stage|#|no|number|id|step|stage (?:#|no|number|num|id))$", h
            ):
                stage_col = c
            elif name_col is None and h in ("name", "title", "stage name", "stage title"):
                name_col = c
            elif est_col is None and re.search(r"estimate|effort|duration|hours", h):
                est_col = c
            elif wave_col is None and h in ("wave", "declared wave"):
                wave_col = c
            elif scope_col is None and h in ("scope", "description", "goal", "goals", "summary"):
                scope_col = c
        if stage_col is None or deps_col is None:
            return []
        out: list[_Raw] = []
        seen: dict[int, int] = {}
        for line, cells in rows[1:]:

            def cell(col: Optional[int], cells: list[str] = cells) -> str:
                return _plain(cells[col]).strip() if col is not None and col < len(cells) else ""

            stage_text = cell(stage_col)
            m = _TABLE_STAGE_CELL.match(stage_text)
            if m is None:
                if re.match(r"^[\W_]*(?:stage\s*)?#?\s*[-−+]?[0-9]", stage_text, _I):
                    self.error(line, f"stage numbers are positive integers, got {stage_text!r}")
                elif stage_text:
                    self.warn(line, f"table row without a stage number ({stage_text!r}) ignored")
                continue
            try:
                number = _to_int(m.group(1))
            except _Unreadable as exc:
                self.error(line, str(exc))
                continue
            if number < 1:
                self.error(line, f"stage numbers are positive integers, got {stage_text!r}")
                continue
            if number in seen:
                self.error(
                    line, f"duplicate stage number {number} (first listed on line {seen[number]})"
                )
                continue
            seen[number] = line
            raw = _Raw(
                number=number,
                name=_clean_name(cell(name_col) or m.group(2)),
                line=line,
                source="table",
                scope=cell(scope_col),
            )
            deps_text = cell(deps_col)
            try:
                dv = parse_dependency_value(deps_text)
            except _Unreadable as exc:
                self.error(line, f"stage {number}: cannot read the dependencies: {exc}")
            else:
                raw.deps = _DepInfo(dv.numbers, _name_groups(dv), line, deps_text)
                if dv.names:
                    self.name_refs.append((raw, raw.deps))
            if est_col is not None and cell(est_col):
                raw.estimate = parse_estimate(cell(est_col))
            if wave_col is not None:
                wm = re.match(r"^\s*#?\s*([0-9]{1,9})\b", cell(wave_col))
                if wm:
                    raw.declared_wave = int(wm.group(1))
            out.append(raw)
        return out

    # -- merging and validation

    def _merge(self, raws: list[_Raw]) -> dict[int, _Merged]:
        sections: dict[int, _Raw] = {}
        tables: dict[int, list[_Raw]] = {}
        for raw in raws:
            if raw.source == "table":
                tables.setdefault(raw.number, []).append(raw)
            elif raw.number in sections:
                first = sections[raw.number].line
                self.error(raw.line, f"duplicate stage number {raw.number} (first on line {first})")
            else:
                sections[raw.number] = raw
        names: dict[int, str] = {}
        for number in set(sections) | set(tables):
            candidates = [sections[number]] if number in sections else []
            candidates += tables.get(number, [])
            names[number] = next((r.name for r in candidates if r.name), "")
        self._resolve_names(names)
        merged: dict[int, _Merged] = {}
        for number in sorted(names):
            sec = sections.get(number)
            rows = tables.get(number, [])
            sources = ([sec] if sec is not None else []) + rows
            for other in sources[1:]:
                self._compare(sources[0], other)
            primary = sources[0]
            dep_lines: dict[int, int] = {}
            for src in sources:
                if src.deps is not None:
                    for d in src.deps.numbers:
                        dep_lines.setdefault(d, src.deps.line)
            wave_src = next((r for r in sources if r.declared_wave is not None), primary)
            merged[number] = _Merged(
                number=number,
                name=names[number],
                line=primary.line,
                scope=next((r.scope for r in sources if r.scope), ""),
                estimate=next((r.estimate for r in sources if r.estimate is not None), None),
                declared_wave=wave_src.declared_wave,
                declared_wave_line=wave_src.line,
                dep_lines=dep_lines,
                has_deps=any(r.deps is not None for r in sources),
                in_section=sec is not None,
            )
        if sections and tables:
            missing = sorted(n for n in sections if n not in tables)
            if missing:
                self.warn(
                    sections[missing[0]].line,
                    f"stage(s) {_fmt_list(missing)} have a section but are not in the "
                    "summary table",
                )
        return merged

    def _compare(self, primary: _Raw, other: _Raw) -> None:
        """Warn when two descriptions of one stage disagree (a section vs a table row)."""
        n = primary.number
        if primary.name and other.name and _norm_name(primary.name) != _norm_name(other.name):
            self.warn(
                other.line,
                f"stage {n}: the name {other.name!r} differs from {primary.name!r} on line "
                f"{primary.line}; using {primary.name!r}",
            )
        if primary.deps is not None and other.deps is not None:
            a, b = sorted(set(primary.deps.numbers)), sorted(set(other.deps.numbers))
            if a != b:
                union = sorted(set(a) | set(b))
                self.warn(
                    other.deps.line,
                    f"stage {n}: dependencies [{_fmt_list(b)}] differ from [{_fmt_list(a)}] "
                    f"on line {primary.deps.line}; using both: [{_fmt_list(union)}]",
                )

    def _resolve_names(self, names: dict[int, str]) -> None:
        """Dependencies given by name: an exact (case-, punctuation-insensitive) match
        of one stage's title is read as that stage, with a warning saying so; anything
        else is an error naming the part, what is accepted and, when one stage fits,
        a suggestion."""
        index: dict[str, list[int]] = {}
        for n, name in names.items():
            if name:
                index.setdefault(_norm_name(name), []).append(n)
        for raw, info in self.name_refs:
            resolved = list(info.numbers)
            for whole, parts in info.names:
                hits = index.get(_norm_name(whole), []) if whole and len(parts) > 1 else []
                refs = [whole] if len(hits) == 1 else list(parts)
                for ref in refs:
                    titled = _TITLED_REF.match(ref)
                    if titled and int(titled.group(1)) in names:
                        n, title = int(titled.group(1)), titled.group(2)
                        if _norm_name(title) == _norm_name(names[n]):
                            resolved.append(n)
                            continue
                        self.error(
                            info.line,
                            f"stage {raw.number}: cannot read {ref!r} in the dependencies "
                            f"{info.raw!r}: stage {n} is called {names[n]!r}, not {title!r}; "
                            f"{DEPENDENCY_FORMS}",
                        )
                        continue
                    hits = index.get(_norm_name(ref), [])
                    if len(hits) == 1:
                        resolved.append(hits[0])
                        self.warn(
                            info.line,
                            f"stage {raw.number}: dependency {ref!r} read as stage {hits[0]} "
                            f"(its name); write 'Stage {hits[0]}' to say so",
                        )
                        continue
                    if hits:
                        why = f"names several stages ({_fmt_list(sorted(hits))})"
                    else:
                        why = "is not a stage number or a stage's name" + _suggest(ref, names)
                    self.error(
                        info.line,
                        f"stage {raw.number}: cannot read {ref!r} in the dependencies "
                        f"{info.raw!r}: it {why}; {DEPENDENCY_FORMS}",
                    )
            info.numbers = tuple(resolved)
            info.names = ()

    def _build(self, merged: dict[int, _Merged]) -> Plan:
        self._infer_from_waves(merged)
        deps: dict[int, tuple[int, ...]] = {}
        for n, m in merged.items():
            missing = sorted(d for d in m.dep_lines if d not in merged)
            if n in m.dep_lines:
                self.error(m.dep_lines[n], f"stage {n} depends on itself")
            if missing:
                by_line: dict[int, list[int]] = {}
                for d in missing:
                    by_line.setdefault(m.dep_lines[d], []).append(d)
                for line, ds in sorted(by_line.items()):
                    what = (
                        f"stage {ds[0]}, which does not"
                        if len(ds) == 1
                        else f"stages {_fmt_list(ds)}, which do not"
                    )
                    self.error(line, f"stage {n} depends on {what} exist")
            deps[n] = tuple(sorted(d for d in m.dep_lines if d in merged and d != n))
        for cycle in graph.find_cycles(deps):
            # Name the dependency lines that form the cycle, so each can be found.
            edges = list(zip(cycle, cycle[1:]))
            lines = [merged[a].dep_lines.get(b, merged[a].line) for a, b in edges]
            where = ", ".join(f"{a} -> {b} on line {ln}" for (a, b), ln in zip(edges, lines))
            self.error(
                lines[0],
                "dependency cycle: "
                + " -> ".join(str(c) for c in cycle)
                + f" (each stage depends on the next: {where})",
            )
        if self.problems:
            raise PlanError(str(self.path), self._sorted_problems())

        waves = graph.compute_waves(deps)
        wave_of = graph.wave_of(waves)
        for n, m in merged.items():
            if m.declared_wave is not None and m.declared_wave != wave_of[n]:
                self.warn(
                    m.declared_wave_line,
                    f"stage {n} is declared in wave {m.declared_wave} but its dependencies "
                    f"place it in wave {wave_of[n]}; using wave {wave_of[n]}",
                )
        unnamed = [n for n, m in merged.items() if not m.name]
        if unnamed:
            self.warn(merged[unnamed[0]].line, f"stage(s) {_fmt_list(unnamed)} have no name")
        empty = [n for n, m in merged.items() if not m.scope]
        if empty:
            self.warn(merged[empty[0]].line, f"stage(s) {_fmt_list(empty)} have an empty scope")

        stages = tuple(
            Stage(
                number=n,
                name=m.name or f"Stage {n}",
                depends_on=deps[n],
                scope=m.scope,
                line=m.line,
                estimate_hours=m.estimate,
                declared_wave=m.declared_wave,
            )
            for n, m in sorted(merged.items())
        )
        name = plan_name_from_path(self.path)
        warnings = tuple(
            (f"line {line}: {msg}" if line else msg)
            for line, msg in sorted(self.warnings, key=lambda w: w[0])
        )
        plan = Plan(
            path=self.path,
            name=name,
            slug=project_slug(name),
            stages=stages,
            waves=tuple(tuple(w) for w in waves),
            critical_path=(),
            warnings=warnings,
            front_matter=dict(self.front_matter),
        )
        weights = plan.weights() if plan.has_estimates() else None
        return dataclasses.replace(plan, critical_path=tuple(graph.critical_path(deps, weights)))

    def _infer_from_waves(self, merged: dict[int, _Merged]) -> None:
        """Stages without any dependency information.

        Under a ``Wave N`` heading (N > 1), a stage with no dependency line is taken
        to depend on the stages of the nearest earlier declared wave; otherwise it
        depends on nothing. Either way, a warning says so.
        """
        by_wave: dict[int, list[int]] = {}
        for n, m in merged.items():
            if m.declared_wave is not None:
                by_wave.setdefault(m.declared_wave, []).append(n)
        assumed_none: list[int] = []
        for n, m in sorted(merged.items()):
            if m.has_deps:
                continue
            earlier = [w for w in by_wave if m.declared_wave is not None and w < m.declared_wave]
            if earlier:
                prev = sorted(by_wave[max(earlier)])
                m.dep_lines = dict.fromkeys(prev, m.line)
                self.warn(
                    m.line,
                    f"stage {n} has no dependency line; assuming it depends on wave "
                    f"{max(earlier)} (stage(s) {_fmt_list(prev)})",
                )
            elif m.declared_wave is None or m.declared_wave > 1:
                assumed_none.append(n)
        if assumed_none:
            self.warn(
                merged[assumed_none[0]].line,
                f"stage(s) {_fmt_list(assumed_none)} have no dependency line; "
                "assuming they depend on nothing",
            )
