"""Review files: how a headless session asks the user questions and waits.

A review file is Markdown under ``$AUTORUN_HOME/review/``, named
``YYYY-MM-DD-HHMMSS-<slug>.md`` (the seed's pattern)::

    <!-- autorun-review: {"v": 1, "title": ..., "created_at": ..., ...} -->
    # Review: <title>

    ## Context

    <context>

    ## Questions

    ### 1. <question>

    **Your answer**:

    ---

    _Edit this file: write your answer after each **Your answer**: ... then save.
    autorun is waiting for this file and continues as soon as you save._

The first-line HTML comment holds the metadata (title, creation time, the run's
orchestration directory and stage, the questions); Markdown viewers hide it.

State other processes read (the inbox, the status view, the monitor):

* ``review/.waiting/<file name>.<pid>.json``: written while ``review wait`` runs,
  removed when it returns. A record whose pid is dead is stale and ignored.
* ``review/.answered/<file name>.json``: written when a wait returned answers.

A review is **answered** when every answer is non-empty or a wait on it returned
answers; otherwise it is **waiting** (a live ``review wait`` blocks on it) or
**open** (unanswered, nobody blocked on it right now).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypedDict

from autorun_py.errors import AutorunError, ExitCode, UsageError
from autorun_py.events import append_event
from autorun_py.paths import orchestration_root, review_dir

if TYPE_CHECKING:
    from markdown_it.token import Token

ANSWER_PLACEHOLDER = "**Your answer**:"
CLOSING_PHRASE = "autorun is waiting for this file"
CLOSING_LINE = (
    "_Write your answer after each **Your answer**: line (several paragraphs or code "
    f"blocks are fine), then save this file: {CLOSING_PHRASE} and continues as soon "
    "as you save._"
)
META_TAG = "autorun-review"

# "**Your answer**:", "**Your answer:**", "__your answer__", at the start of a line.
_MARKER_RE = re.compile(
    r"^[ \t>]*(?:\*\*|__)[ \t]*your[ \t]+answer[ \t]*"
    r"(?::[ \t]*(?:\*\*|__)|(?:\*\*|__)[ \t]*:?)",
    re.IGNORECASE,
)
_META_RE = re.compile(r"<!--\s*" + META_TAG + r":\s*(\{.*?\})\s*-->", re.DOTALL)
# "1. Which ...", "Question 2: ...", "Q3) ...", "#4 - ..."
_NUMBERED_RE = re.compile(
    r"^\s*(?:(?:question|q)\s*)?#?(\d+)\s*(?:[.):\-\u2013\u2014]\s*|\s+|$)(.*)$",
    re.IGNORECASE | re.DOTALL,
)
_FILENAME_TIME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}-\d{6})-")

WAITING_DIR = ".waiting"
ANSWERED_DIR = ".answered"


# ---------------------------------------------------------------------------
# model


@dataclass(frozen=True)
class Answer:
    number: int
    question: str
    answer: str

    def to_json(self) -> AnswerJSON:
        return {"number": self.number, "question": self.question, "answer": self.answer}


class AnswerJSON(TypedDict):
    number: int
    question: str
    answer: str


class MetaJSON(TypedDict, total=False):
    v: int
    title: str
    created_at: str
    orch_dir: str | None
    stage: int | None
    questions: list[str]


class WaiterJSON(TypedDict):
    pid: int
    file: str
    started_at: str
    orch_dir: str | None
    stage: int | None


@dataclass(frozen=True)
class ReviewMeta:
    title: str = ""
    created_at: str = ""
    orch_dir: Path | None = None
    stage: int | None = None
    questions: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReviewInfo:
    """One review file as the inbox, the status view and the monitor see it."""

    path: Path
    title: str
    created_at: str  # ISO 8601, UTC
    orch_dir: Path | None
    run: str | None  # the run's plan name
    stage: int | None
    questions: int
    unanswered: int
    answered: bool
    waiting_pids: tuple[int, ...] = field(default=())
    waiting_since: str | None = None

    @property
    def state(self) -> str:
        if self.answered:
            return "answered"
        return "waiting" if self.waiting_pids else "open"

    def age_seconds(self, now: float | None = None) -> float:
        now = time.time() if now is None else now
        created = _parse_iso(self.created_at)
        return max(0.0, now - created) if created is not None else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "title": self.title,
            "created_at": self.created_at,
            "age_seconds": round(self.age_seconds(), 1),
            "state": self.state,
            "run": self.run,
            "orch_dir": None if self.orch_dir is None else str(self.orch_dir),
            "stage": self.stage,
            "questions": self.questions,
            "unanswered": self.unanswered,
            "waiting_pids": list(self.waiting_pids),
            "waiting_since": self.waiting_since,
        }


# ---------------------------------------------------------------------------
# small helpers


def _utc_iso(ts: float | None = None) -> str:
    dt = datetime.datetime.fromtimestamp(time.time() if ts is None else ts, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> float | None:
    try:
        dt = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        return None
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()


def slugify(text: str, max_len: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    slug = slug[:max_len].rstrip("-")
    return slug or "review"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _same_path(a: Path | None, b: Path | None) -> bool:
    if a is None or b is None:
        return False
    return os.path.normpath(str(a)) == os.path.normpath(str(b))


def _resolve(path: Path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser()))


def run_name(orch_dir: Path) -> str:
    """The run's plan name (status.json), or the directory name."""
    raw = _read_json(Path(orch_dir) / "status.json")
    if isinstance(raw, dict) and raw.get("plan_name"):
        return str(raw["plan_name"])
    return Path(orch_dir).name


def parse_stage_ref(text: str) -> tuple[Path, int]:
    """``ORCH:N`` -> (orchestration dir, stage). ORCH is a directory or a plan name."""
    orch, sep, num = text.rpartition(":")
    if not sep or not orch or not num.strip().isdigit() or int(num) < 1:
        raise UsageError(
            f"--stage must be ORCH:N (a run's directory or plan name, a stage number), got {text!r}"
        )
    candidate = Path(orch).expanduser()
    if "/" in orch or orch.startswith(".") or candidate.is_dir():
        orch_dir = _resolve(candidate)
    else:
        orch_dir = orchestration_root() / orch
    if not orch_dir.is_dir():
        raise UsageError(f"--stage: no orchestration directory {orch_dir}")
    return orch_dir, int(num)


# ---------------------------------------------------------------------------
# writing


def render_review(title: str, questions: Sequence[str], context: str, meta: MetaJSON) -> str:
    """The Markdown text of a new review file."""
    blob = json.dumps(meta, ensure_ascii=True, sort_keys=True)
    # Keep "-->" (and friends) out of the comment whatever the title says.
    blob = blob.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    one_line_title = " ".join(title.split())
    out = [f"<!-- {META_TAG}: {blob} -->", f"# Review: {one_line_title}", "", "## Context", ""]
    out.append(context.strip("\n") if context.strip() else "_No context given._")
    out += ["", "## Questions", ""]
    for i, question in enumerate(questions, 1):
        first, _, rest = question.strip().partition("\n")
        out.append(f"### {i}. {first.strip()}")
        out.append("")
        if rest.strip():
            out += [rest.strip("\n"), ""]
        out += [ANSWER_PLACEHOLDER, "", ""]
    out += ["---", "", CLOSING_LINE, ""]
    return "\n".join(out)


def new_review(
    title: str,
    questions: Sequence[str],
    context: str = "",
    stage: tuple[Path, int] | None = None,
    *,
    now: datetime.datetime | None = None,
    directory: Path | None = None,
) -> Path:
    """Write a new review file and return its path.

    The name is ``YYYY-MM-DD-HHMMSS-<slug>.md`` in local time; a second review in
    the same second (same title) gets ``-2``, ``-3`` ... The file appears
    complete and is never overwritten (written aside, then hard-linked into place).
    """
    if not title.strip():
        raise UsageError("a review needs a title (--title)")
    qs = [q for q in questions if q.strip()]
    if not qs:
        raise UsageError("a review needs at least one question (--question)")
    when = now or datetime.datetime.now()
    created_at = _utc_iso(when.timestamp())
    meta: MetaJSON = {
        "v": 1,
        "title": " ".join(title.split()),
        "created_at": created_at,
        "orch_dir": None if stage is None else str(_resolve(stage[0])),
        "stage": None if stage is None else int(stage[1]),
        "questions": [q.strip() for q in qs],
    }
    text = render_review(title, qs, context, meta)
    folder = review_dir() if directory is None else Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{when.strftime('%Y-%m-%d-%H%M%S')}-{slugify(title)}"
    fd, tmp = tempfile.mkstemp(prefix=".new-", suffix=".md", dir=str(folder))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        n = 1
        while True:
            target = folder / (f"{stem}.md" if n == 1 else f"{stem}-{n}.md")
            try:
                os.link(tmp, target)  # atomic, fails if the name is taken
                return target
            except FileExistsError:
                n += 1
    finally:
        os.unlink(tmp)


# ---------------------------------------------------------------------------
# parsing


def read_meta(text: str) -> ReviewMeta | None:
    match = _META_RE.search(text[:65536])
    if not match:
        return None
    try:
        raw = json.loads(match.group(1))
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    orch = raw.get("orch_dir")
    stage = raw.get("stage")
    questions = raw.get("questions")
    return ReviewMeta(
        title=str(raw.get("title") or ""),
        created_at=str(raw.get("created_at") or ""),
        orch_dir=Path(orch) if isinstance(orch, str) and orch else None,
        stage=stage if isinstance(stage, int) and not isinstance(stage, bool) else None,
        questions=tuple(str(q) for q in questions) if isinstance(questions, list) else (),
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
    line: int  # source line of "**Your answer**:"
    para_start: int
    first_in_para: bool
    item_start: int | None  # enclosing list item
    item_info: str


def _title_of(text: str, tokens: Sequence[Token]) -> str:
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and i + 1 < len(tokens):
            content = tokens[i + 1].content.strip()
            return re.sub(r"^review:\s*", "", content, flags=re.IGNORECASE) or content
    return ""


def parse_answers(text: str) -> list[Answer]:
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

    meta = read_meta(text)
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


def read_answers(path: Path) -> list[Answer]:
    """Parse a review file; a missing file is an AutorunError naming it."""
    return parse_answers(_read_text(Path(path)))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise AutorunError("no such review file", path=path) from None
    except IsADirectoryError:
        raise AutorunError("is a directory, not a review file", path=path) from None
    except OSError as exc:
        raise AutorunError(f"cannot read review file: {exc.strerror}", path=path) from None


def _answer_key(answers: Sequence[Answer]) -> tuple[tuple[int, str], ...]:
    return tuple((a.number, " ".join(a.answer.split())) for a in answers)


# ---------------------------------------------------------------------------
# telling the user


def has_desktop() -> bool:
    if sys.platform == "darwin":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def how_to_answer(path: Path) -> str:
    return (
        f"Open {path} in your editor, write your answer after each '{ANSWER_PLACEHOLDER}' "
        "line, and save; autorun continues as soon as you save."
    )


def open_for_user(path: Path) -> bool:
    """Open the file in the platform's default application, where a desktop exists.

    Never blocks; returns whether an opener was started."""
    if not has_desktop():
        return False
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    exe = shutil.which(opener)
    if exe is None:
        return False
    try:
        subprocess.Popen(  # noqa: S603 - argv list, no shell
            [exe, str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return False
    return True


def notify_user(
    path: Path, meta: ReviewMeta | None, questions: int, *, bell: bool = True
) -> list[str]:
    """Tell the user a session waits on them, through every channel that exists.

    Returns the channels used: ``tmux`` (a message on each attached client of
    autorun's tmux server), ``bell`` (stderr is a terminal), ``desktop``
    (notify-send / osascript with a desktop session), ``events`` (the run's
    events.jsonl). Failures are silent: a notification never breaks a wait.
    """
    used: list[str] = []
    where = ""
    if meta is not None and meta.orch_dir is not None:
        where = run_name(meta.orch_dir)
        if meta.stage is not None:
            where += f" stage {meta.stage}"
    title = meta.title if meta is not None and meta.title else path.name
    message = f"autorun: {where + ' ' if where else ''}waits for your answers ({title}): {path}"

    try:
        from autorun_py.tmux import Tmux

        tmux = Tmux.from_env()
        proc = tmux.run(["list-clients", "-F", "#{client_name}"], check=False)
        clients = [c for c in proc.stdout.splitlines() if c] if proc.returncode == 0 else []
        for client in clients:
            tmux.run(["display-message", "-c", client, message], check=False)
        if clients:
            used.append("tmux")
    except (AutorunError, OSError):
        pass

    if bell:
        try:
            if sys.stderr.isatty():
                sys.stderr.write("\a")
                sys.stderr.flush()
                used.append("bell")
        except (OSError, ValueError):
            pass

    if has_desktop():
        argv: list[str] | None = None
        if sys.platform == "darwin" and shutil.which("osascript"):
            argv = [
                "osascript",
                "-e",
                "on run argv",
                "-e",
                "display notification (item 2 of argv) with title (item 1 of argv)",
                "-e",
                "end run",
                "autorun",
                message,
            ]
        elif shutil.which("notify-send"):
            argv = ["notify-send", "--app-name=autorun", "autorun: answers needed", message]
        if argv is not None:
            try:
                subprocess.run(  # noqa: S603 - argv list, no shell
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=3,
                    check=False,
                )
                used.append("desktop")
            except (OSError, subprocess.SubprocessError):
                pass

    if meta is not None and meta.orch_dir is not None and meta.orch_dir.is_dir():
        try:
            append_event(
                meta.orch_dir,
                "review_waiting",
                stage=meta.stage,
                review_file=str(path),
                questions=questions,
            )
            used.append("events")
        except OSError:
            pass
    return used


# ---------------------------------------------------------------------------
# waiting


def _waiting_dir() -> Path:
    return review_dir() / WAITING_DIR


def _answered_dir() -> Path:
    return review_dir() / ANSWERED_DIR


def format_duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def wait_for_answers(
    path: Path,
    timeout: float | None = None,
    *,
    notify: bool = True,
    open_file: bool = True,
    progress: Callable[[str], None] | None = None,
    force_polling: bool | None = None,
    heartbeat: float = 60.0,
) -> list[Answer]:
    """Block until the user saves a version of ``path`` whose answers changed.

    Returns the answers at once when every answer is already filled in. A save
    that leaves the answers as they were (or a file with no answer lines, e.g.
    caught half-written) does not end the wait. Raises AutorunError with
    ExitCode.TIMEOUT after ``timeout`` seconds, and AutorunError when the file
    is deleted (and not re-created within a second). ``force_polling`` (default:
    ``$AUTORUN_REVIEW_POLL`` set) skips the native observer.
    """
    from autorun_py.review_watch import ChangeWatcher

    path = _resolve(Path(path))
    say: Callable[[str], None] = progress if progress is not None else (lambda _msg: None)
    if force_polling is None:
        force_polling = bool(os.environ.get("AUTORUN_REVIEW_POLL"))
    started = time.monotonic()
    deadline = None if timeout is None else started + max(0.0, timeout)

    with ChangeWatcher(path, force_polling=force_polling) as watcher:
        text = _read_text(path)
        meta = read_meta(text)
        baseline = parse_answers(text)
        if not baseline:
            raise AutorunError(
                f"no '{ANSWER_PLACEHOLDER}' lines: not a review file (see `autorun review new`)",
                path=path,
            )
        if all(a.answer for a in baseline):
            _mark_answered(path)
            return baseline

        record = _waiting_dir() / f"{path.name}.{os.getpid()}.json"
        waiter: WaiterJSON = {
            "pid": os.getpid(),
            "file": str(path),
            "started_at": _utc_iso(),
            "orch_dir": None if meta is None or meta.orch_dir is None else str(meta.orch_dir),
            "stage": None if meta is None else meta.stage,
        }
        _write_json_atomic(record, waiter)
        try:
            say(f"Waiting for answers to {len(baseline)} question(s) in {path}")
            say(how_to_answer(path))
            if open_file and open_for_user(path):
                say("Opened it with the desktop's default application.")
            if notify:
                notify_user(path, meta, len(baseline))
            answers = _wait_loop(path, baseline, watcher, deadline, started, say, heartbeat)
        finally:
            try:
                record.unlink()
            except OSError:
                pass
    _mark_answered(path)
    if meta is not None and meta.orch_dir is not None and meta.orch_dir.is_dir():
        try:
            append_event(
                meta.orch_dir,
                "review_answered",
                stage=meta.stage,
                review_file=str(path),
                questions=len(answers),
                answered=sum(1 for a in answers if a.answer),
            )
        except OSError:
            pass
    return answers


def _wait_loop(
    path: Path,
    baseline: list[Answer],
    watcher: Any,
    deadline: float | None,
    started: float,
    say: Callable[[str], None],
    heartbeat: float,
) -> list[Answer]:
    base_key = _answer_key(baseline)
    next_beat = started + heartbeat
    while True:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            raise AutorunError(
                f"no answers after {format_duration(now - started)} (timed out); "
                "run `autorun review wait` again to keep waiting",
                path=path,
                exit_code=ExitCode.TIMEOUT,
            )
        if now >= next_beat:
            say(f"Still waiting for answers in {path} ({format_duration(now - started)})")
            next_beat = now + heartbeat
        step = min(1.0, next_beat - now)
        if deadline is not None:
            step = min(step, deadline - now)
        if not watcher.wait(max(0.0, step)):
            continue
        watcher.settle()
        if not path.exists():
            # Some editors delete and re-create; give them a moment.
            grace_end = time.monotonic() + 1.0
            while not path.exists() and time.monotonic() < grace_end:
                watcher.wait(min(0.1, max(0.0, grace_end - time.monotonic())))
            if not path.exists():
                raise AutorunError(
                    "the review file was deleted while waiting for answers", path=path
                )
            watcher.settle()
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue  # gone again: the next wake-up decides
        answers = parse_answers(text)
        if not answers:
            say(f"No '{ANSWER_PLACEHOLDER}' lines in {path} now; still waiting")
            continue
        if _answer_key(answers) != base_key:
            return answers


def _mark_answered(path: Path) -> None:
    try:
        _write_json_atomic(
            _answered_dir() / f"{path.name}.json", {"file": str(path), "answered_at": _utc_iso()}
        )
    except OSError:
        pass


# ---------------------------------------------------------------------------
# the inbox


def _live_waiters() -> list[WaiterJSON]:
    """Waiter records of live processes (stale ones are removed on the way)."""
    out: list[WaiterJSON] = []
    folder = _waiting_dir()
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return out
    for entry in entries:
        if not entry.name.endswith(".json") or entry.name.startswith(".tmp-"):
            continue
        raw = _read_json(entry)
        if not isinstance(raw, dict) or not isinstance(raw.get("pid"), int):
            continue
        if not _pid_alive(int(raw["pid"])):
            try:
                entry.unlink()
            except OSError:
                pass
            continue
        stage = raw.get("stage")
        out.append(
            {
                "pid": int(raw["pid"]),
                "file": str(raw.get("file") or ""),
                "started_at": str(raw.get("started_at") or ""),
                "orch_dir": raw.get("orch_dir") if isinstance(raw.get("orch_dir"), str) else None,
                "stage": stage if isinstance(stage, int) else None,
            }
        )
    return out


def _answered_files() -> set[str]:
    out: set[str] = set()
    try:
        entries = list(_answered_dir().iterdir())
    except OSError:
        return out
    for entry in entries:
        raw = _read_json(entry)
        if isinstance(raw, dict) and isinstance(raw.get("file"), str):
            out.add(os.path.normpath(raw["file"]))
    return out


def review_info(path: Path, *, waiters: list[WaiterJSON] | None = None) -> ReviewInfo:
    """The inbox view of one review file."""
    path = _resolve(Path(path))
    text = _read_text(path)
    meta = read_meta(text)
    answers = parse_answers(text)
    if waiters is None:
        waiters = _live_waiters()
    mine = [w for w in waiters if _same_path(Path(w["file"]), path)]
    done_by_wait = os.path.normpath(str(path)) in _answered_files()
    unanswered = sum(1 for a in answers if not a.answer)
    created = meta.created_at if meta is not None and meta.created_at else ""
    if not created:
        stamp = _FILENAME_TIME_RE.match(path.name)
        ts: float | None = None
        if stamp:
            try:
                ts = datetime.datetime.strptime(stamp.group(1), "%Y-%m-%d-%H%M%S").timestamp()
            except ValueError:
                ts = None
        if ts is None:
            try:
                ts = path.stat().st_mtime
            except OSError:
                ts = time.time()
        created = _utc_iso(ts)
    title = meta.title if meta is not None and meta.title else ""
    if not title:
        tokens = _markdown().parse(text)
        title = _title_of(text, tokens) or path.stem
    orch_dir = meta.orch_dir if meta is not None else None
    return ReviewInfo(
        path=path,
        title=title,
        created_at=created,
        orch_dir=orch_dir,
        run=None if orch_dir is None else run_name(orch_dir),
        stage=None if meta is None else meta.stage,
        questions=len(answers),
        unanswered=unanswered,
        answered=bool(answers) and (unanswered == 0 or done_by_wait),
        waiting_pids=tuple(w["pid"] for w in mine),
        waiting_since=min((w["started_at"] for w in mine), default=None),
    )


def list_reviews(include_answered: bool = False) -> list[ReviewInfo]:
    """Every review under ``$AUTORUN_HOME/review`` (plus files elsewhere that a
    live ``review wait`` blocks on), oldest first; answered ones only on request."""
    waiters = _live_waiters()
    files: dict[str, Path] = {}
    try:
        for entry in review_dir().iterdir():
            if entry.suffix == ".md" and not entry.name.startswith(".") and entry.is_file():
                files[os.path.normpath(str(entry))] = entry
    except OSError:
        pass
    for w in waiters:
        files.setdefault(os.path.normpath(w["file"]), Path(w["file"]))
    answered_by_wait = _answered_files()
    out: list[ReviewInfo] = []
    for key, entry in files.items():
        if not include_answered and key in answered_by_wait:
            continue
        try:
            info = review_info(entry, waiters=waiters)
        except AutorunError:
            continue  # vanished meanwhile
        if info.answered and not include_answered:
            continue
        out.append(info)
    out.sort(key=lambda r: (r.created_at, str(r.path)))
    return out


def waiting_reviews_for(orch_dir: Path) -> list[ReviewInfo]:
    """The unanswered reviews of one run (for its status view)."""
    target = _resolve(Path(orch_dir))
    return [r for r in list_reviews() if _same_path(r.orch_dir, target)]


def is_stage_waiting(orch_dir: Path, stage: int) -> bool:
    """True while a live ``review wait`` of that run's stage blocks on the user.

    Cheap (reads only the waiter records): meant for the monitor's stall check."""
    target = _resolve(Path(orch_dir))
    for w in _live_waiters():
        if w["stage"] == stage and w["orch_dir"] and _same_path(Path(w["orch_dir"]), target):
            return True
    return False
