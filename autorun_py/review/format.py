"""The review file format: render a new file, parse the user's answers (pure).

A review file (format 2)::

    <!-- autorun-review: {"v": 2, "nonce": "7f3a9c2e", "title": ..., "questions": [...]} -->
    # Review: <title>

    ## Context

    <context>

    ## Questions

    _Write each answer between its two `answer ...` comment lines ..._

    ### 1. <question>

    **Your answer**:
    <!-- answer 1 starts below (7f3a9c2e) -->

    <!-- answer 1 ends above (7f3a9c2e) -->

    ---

    <!-- done box (7f3a9c2e) -->
    - [ ] done

    _Tick the box ... autorun is waiting for this file._

Structure is only ever the first line's metadata and the HTML-comment lines
that carry this file's *nonce* (random, made when the file is written, never
in its title, context or questions). Everything between an answer's two marker
lines is the answer, kept as written: headings, ``---`` rules, ``**Your
answer**:`` lines, autorun's own sentences, a ``- [x] done`` line, anything.
Questions come from the metadata, never from headings. The done box is the first
non-blank line after its marker; ticking it (``[x]``) says "I am done", also
with questions left empty. Markdown viewers hide the comments.

Files of the first format (``"v": 1`` or no metadata) are read by
:mod:`autorun_py.review.legacy`.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from autorun_py.review.model import Answer, MetaJSON, ReviewDoc, ReviewMeta

FORMAT_VERSION = 2
META_TAG = "autorun-review"
ANSWER_LABEL = "**Your answer**:"
DONE_UNTICKED = "- [ ] done"
HOW_TO_ANSWER = (
    "_Write each answer between its two `answer ...` comment lines and save; what you "
    "write there is kept exactly as it is (paragraphs, lists, code, headings). Keep "
    "the comment lines themselves. autorun goes on once every question has an answer, "
    "or when you tick the done box at the end._"
)
DONE_NOTE = (
    "_Tick the box (`- [x] done`) and save when you are done, also with questions left "
    "empty: autorun is waiting for this file._"
)

_META_RE = re.compile(r"\A\s*<!--\s*" + META_TAG + r":\s*(\{.*\})\s*-->\s*\Z", re.DOTALL)
_META_ANYWHERE_RE = re.compile(r"<!--\s*" + META_TAG + r":\s*(\{.*?\})\s*-->", re.DOTALL)
_START_RE = re.compile(r"\banswer\s+(\d+)\s+starts\b", re.IGNORECASE)
_END_RE = re.compile(r"\banswer\s+(\d+)\s+ends\b", re.IGNORECASE)
_DONE_RE = re.compile(r"\bdone\b", re.IGNORECASE)
_TICKED_RE = re.compile(r"^\s*(?:[-*+]\s+)?\[\s*[xX]\s*\]")
_NONCE_ALPHABET = re.compile(r"\A[0-9a-f]{6,32}\Z")


def new_nonce(avoid: Sequence[str] = ()) -> str:
    """A random marker for one file, not found in any of ``avoid``."""
    while True:
        nonce = secrets.token_hex(4)
        if not any(nonce in text for text in avoid):
            return nonce


def start_marker(number: int, nonce: str) -> str:
    return f"<!-- answer {number} starts below ({nonce}) -->"


def end_marker(number: int, nonce: str) -> str:
    return f"<!-- answer {number} ends above ({nonce}) -->"


def done_marker(nonce: str) -> str:
    return f"<!-- done box ({nonce}) -->"


def _meta_comment(meta: MetaJSON) -> str:
    blob = json.dumps(meta, ensure_ascii=True, sort_keys=True)
    # Keep "-->" (and friends) out of the comment whatever the title says.
    blob = blob.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f"<!-- {META_TAG}: {blob} -->"


def render_review(title: str, questions: Sequence[str], context: str, meta: MetaJSON) -> str:
    """The text of a new review file; ``meta`` carries the nonce and questions."""
    nonce = meta["nonce"]
    one_line_title = " ".join(title.split())
    out = [_meta_comment(meta), f"# Review: {one_line_title}", "", "## Context", ""]
    out.append(context.strip("\n") if context.strip() else "_No context given._")
    out += ["", "## Questions", "", HOW_TO_ANSWER, ""]
    for i, question in enumerate(questions, 1):
        first, _, rest = question.strip().partition("\n")
        out += [f"### {i}. {first.strip()}", ""]
        if rest.strip():
            out += [rest.strip("\n"), ""]
        out += [ANSWER_LABEL, start_marker(i, nonce), "", end_marker(i, nonce), ""]
    out += ["---", "", done_marker(nonce), DONE_UNTICKED, "", DONE_NOTE, ""]
    return "\n".join(out)


def new_meta(
    title: str,
    questions: Sequence[str],
    context: str,
    *,
    created_at: str,
    orch_dir: Optional[str],
    stage: Optional[int],
) -> MetaJSON:
    qs = [q.strip() for q in questions]
    return {
        "v": FORMAT_VERSION,
        "nonce": new_nonce([title, context, *qs]),
        "title": " ".join(title.split()),
        "created_at": created_at,
        "orch_dir": orch_dir,
        "stage": stage,
        "questions": qs,
    }


# --------------------------------------------------------------------------- reading


def _meta_from_json(blob: str) -> Optional[ReviewMeta]:
    try:
        raw: Any = json.loads(blob)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    orch, stage, questions = raw.get("orch_dir"), raw.get("stage"), raw.get("questions")
    version, nonce = raw.get("v"), raw.get("nonce")
    return ReviewMeta(
        version=version if isinstance(version, int) and not isinstance(version, bool) else 1,
        nonce=nonce if isinstance(nonce, str) and _NONCE_ALPHABET.match(nonce) else "",
        title=str(raw.get("title") or ""),
        created_at=str(raw.get("created_at") or ""),
        orch_dir=Path(orch) if isinstance(orch, str) and orch else None,
        stage=stage if isinstance(stage, int) and not isinstance(stage, bool) else None,
        questions=tuple(str(q) for q in questions) if isinstance(questions, list) else (),
    )


def _normalize(text: str) -> str:
    return text.lstrip("\ufeff").replace("\r\n", "\n")


def read_meta(text: str) -> Optional[ReviewMeta]:
    """The metadata: the first non-blank line. (A first-format file's comment is
    also looked for further down, as its reader always did.)"""
    text = _normalize(text)
    first = next((line for line in text.split("\n") if line.strip()), "")
    m = _META_RE.match(first)
    if m:
        return _meta_from_json(m.group(1))
    m = _META_ANYWHERE_RE.search(text[:65536])
    if m:
        meta = _meta_from_json(m.group(1))
        if meta is not None and meta.version < FORMAT_VERSION:
            return meta
    return None


@dataclass(frozen=True)
class _Marker:
    """An answer marker line of a review file."""
    line: int
    kind: str  # "start", "end" or "done"
    number: int  # 0 for the done box
    before: str  # text on the same line before the comment
    after: str  # ... and after it


def _marker_re(nonce: str) -> re.Pattern[str]:
    return re.compile(r"<!--((?:(?!-->).)*?)\(" + re.escape(nonce) + r"\)\s*-->")


def _marker(idx: int, line: str, pattern: re.Pattern[str]) -> Optional[_Marker]:
    """The marker comment of this file on ``line``, if any. Text typed on the same
    line before or after it (``<!-- answer 1 starts ... --> Postgres``) is kept."""
    m = pattern.search(line)
    if m is None:
        return None
    inner, before, after = m.group(1), line[: m.start()].rstrip(), line[m.end() :].lstrip()
    found = _START_RE.search(inner)
    if found:
        return _Marker(idx, "start", int(found.group(1)), before, after)
    found = _END_RE.search(inner)
    if found:
        return _Marker(idx, "end", int(found.group(1)), before, after)
    if _DONE_RE.search(inner):
        return _Marker(idx, "done", 0, before, after)
    return None


def _trim_blank_edges(lines: list[str]) -> str:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return "\n".join(lines[start:end])


def parse_review(text: str) -> ReviewDoc:
    """Parse a review file of either format."""
    meta = read_meta(text)
    if meta is None or meta.version < FORMAT_VERSION or not meta.nonce:
        from autorun_py.review import legacy

        return ReviewDoc(meta, tuple(legacy.parse_answers(text, meta)))
    return _parse_v2(_normalize(text), meta)


def _parse_v2(text: str, meta: ReviewMeta) -> ReviewDoc:
    lines = text.split("\n")
    pattern = _marker_re(meta.nonce)
    markers = [m for idx, line in enumerate(lines) if (m := _marker(idx, line, pattern))]

    answers: list[Answer] = []
    problems: list[str] = []
    regions: list[tuple[int, int]] = []
    consumed_until = -1  # answers never overlap: a region ends before the next starts
    for number, question in enumerate(meta.questions, 1):
        start = next(
            (
                m
                for m in markers
                if m.kind == "start" and m.number == number and m.line > consumed_until
            ),
            None,
        )
        if start is None:
            problems.append(f"the line that starts answer {number} was removed")
            answers.append(Answer(number, question, ""))
            continue
        # Never past another marker of this file: a lost end line ends at the next one.
        stop = next((m for m in markers if m.line > start.line), None)
        if stop is not None and stop.kind == "end" and stop.number == number:
            body = [start.after, *lines[start.line + 1 : stop.line], stop.before]
            end_line = stop.line
        else:
            problems.append(f"the line that ends answer {number} was removed")
            end_line = len(lines) if stop is None else stop.line
            body = [start.after, *lines[start.line + 1 : end_line]]
        answers.append(Answer(number, question, _trim_blank_edges(body)))
        regions.append((start.line, end_line))
        # A lost end: the next marker (on end_line) may start the next answer.
        consumed_until = end_line if stop is not None and stop.kind == "end" else end_line - 1

    done = False
    done_at = next(
        (
            m.line
            for m in markers
            if m.kind == "done" and not any(a < m.line < b for a, b in regions)
        ),
        None,
    )
    if done_at is not None:
        following = next((ln for ln in lines[done_at + 1 :] if ln.strip()), "")
        done = bool(_TICKED_RE.match(following))
    return ReviewDoc(meta, tuple(answers), done=done, problems=tuple(problems))


def parse_answers(text: str) -> list[Answer]:
    """The questions and the user's answers, in order (``answer == ""`` when empty)."""
    return list(parse_review(text).answers)
