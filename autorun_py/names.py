"""Plan names and project slugs, by the seed's rules.

* plan name: the master plan file's stem in kebab-case
  (``wave_2_master_plan.md`` -> ``wave-2-master-plan``); it names the run's
  directory under ``~/.autorun/orchestration/``.
* project slug: a short name for tmux sessions (``<slug>_stage-N``): strip a
  leading date (``YYYY-MM-DD-``), strip a ``wave\\d+-?`` prefix, drop filler
  words, keep the first and last remaining words, and fit the result in 20
  characters (``2026-02-20-wave2-token-design-audit`` -> ``token-audit``).

Both are deterministic, never empty and made of ``[a-z0-9-]`` only (no leading
or trailing ``-``), whatever the file is called: a name with nothing usable in
it falls back to ``plan-<hash>``.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from typing import Union

PLAN_NAME_MAX = 80
SLUG_MAX = 20

# Words that carry no meaning in a slug; dropped unless nothing else is left.
_FILLER = frozenset(
    {"a", "an", "the", "of", "and", "or", "for", "to", "in", "on", "with", "by", "at", "from"}
)

_DATE_PREFIX = re.compile(r"^(?:[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}|[0-9]{8})(?:-|$)")
_WAVE_PREFIX = re.compile(r"^wave-?[0-9]+(?:-|$)")


def kebab(text: str) -> str:
    """``text`` in kebab-case over ``[a-z0-9]``; may be empty.

    Accents are folded (``Café`` -> ``cafe``), camelCase is split, and every run
    of anything else becomes one ``-``.
    """
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    folded = re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", folded)
    folded = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1-\2", folded)
    return re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")


def slug(text: str, limit: int, fallback: str) -> str:
    """``text`` in kebab-case, at most ``limit`` characters; ``fallback`` if empty.

    The one slug function: branch names, review file names, chain logs.
    """
    return kebab(text)[:limit].rstrip("-") or fallback


def _digest(text: str) -> str:
    import hashlib  # here: OpenSSL's load is most of this module's import

    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:6]


def plan_name_from_path(path: Union[str, Path]) -> str:
    """The plan name: the file's stem in kebab-case (at most 80 characters)."""
    stem = Path(path).stem or Path(path).name
    name = kebab(stem)[:PLAN_NAME_MAX].strip("-")
    return name or f"plan-{_digest(stem)}"


def _fit(words: list[str], limit: int) -> str:
    """Join ``words`` with ``-`` in at most ``limit`` characters, trimming the longest."""
    words = list(words)
    while words and len("-".join(words)) > limit:
        longest = max(range(len(words)), key=lambda i: (len(words[i]), i))
        if len(words[longest]) <= 1:
            words.pop()
        else:
            words[longest] = words[longest][:-1]
    return "-".join(words).strip("-")


def project_slug(plan_name: str) -> str:
    """The short project slug for session names (at most 20 chars of ``[a-z0-9-]``)."""
    base = kebab(plan_name)
    undated = _DATE_PREFIX.sub("", base)
    core = _WAVE_PREFIX.sub("", undated)
    words = core.split("-") if core else []
    if not words:  # e.g. "2026-02-20-wave2": keep "wave2" rather than nothing
        words = undated.split("-") if undated else []
    if not words:
        words = base.split("-") if base else []
    words = [w for w in words if w]
    meaningful = [w for w in words if w not in _FILLER] or words
    if len(meaningful) > 2:
        meaningful = [meaningful[0], meaningful[-1]]
    slug = _fit(meaningful, SLUG_MAX)
    return slug or f"plan-{_digest(plan_name)}"


def new_session_id() -> str:
    """A new Claude Code session id: a random (version 4) UUID, as ``str(uuid.uuid4())``
    gives, without importing :mod:`uuid` (and :mod:`platform` with it) in the calls
    that launch a stage (issue 16)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
