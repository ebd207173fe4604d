"""Claude Code's own session transcripts: where they are, what they used, what it cost.

Claude Code appends every conversation to
``<config dir>/projects/<project key>/<session id>.jsonl`` (config dir:
``$CLAUDE_CONFIG_DIR``, default ``~/.claude``), and a subagent's to
``<project key>/<session id>/subagents/[...]/agent-<id>.jsonl``. The project
key is the working directory with every character outside ``[a-zA-Z0-9]``
replaced by ``-`` (per UTF-16 code unit, as JavaScript's ``replace`` does);
keys longer than 200 characters are cut to 200 and get ``-`` plus a base-36
hash of the path. Verified against the installed CLI (2.1.330): ``function
KN(e){let n=w(e);if(n.length<=200)return n;return `${n.slice(0,200)}-${ge(e)}`}``
with ``w(e)=e.replace(/[^a-zA-Z0-9]/g,"-")``, ``ge(e)=Math.abs(rse(e)).toString(36)``
and ``rse`` the 32-bit ``h*31+c`` string hash. ``--resume <id>`` keeps the
session id and appends to the same file (``--fork-session`` makes a new one).

Usage lines are ``"type": "assistant"`` entries with ``message.usage``. Claude
Code writes one line per content block of a response (thinking, text,
tool_use ...), each repeating the response's ``message.id`` and a usage
snapshot that only grows, so a response is counted once, by ``message.id``,
with the largest value of each counter among its lines. The same rule makes a
response copied into another file (a fork) count once.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from autorun_py import paths
from autorun_py.timeutil import format_utc

# --------------------------------------------------------------------------- prices


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float


_OPUS_15 = Price(15.0, 75.0, 18.75, 30.0, 1.5)
_OPUS_5 = Price(5.0, 25.0, 6.25, 10.0, 0.5)
_SONNET_3 = Price(3.0, 15.0, 3.75, 6.0, 0.3)

# The one price table: model-name prefix -> price; the longest matching prefix
# wins. Taken from the model catalog inside Claude Code 2.1.330 (its
# ``pricing_tiers``), Claude 3 Haiku/Opus from Anthropic's price list.
PRICES: dict[str, Price] = {
    # Opus
    "claude-opus-5-5": Price(4.0, 20.0, 5.0, 8.0, 0.2),
    "claude-opus-5": _OPUS_5,
    "claude-opus-4-8": _OPUS_5,
    "claude-opus-4-7": _OPUS_5,
    "claude-opus-4-6": _OPUS_5,
    "claude-opus-4-5": _OPUS_5,
    "claude-opus-4-1": _OPUS_15,
    "claude-opus-4-0": _OPUS_15,
    "claude-opus-4-2025": _OPUS_15,  # claude-opus-4-20250514
    "claude-3-opus": _OPUS_15,
    # Sonnet
    "claude-sonnet-5-5": Price(2.0, 10.0, 2.5, 4.0, 0.1),
    "claude-sonnet-5": Price(2.0, 10.0, 2.5, 4.0, 0.2),
    "claude-sonnet-4-6": _SONNET_3,
    "claude-sonnet-4-5": _SONNET_3,
    "claude-sonnet-4-0": _SONNET_3,
    "claude-sonnet-4-2025": _SONNET_3,  # claude-sonnet-4-20250514
    "claude-3-7-sonnet": _SONNET_3,
    "claude-3-5-sonnet": _SONNET_3,
    # Haiku
    "claude-haiku-5-5": Price(0.1, 0.5, 0.125, 0.2, 0.01),
    "claude-haiku-4-5": Price(1.0, 5.0, 1.25, 2.0, 0.1),
    "claude-3-5-haiku": Price(0.8, 4.0, 1.0, 1.6, 0.08),
    "claude-3-haiku": Price(0.25, 1.25, 0.3, 0.5, 0.03),
}
PRICE_SOURCE = "Claude Code 2.1.330 model catalog (autorun_py/transcripts.py PRICES)"


def price_for(model: Optional[str]) -> Optional[Price]:
    """The price of ``model`` by longest prefix; provider forms
    (``us.anthropic.claude-...-v1:0``, ``claude-...@2025...``) match too."""
    if not model:
        return None
    name = model.lower()
    at = name.find("claude-")
    if at < 0:
        return None
    name = name[at:]
    best: Optional[str] = None
    for prefix in PRICES:
        if name.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return PRICES[best] if best else None


# --------------------------------------------------------------------------- locations


def claude_config_dir() -> Path:
    return paths.claude_config_dir()


def projects_dir() -> Path:
    return claude_config_dir() / "projects"


_MAX_KEY = 200


def _js_hash36(text: str) -> str:
    """``Math.abs(h).toString(36)`` of the 32-bit ``h = h*31 + c`` hash over UTF-16 units."""
    data = text.encode("utf-16-le", "surrogatepass")
    h = 0
    for i in range(0, len(data), 2):
        h = (h * 31 + (data[i] | data[i + 1] << 8)) & 0xFFFFFFFF
    n = abs(h - (1 << 32) if h >= (1 << 31) else h)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def project_key(cwd: os.PathLike[str] | str) -> str:
    """Claude Code's directory name under ``projects/`` for a working directory."""
    text = str(cwd)
    parts = []
    for ch in text:
        if ch.isascii() and ch.isalnum():
            parts.append(ch)
        else:
            parts.append("--" if ord(ch) > 0xFFFF else "-")  # two UTF-16 units
    key = "".join(parts)
    if len(key) <= _MAX_KEY:
        return key
    return f"{key[:_MAX_KEY]}-{_js_hash36(text)}"


def project_dir(cwd: os.PathLike[str] | str) -> Path:
    return projects_dir() / project_key(cwd)


def transcript_path(cwd: os.PathLike[str] | str, session_id: str) -> Path:
    return project_dir(cwd) / f"{session_id}.jsonl"


_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def find_session(session_id: str, cwd: Optional[os.PathLike[str] | str] = None) -> Optional[Path]:
    """The transcript of ``session_id`` (in ``cwd``'s project first, then any project)."""
    if not _SESSION_ID.match(session_id or ""):
        return None
    if cwd is not None:
        direct = transcript_path(cwd, session_id)
        if direct.is_file():
            return direct
    root = projects_dir()
    if not root.is_dir():
        return None
    for p in sorted(root.glob(f"*/{session_id}.jsonl")):
        if p.is_file():
            return p
    return None


def session_exists(session_id: Optional[str], cwd: Optional[os.PathLike[str] | str]) -> bool:
    """True when Claude Code has a conversation ``session_id`` to ``--resume``."""
    return bool(session_id) and find_session(str(session_id), cwd) is not None


def _with_subagents(main: Path) -> list[Path]:
    out = [main]
    sub = main.parent / main.stem / "subagents"
    if sub.is_dir():
        out += sorted(p for p in sub.rglob("*.jsonl") if p.is_file())
    return out


def stage_transcripts(
    worktrees: Iterable[os.PathLike[str] | str],
    session_ids: Iterable[str],
    known: Iterable[os.PathLike[str] | str] = (),
) -> list[Path]:
    """Every transcript of a stage: the paths its SessionStart hooks recorded
    (``known``), all sessions started in its worktree(s), and its recorded session
    ids wherever they live; with their subagents."""
    found: dict[str, Path] = {}
    for path in known:
        p = Path(path)
        if p.is_file():
            for q in _with_subagents(p):
                found.setdefault(str(q), q)
    for wt in worktrees:
        d = project_dir(wt)
        if d.is_dir():
            for p in sorted(d.glob("*.jsonl")):
                for q in _with_subagents(p):
                    found.setdefault(str(q), q)
    for sid in session_ids:
        hit = find_session(sid)
        if hit is not None:
            for q in _with_subagents(hit):
                found.setdefault(str(q), q)
    return [found[k] for k in sorted(found)]


# --------------------------------------------------------------------------- usage


@dataclass
class TokenUsage:
    """Tokens of Claude Code's transcripts, by kind."""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0  # includes the 1-hour writes below
    cache_read_input_tokens: int = 0
    cache_creation_1h_tokens: int = 0
    responses: int = 0
    cost_usd: float = 0.0
    unpriced_responses: int = 0

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )

    def add(self, other: TokenUsage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_creation_input_tokens += other.cache_creation_input_tokens
        self.cache_read_input_tokens += other.cache_read_input_tokens
        self.cache_creation_1h_tokens += other.cache_creation_1h_tokens
        self.responses += other.responses
        self.cost_usd += other.cost_usd
        self.unpriced_responses += other.unpriced_responses

    def to_json(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation_1h_tokens": self.cache_creation_1h_tokens,
            "total_tokens": self.total_tokens,
            "responses": self.responses,
            "cost_usd": round(self.cost_usd, 6),
            "unpriced_responses": self.unpriced_responses,
        }


@dataclass
class UsageSummary:
    """What a stage's sessions used, in total and by model, and the files read."""
    total: TokenUsage = field(default_factory=TokenUsage)
    by_model: dict[str, TokenUsage] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)
    first_ts: Optional[str] = None
    last_ts: Optional[str] = None

    @property
    def unpriced_models(self) -> list[str]:
        return sorted(m for m, u in self.by_model.items() if u.unpriced_responses)

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total.to_json(),
            "by_model": {m: u.to_json() for m, u in sorted(self.by_model.items())},
            "files": list(self.files),
            "sessions": list(self.sessions),
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "unpriced_models": self.unpriced_models,
        }


_COUNTERS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(0, value)
    if isinstance(value, float) and value == value:
        return max(0, int(value))
    return 0


def parse_ts(text: Any) -> Optional[datetime.datetime]:
    """An ISO-8601 timestamp (``Z`` or an offset, optional fraction) as aware UTC."""
    if not isinstance(text, str) or not text:
        return None
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    m = re.match(r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})(\.\d+)?([+-]\d{2}:?\d{2})?$", s)
    if not m:
        return None
    frac = (m.group(2) or "")[:7]
    frac = frac.ljust(7, "0") if frac else ""
    offset = m.group(3) or "+00:00"
    if ":" not in offset:
        offset = offset[:3] + ":" + offset[3:]
    try:
        dt = datetime.datetime.fromisoformat(m.group(1).replace(" ", "T") + frac + offset)
    except ValueError:
        return None
    return dt.astimezone(datetime.timezone.utc)


@dataclass
class _Response:
    """One model response of a transcript: its model and token counts."""
    model: str
    counts: dict[str, int]
    one_hour: int
    ts: Optional[str]
    session: Optional[str]


def _response_key(entry: dict[str, Any], message: dict[str, Any], fallback: str) -> str:
    mid = message.get("id")
    if isinstance(mid, str) and mid:
        return "m:" + mid
    rid = entry.get("requestId")
    if isinstance(rid, str) and rid:
        return "r:" + rid
    uid = entry.get("uuid")
    if isinstance(uid, str) and uid:
        return "u:" + uid
    return "l:" + fallback


def read_usage(
    files: Sequence[os.PathLike[str] | str],
    *,
    since: Optional[datetime.datetime] = None,
    until: Optional[datetime.datetime] = None,
) -> UsageSummary:
    """Tokens and cost of the responses in ``files`` (each response once).

    Lines that are not JSON, not assistant entries or carry no usage are
    skipped; ``since``/``until`` keep responses whose timestamp lies within.
    """
    responses: dict[str, _Response] = {}
    order: list[str] = []
    summary = UsageSummary(files=[str(f) for f in files])
    sessions: dict[str, None] = {}
    for f in files:
        try:
            text = Path(f).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict) or entry.get("type") != "assistant":
                continue
            message = entry.get("message")
            if not isinstance(message, dict) or not isinstance(message.get("usage"), dict):
                continue
            ts = parse_ts(entry.get("timestamp"))
            if ts is not None and (
                (since is not None and ts < since) or (until is not None and ts > until)
            ):
                continue
            usage: dict[str, Any] = message["usage"]
            counts = {k: _int(usage.get(k)) for k in _COUNTERS}
            detail = usage.get("cache_creation")
            one_hour = (
                _int(detail.get("ephemeral_1h_input_tokens")) if isinstance(detail, dict) else 0
            )
            model = str(message.get("model") or "")
            sid = entry.get("sessionId")
            if isinstance(sid, str) and sid:
                sessions.setdefault(sid, None)
            key = _response_key(entry, message, f"{f}:{lineno}")
            stamp = entry.get("timestamp") if isinstance(entry.get("timestamp"), str) else None
            seen = responses.get(key)
            if seen is None:
                responses[key] = _Response(model, counts, one_hour, stamp, sid)
                order.append(key)
                continue
            for k in _COUNTERS:
                seen.counts[k] = max(seen.counts[k], counts[k])
            seen.one_hour = max(seen.one_hour, one_hour)
            if (not seen.model or seen.model.startswith("<")) and model:
                seen.model = model
    first: Optional[datetime.datetime] = None
    last: Optional[datetime.datetime] = None
    for key in order:
        r = responses[key]
        u = TokenUsage(
            input_tokens=r.counts["input_tokens"],
            output_tokens=r.counts["output_tokens"],
            cache_creation_input_tokens=r.counts["cache_creation_input_tokens"],
            cache_read_input_tokens=r.counts["cache_read_input_tokens"],
            cache_creation_1h_tokens=min(r.one_hour, r.counts["cache_creation_input_tokens"]),
            responses=1,
        )
        if u.total_tokens == 0:
            continue  # synthetic entries (API errors shown in the transcript)
        price = price_for(r.model)
        if price is None:
            u.unpriced_responses = 1
        else:
            u.cost_usd = cost_of(price, u)
        summary.total.add(u)
        summary.by_model.setdefault(r.model or "(unknown)", TokenUsage()).add(u)
        t = parse_ts(r.ts)
        if t is not None:
            first = t if first is None or t < first else first
            last = t if last is None or t > last else last
    summary.sessions = list(sessions)
    summary.first_ts = _iso(first)
    summary.last_ts = _iso(last)
    return summary


def cost_of(price: Price, u: TokenUsage) -> float:
    five_min = u.cache_creation_input_tokens - u.cache_creation_1h_tokens
    return (
        u.input_tokens * price.input
        + u.output_tokens * price.output
        + five_min * price.cache_write_5m
        + u.cache_creation_1h_tokens * price.cache_write_1h
        + u.cache_read_input_tokens * price.cache_read
    ) / 1_000_000


def _iso(dt: Optional[datetime.datetime]) -> Optional[str]:
    return None if dt is None else format_utc(dt)
