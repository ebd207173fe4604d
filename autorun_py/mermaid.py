"""Text inside Mermaid diagrams (the plan's flowchart, the report's graph and gantt chart).

``label`` is a flowchart node label inside double quotes: Mermaid's entity codes
for the characters its lexer reads (``"``, ``#``, ``<``, ``>``, ``&``, a
backtick), control characters and whitespace runs as one space. ``gantt_text``
is a gantt task or section name, which has no escapes: those characters become
spaces.
"""

from __future__ import annotations

import re

_ENTITIES = {'"': "#quot;", "#": "#35;", "<": "#lt;", ">": "#gt;", "`": "#96;", "&": "#amp;"}
_SPACE = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# ``:`` ends a gantt name, ``#`` / ``%%`` start comments, ``;`` ends the statement.
_GANTT_UNSAFE = re.compile(r"[:#;%\r\n`]")


def label(text: str) -> str:
    """``text`` as a flowchart label between double quotes."""
    text = _SPACE.sub(" ", text).strip()
    return "".join(_ENTITIES.get(c, c) for c in text)


def gantt_text(text: str) -> str:
    """``text`` as a gantt task or section name (``-`` when nothing is left)."""
    out = _SPACE.sub(" ", _GANTT_UNSAFE.sub(" ", text)).strip()
    return out or "-"
