"""Reading review files of the first format (before autorun 0.2): answers
anchored on ``**Your answer**:`` lines, questions from headings or list items.

Kept so that older and hand-written review files stay readable
(``autorun review answers``, the inbox); new files use the marker format of
:mod:`autorun_py.review.format`, where nothing typed in an answer is structure.
Pure: text in, answers out.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autorun_py.review.model import Answer, ReviewMeta

if TYPE_CHECKING:
    from markdown_it.token import Token

CLOSING_PHRASE = "autorun is waiting for this file"

# "**Your answer**:", "**Your answer:**", "__your answer__", at the start of a line.
_MARKER_RE = re.compile(
    r"^[ \t>]*(?:\*\*|__)[ \t]*your[ \t]+answer[ \t]*"
    r"(?::[ \t]*(?:\*\*|__)|(?:\*\*|__)[ \t]*:?)",
    re.IGNORECASE,
)
# "1. Which ...", "Question 2: ...", "Q3) ...", "#4 - ..."
_NUMBERED_RE = re.compile(
    r"^\s*(?:(?:question|q)\s*)?#?(\d+)\s*(?:[.):\-\u2013\u2014]\s*|\s+|$)(.*)$",
    re.IGNORECASE | re.DOTALL,
)


_MD: Any = None


def _markdown() -> Any:
    global _MD
    if _MD is None:
        from markdown_it import MarkdownIt

        _MD = MarkdownIt("commonmark")
    return _MD


@dataclass
class _Marker:
    """A ``**Your answer**:`` line of a first-format review file."""
    line: int  # source line of "**Your answer**:"
    para_start: int
    first_in_para: bool
    item_start: int | None  # enclosing list item
    item_info: str


def title_of(text: str) -> str:
    """The first heading's text (without a ``Review:`` prefix), or ""."""
    tokens: Sequence[Token] = _markdown().parse(text)
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and i + 1 < len(tokens):
            content = tokens[i + 1].content.strip()
            return re.sub(r"^review:\s*", "", content, flags=re.IGNORECASE) or content
    return ""


def parse_answers(text: str, meta: ReviewMeta | None) -> list[Answer]:
    """The numbered questions and the user's answers, in file order.

    Anchored on the ``**Your answer**:`` lines: an answer runs from its marker
    to the next question (its heading, or its list item or paragraph), minus
    autorun's closing line and the rule before it. Fenced code, extra
    paragraphs, changed heading levels, added text and a deleted closing line
    all survive; markers inside code blocks are not markers. An unanswered
    question has ``answer == ""``. Question texts come from the metadata when
    the file still has as many answers as questions; else from the file.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    tokens: list[Token] = _markdown().parse(text)

    markers: list[_Marker] = []
    headings: list[tuple[int, str]] = []  # (line, text)
    closings: list[tuple[int, int]] = []
    rules: list[tuple[int, int]] = []
    items: list[tuple[int, str]] = []  # stack of open list items
    for i, tok in enumerate(tokens):
        if tok.type == "list_item_open" and tok.map:
            items.append((tok.map[0], tok.info or ""))
        elif tok.type == "list_item_close" and items:
            items.pop()
        elif tok.type == "heading_open" and tok.map:
            headings.append((tok.map[0], tokens[i + 1].content.strip()))
        elif tok.type == "hr" and tok.map and tok.level == 0:
            rules.append((tok.map[0], tok.map[1]))
        elif tok.type == "inline" and tok.map and i > 0 and tokens[i - 1].type == "paragraph_open":
            start, end = tok.map
            if tok.level == 1 and CLOSING_PHRASE in " ".join(tok.content.split()).lower():
                closings.append((start, end))
                continue
            for k, content_line in enumerate(tok.content.split("\n")):
                if start + k < end and _MARKER_RE.match(content_line):
                    item = items[-1] if items else None
                    markers.append(
                        _Marker(
                            line=start + k,
                            para_start=start,
                            first_in_para=k == 0,
                            item_start=None if item is None else item[0],
                            item_info=item[1] if item else "",
                        )
                    )

    # Where each question begins: its heading, else its list item, else its paragraph.
    heads: list[int] = []
    head_text: list[str] = []
    prev = -1
    for m in markers:
        between = [h for h in headings if prev < h[0] < m.line]
        if between:
            start, htext = between[-1]
        elif m.item_start is not None and m.item_start > prev:
            start, htext = m.item_start, ""
        elif not m.first_in_para and m.para_start > prev:
            start, htext = m.para_start, ""
        else:
            start, htext = m.line, ""
        heads.append(start)
        head_text.append(htext)
        prev = m.line

    excluded: set[int] = set()
    for c_start, c_end in closings:
        excluded.update(range(c_start, c_end))
        for r_start, r_end in rules:  # the rule right before the closing line
            if r_end <= c_start and all(not lines[j].strip() for j in range(r_end, c_start)):
                excluded.update(range(r_start, r_end))

    use_meta = meta is not None and len(meta.questions) == len(markers)
    answers: list[Answer] = []
    for idx, m in enumerate(markers):
        end = heads[idx + 1] if idx + 1 < len(markers) else len(lines)
        body = _cut(lines, m.line + 1, end, excluded)
        # Trailing rules (the one before a removed closing line) are not answer text.
        while body and (
            not body[-1].strip() or re.fullmatch(r"\s*([-*_])(\s*\1){2,}\s*", body[-1])
        ):
            body.pop()
        rest = "\n".join(body)
        if m.item_start is not None:
            rest = textwrap.dedent(rest)
        first = _MARKER_RE.sub("", lines[m.line], count=1).strip()
        answer = (first + "\n" + rest) if first else rest
        answer = answer.strip("\n").rstrip()
        if not answer.strip():
            answer = ""
        if use_meta and meta is not None:
            number, question = idx + 1, meta.questions[idx]
        else:
            number, question = _question_from_file(lines, heads[idx], m, head_text[idx], idx + 1)
        answers.append(Answer(number=number, question=question, answer=answer))
    return answers


def _cut(lines: list[str], start: int, end: int, excluded: set[int]) -> list[str]:
    """``lines[start:end]`` without the excluded lines; each cut leaves one blank line."""
    out: list[str] = []
    cut = False
    for j in range(start, end):
        if j in excluded:
            cut = True
            continue
        if cut:
            if not lines[j].strip():
                continue
            while out and not out[-1].strip():
                out.pop()
            out.append("")
            cut = False
        out.append(lines[j])
    return out


def _question_from_file(
    lines: list[str], head: int, m: _Marker, htext: str, ordinal: int
) -> tuple[int, str]:
    number: int | None = None
    parts: list[str] = []
    if htext:
        found = _NUMBERED_RE.match(htext)
        if found:
            number = int(found.group(1))
            htext = found.group(2)
        parts.append(htext.strip())
        body_from = head + 1
    else:
        body_from = head
        if m.item_info.isdigit():
            number = int(m.item_info)
    for j in range(body_from, m.line):
        line = lines[j].strip()
        if j == head and not htext:
            line = re.sub(r"^(?:[-*+]|\d+[.)])\s+", "", line)  # the list item's bullet
            if number is None:
                found = _NUMBERED_RE.match(line)
                if found and found.group(2).strip():
                    number, line = int(found.group(1)), found.group(2).strip()
        parts.append(line)
    question = "\n".join(p for p in parts if p).strip()
    return (ordinal if number is None else number), question
