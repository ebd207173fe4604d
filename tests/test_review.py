"""Review files: writing, parsing, waiting (real files, real subprocesses, real tmux).

The format keeps every answer verbatim (hostile answers below, and random text
with hypothesis); `review wait` returns when every question has an answer (and
the file settled) or the done box is ticked, never on a partial save; waiters
are tracked by held locks."""

from __future__ import annotations

import datetime
import json
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from autorun_py import review
from autorun_py.review import (
    Answer,
    is_stage_waiting,
    list_reviews,
    new_review,
    notify_user,
    parse_answers,
    parse_review,
    read_answers,
    read_meta,
    waiting_reviews_for,
)
from autorun_py.review.format import end_marker, new_meta, render_review, start_marker


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autorun_py", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def start_wait(
    path: Path, *args: str, env: Optional[dict[str, str]] = None
) -> subprocess.Popen[str]:
    """`autorun review wait FILE --no-open --json`, returned once it is waiting
    (its record in review/.waiting names the file)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autorun_py",
            "review",
            "wait",
            str(path),
            "--no-open",
            "--json",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=None if env is None else {**os.environ, **env},
    )
    waiting = Path(os.environ["AUTORUN_HOME"]) / "review" / ".waiting"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        if list(waiting.glob(f"{path.name}.*.json")):
            return proc
        time.sleep(0.02)
    out, err = proc.communicate(timeout=5) if proc.poll() is not None else ("", "")
    proc.kill()
    raise AssertionError(f"review wait did not start waiting: {out!r} {err!r}")


def set_answer(text: str, number: int, answer: str) -> str:
    """What a user does in an editor: write ``answer`` between the two marker
    lines of question ``number`` (replacing what was there)."""
    meta = read_meta(text)
    assert meta is not None
    start, end = start_marker(number, meta.nonce), end_marker(number, meta.nonce)
    head, rest = text.split(start + "\n", 1)
    _old, tail = rest.split(end, 1)
    return f"{head}{start}\n{answer}\n{end}{tail}"


def answer_all(text: str, answers: list[str]) -> str:
    for number, answer in enumerate(answers, 1):
        if answer:
            text = set_answer(text, number, answer)
    return text


def tick_done(text: str) -> str:
    head, sep, tail = text.rpartition("- [ ] done")
    assert sep
    return head + "- [x] done" + tail


def save_in_place(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:  # truncate + write, same inode
        fh.write(text)


def save_by_rename(path: Path, text: str) -> None:
    tmp = path.parent / f".{path.name}.swp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def finish(proc: subprocess.Popen[str], timeout: float = 10) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.fixture
def two_questions() -> Path:
    return new_review("Pick a database", ["Postgres or SQLite?", "Which port?"], "We need a DB.")


# -- writing -------------------------------------------------------------------


def test_new_review_writes_the_seed_format(autorun_home: Path) -> None:
    path = new_review(
        "Pick a database!",
        ["Postgres or SQLite?", "Which port?\nDefault: 5432."],
        "Stage 2 needs storage.",
    )
    assert path.parent == autorun_home / "review"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}-\d{6}-pick-a-database\.md", path.name)
    text = path.read_text()
    meta = read_meta(text)
    assert meta is not None and meta.title == "Pick a database!" and meta.stage is None
    assert meta.version == 2 and re.fullmatch(r"[0-9a-f]{8}", meta.nonce)
    assert text.splitlines()[0].startswith("<!-- autorun-review: {")
    assert "# Review: Pick a database!" in text
    assert "## Context\n\nStage 2 needs storage.\n" in text
    assert "### 1. Postgres or SQLite?" in text and "### 2. Which port?" in text
    assert text.count("**Your answer**:\n<!-- answer ") == 2
    assert f"<!-- done box ({meta.nonce}) -->\n- [ ] done\n" in text
    assert text.rstrip().endswith("autorun is waiting for this file._")
    doc = parse_review(text)
    assert doc.answers == (
        Answer(1, "Postgres or SQLite?", ""),
        Answer(2, "Which port?\nDefault: 5432.", ""),
    )
    assert not doc.done and not doc.complete and doc.problems == ()
    # Two files never share a nonce.
    other = read_meta(new_review("Pick a database!", ["x?"]).read_text())
    assert other is not None and other.nonce != meta.nonce


def test_two_reviews_in_the_same_second_get_distinct_files() -> None:
    now = datetime.datetime(2026, 3, 1, 12, 0, 5)
    a = new_review("Same title", ["first?"], now=now)
    b = new_review("Same title", ["second?"], now=now)
    c = new_review("Other title", ["third?"], now=now)
    assert a.name == "2026-03-01-120005-same-title.md"
    assert b.name == "2026-03-01-120005-same-title-2.md"
    assert c.name == "2026-03-01-120005-other-title.md"
    assert [parse_answers(p.read_text())[0].question for p in (a, b, c)] == [
        "first?",
        "second?",
        "third?",
    ]
    assert not [p for p in a.parent.iterdir() if p.name.startswith(".new-")]


def test_title_cannot_break_out_of_the_metadata_comment() -> None:
    path = new_review("evil --> <b>& title", ["q?"])
    meta = read_meta(path.read_text())
    assert meta is not None and meta.title == "evil --> <b>& title"
    assert path.read_text().splitlines()[0].count("-->") == 1


def test_cli_new_with_stage_and_context_file(autorun_home: Path, tmp_path: Path) -> None:
    orch = autorun_home / "orchestration" / "my-plan"
    orch.mkdir(parents=True)
    (orch / "status.json").write_text(json.dumps({"plan_name": "my-plan"}))
    ctx = tmp_path / "ctx.md"
    ctx.write_text("Some *context*.\n\n```sh\nmake\n```\n")
    res = run_cli(
        "review", "new", "--title", "Scope?", "--context-file", str(ctx),
        "--question", "A?", "--question", "B?", "--stage", "my-plan:3", "--json",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    path = Path(out["path"])
    assert out["stage"] == 3 and out["orch_dir"] == str(orch) and out["questions"] == 2
    text = path.read_text()
    assert "```sh\nmake\n```" in text
    meta = read_meta(text)
    assert meta is not None and meta.stage == 3 and meta.orch_dir == orch
    # plain output is the path alone, for FILE=$(autorun review new ...)
    res = run_cli("review", "new", "--title", "T", "--question", "Q?")
    assert res.returncode == 0 and Path(res.stdout.strip()).is_file()


@pytest.mark.parametrize("ref", ["nocolon", "plan:x", "plan:0", "missing-plan:2"])
def test_cli_new_rejects_bad_stage(ref: str) -> None:
    res = run_cli("review", "new", "--title", "T", "--question", "Q?", "--stage", ref)
    assert res.returncode == 2
    assert res.stderr.startswith("autorun: error: --stage") and "Traceback" not in res.stderr


# -- parsing -------------------------------------------------------------------


# What users type that the first format took for structure: autorun's closing
# sentence, a rule then an answer marker, a question heading, a done box.
HOSTILE_ANSWERS = [
    "Postgres.\n\n_Write your answer after each **Your answer**: line, then save this "
    "file: autorun is waiting for this file and continues as soon as you save._\n\nThanks.",
    "---\n\n**Your answer**: this is still my answer\n\n---\n**Your answer**:",
    "### 4. Not a question\n\n### 2. Which port?\n\n## Questions\n\n# Review: x",
    "- [x] done\n<!-- answer 2 ends above (00000000) -->\n<!-- done box -->\n- [x] done",
    "```python\n**Your answer**: not a marker\n\n\nx = 1\n```\n\n  indented  \n\ttab",
]


def test_hostile_answers_are_kept_verbatim(autorun_home: Path) -> None:
    questions = [f"Question {i}?" for i in range(1, len(HOSTILE_ANSWERS) + 1)]
    path = new_review("Hostile", questions, "Context.")
    text = answer_all(path.read_text(), HOSTILE_ANSWERS)
    doc = parse_review(text)
    assert [a.answer for a in doc.answers] == HOSTILE_ANSWERS
    assert [a.question for a in doc.answers] == questions  # from the metadata
    assert [a.number for a in doc.answers] == [1, 2, 3, 4, 5]
    assert doc.done is False and doc.problems == ()  # the typed done boxes are answers
    assert parse_review(tick_done(text)).done is True
    # Through the CLI as well.
    save_in_place(path, text)
    res = run_cli("review", "answers", str(path), "--json")
    assert res.returncode == 0, res.stderr
    assert [d["answer"] for d in json.loads(res.stdout)] == HOSTILE_ANSWERS


def test_user_edits_outside_the_answers_change_nothing(two_questions: Path) -> None:
    text = answer_all(two_questions.read_text(), ["SQLite", "none"])
    text = text.replace("### 1.", "# 1.").replace("### 2. Which port?", "#### 2. Port")
    text = text.replace("## Context\n", "## Context\n\nMy own note up here.\n")
    text = text.replace("\n", "\r\n")  # saved by a Windows editor
    assert parse_answers(text) == [
        Answer(1, "Postgres or SQLite?", "SQLite"),
        Answer(2, "Which port?", "none"),
    ]


def test_an_answer_typed_on_a_marker_line_is_kept(two_questions: Path) -> None:
    text = two_questions.read_text()
    meta = read_meta(text)
    assert meta is not None
    start1, end2 = start_marker(1, meta.nonce), end_marker(2, meta.nonce)
    text = text.replace(start1, start1 + " Postgres, typed right after the comment")
    text = text.replace(f"\n{end2}", f"\n5432 typed before the end {end2}")
    doc = parse_review(text)
    assert [a.answer for a in doc.answers] == [
        "Postgres, typed right after the comment",
        "5432 typed before the end",
    ]
    assert doc.problems == ()


def test_a_deleted_marker_line_is_said_not_guessed(two_questions: Path) -> None:
    text = answer_all(two_questions.read_text(), ["a", "b"])
    meta = read_meta(text)
    assert meta is not None
    doc = parse_review(text.replace(end_marker(1, meta.nonce) + "\n", ""))
    # Answer 1 runs to the next marker line, as it is in the file; the user is told.
    assert doc.answers[0].answer == "a\n\n### 2. Which port?\n\n**Your answer**:"
    assert doc.answers[1].answer == "b"
    assert doc.problems == ("the line that ends answer 1 was removed",)
    broken = text.replace(start_marker(2, meta.nonce) + "\n", "")
    doc = parse_review(broken)
    assert [a.answer for a in doc.answers] == ["a", ""]
    assert doc.problems == ("the line that starts answer 2 was removed",)
    save_in_place(two_questions, broken)
    res = run_cli("review", "answers", str(two_questions), "--json")
    assert res.returncode == 0 and [d["answer"] for d in json.loads(res.stdout)] == ["a", ""]
    assert res.stderr == (
        f"autorun: warning: {two_questions}: the line that starts answer 2 was removed\n"
    )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",))), min_size=1, max_size=3)
)
def test_any_answer_text_round_trips(answers: list[str]) -> None:
    questions = [f"Q{i}?" for i in range(1, len(answers) + 1)]
    meta = new_meta("Fuzz", questions, "", created_at="", orch_dir=None, stage=None)
    assume(not any(meta["nonce"] in a for a in answers))
    filled = render_review("Fuzz", questions, "", meta)
    for number, answer in enumerate(answers, 1):
        filled = set_answer(filled, number, answer)
    doc = parse_review(filled)
    assert [a.answer for a in doc.answers] == [_as_kept(a) for a in answers]
    assert doc.problems == () and doc.done is False


def _as_kept(answer: str) -> str:
    """What the file keeps of an answer typed on its own lines: Windows line ends
    read as \\n, blank lines around it dropped; everything else as typed."""
    lines = (answer + "\n").replace("\r\n", "\n")[:-1].split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


# A file of the first format (as autorun wrote them before format 2).
LEGACY = (
    '<!-- autorun-review: {"created_at": "2026-03-01T12:00:05Z", "orch_dir": null, '
    '"questions": ["Postgres or SQLite?", "Which port?"], "stage": null, '
    '"title": "Pick a database", "v": 1} -->\n'
    "# Review: Pick a database\n\n## Context\n\nWe need a DB.\n\n## Questions\n\n"
    "### 1. Postgres or SQLite?\n\n**Your answer**:\n\n\n"
    "### 2. Which port?\n\n**Your answer**:\n\n\n---\n\n"
    "_Write your answer after each **Your answer**: line (several paragraphs or code "
    "blocks are fine), then save this file: autorun is waiting for this file and "
    "continues as soon as you save._\n"
)


def test_files_of_the_first_format_are_still_read(tmp_path: Path) -> None:
    text = LEGACY.replace("**Your answer**:", "**Your answer**: Postgres", 1)
    text = text.replace(
        "### 2. Which port?\n\n**Your answer**:", "### 2. Which port?\n\n**Your answer**:\n\n5433"
    )
    assert parse_answers(text) == [
        Answer(1, "Postgres or SQLite?", "Postgres"),
        Answer(2, "Which port?", "5433"),
    ]
    path = tmp_path / "2026-03-01-120005-pick-a-database.md"
    path.write_text(LEGACY)
    res = run_cli("review", "answers", str(path), "--json")
    assert res.returncode == 0, res.stderr
    assert [d["answer"] for d in json.loads(res.stdout)] == ["", ""]


def test_hand_written_review_without_metadata() -> None:
    text = (
        "# Review: plan path\n\nSome context.\n\n"
        "## Question 1: Where is the master plan?\n\n**Your answer**: plans/wave2.md\n\n"
        "## Q2) Which base branch?\n\nMore detail about branches.\n\n**Your answer**:\n\n"
        "Numbered list style:\n\n"
        "3. Launch now?\n   **Your answer**: yes\n\n   and a second paragraph\n"
        "4. Anything else?\n   **Your answer**:\n"
    )
    assert parse_answers(text) == [
        Answer(1, "Where is the master plan?", "plans/wave2.md"),
        Answer(2, "Which base branch?\nMore detail about branches.", "Numbered list style:"),
        Answer(3, "Launch now?", "yes\n\nand a second paragraph"),
        Answer(4, "Anything else?", ""),
    ]


def test_cli_answers_json_and_missing_file(two_questions: Path, tmp_path: Path) -> None:
    save_in_place(two_questions, answer_all(two_questions.read_text(), ["Postgres", ""]))
    res = run_cli("review", "answers", str(two_questions), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [
        {"number": 1, "question": "Postgres or SQLite?", "answer": "Postgres"},
        {"number": 2, "question": "Which port?", "answer": ""},
    ]
    res = run_cli("review", "answers", str(tmp_path / "nope.md"))
    assert res.returncode == 1
    assert res.stderr == f"autorun: error: {tmp_path / 'nope.md'}: no such review file\n"


# -- waiting -------------------------------------------------------------------

FAST = ("--settle", "0.2")  # most tests need no autosave protection


def test_wait_returns_on_in_place_save(two_questions: Path) -> None:
    proc = start_wait(two_questions, "--timeout", "20", *FAST)
    save_in_place(two_questions, answer_all(two_questions.read_text(), ["Postgres", "5432"]))
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert [a["answer"] for a in json.loads(out)] == ["Postgres", "5432"]
    assert str(two_questions) in err and "comment lines" in err  # how to answer, on stderr
    assert "2/2 answered in" in err  # progress


def test_wait_returns_on_atomic_rename_save(two_questions: Path) -> None:
    proc = start_wait(two_questions, "--timeout", "20", *FAST)
    save_by_rename(two_questions, answer_all(two_questions.read_text(), ["SQLite", "none"]))
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert [a["answer"] for a in json.loads(out)] == ["SQLite", "none"]


def test_wait_survives_backup_rename_then_write(two_questions: Path) -> None:
    """vim with 'backupcopy=no': rename the file away, write a new one, drop the backup."""
    proc = start_wait(two_questions, "--timeout", "20", *FAST)
    text = two_questions.read_text()
    backup = two_questions.with_name(two_questions.name + "~")
    os.rename(two_questions, backup)
    time.sleep(0.2)
    two_questions.write_text(answer_all(text, ["a", "b"]))
    backup.unlink()
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert [a["answer"] for a in json.loads(out)] == ["a", "b"]


def still_waiting(proc: subprocess.Popen[str], seconds: float = 1.0) -> None:
    """The wait has not returned ``seconds`` after the last save."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)


def test_one_answer_of_two_keeps_waiting_until_the_second(two_questions: Path) -> None:
    proc = start_wait(two_questions, "--timeout", "30", *FAST)
    text = set_answer(two_questions.read_text(), 1, "Postgres")
    save_in_place(two_questions, text)  # an autosave after the first answer
    still_waiting(proc)
    save_by_rename(two_questions, text + "\nA note below everything.\n")
    still_waiting(proc)
    save_in_place(two_questions, set_answer(text, 2, "5432"))
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert [a["answer"] for a in json.loads(out)] == ["Postgres", "5432"]
    assert "1/2 answered in" in err and "2/2 answered in" in err


def test_done_box_returns_at_once_with_the_rest_unanswered(two_questions: Path) -> None:
    proc = start_wait(two_questions, "--timeout", "30", "--settle", "60")
    text = set_answer(two_questions.read_text(), 1, "SQLite, and no port question")
    save_in_place(two_questions, text)
    still_waiting(proc, 0.5)
    started = time.monotonic()
    save_in_place(two_questions, tick_done(text))
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert time.monotonic() - started < 5  # not the 60 s settle
    assert json.loads(out) == [
        {"number": 1, "question": "Postgres or SQLite?", "answer": "SQLite, and no port question"},
        {"number": 2, "question": "Which port?", "answer": ""},
    ]


def test_an_autosave_mid_sentence_does_not_end_the_wait(two_questions: Path) -> None:
    """Every question answered, then the user goes on typing: the wait takes the
    last version, not the one saved mid-sentence."""
    proc = start_wait(two_questions, "--timeout", "30", "--settle", "3")
    text = set_answer(two_questions.read_text(), 1, "Postgres")
    save_in_place(two_questions, set_answer(text, 2, "54"))  # autosaved mid-word
    time.sleep(0.3)
    assert proc.poll() is None
    save_in_place(two_questions, set_answer(text, 2, "5432, the default"))
    rc, out, err = finish(proc, timeout=20)
    assert rc == 0, err
    assert [a["answer"] for a in json.loads(out)] == ["Postgres", "5432, the default"]
    assert "going on in 3s unless the file changes again" in err


def test_wait_times_out_with_its_own_exit_code(two_questions: Path) -> None:
    proc = start_wait(two_questions, "--timeout", "0.5")
    rc, out, err = finish(proc)
    assert rc == 5 and out == ""
    assert f"autorun: error: {two_questions}: not answered after" in err and "timed out" in err
    assert "0/2 answered" in err and "Traceback" not in err
    assert not list((two_questions.parent / ".waiting").iterdir())  # record and lock removed


def test_file_deleted_while_waiting_is_a_clear_error(two_questions: Path) -> None:
    proc = start_wait(two_questions, "--timeout", "20")
    two_questions.unlink()
    rc, out, err = finish(proc)
    assert rc == 1 and out == ""
    assert err.splitlines()[-1] == (
        f"autorun: error: {two_questions}: the review file was deleted while waiting for answers"
    )


def test_file_replaced_by_a_directory_while_waiting_is_a_clear_error(two_questions: Path) -> None:
    proc = start_wait(two_questions, "--timeout", "20")
    two_questions.unlink()
    two_questions.mkdir()
    rc, out, err = finish(proc)
    assert rc == 1 and out == "" and "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"autorun: error: {two_questions}: the review file was replaced by a directory "
        "while waiting for answers"
    )
    assert not list((two_questions.parent / ".waiting").iterdir())


def test_file_replaced_by_a_fifo_while_waiting_is_a_clear_error(two_questions: Path) -> None:
    proc = start_wait(two_questions, "--timeout", "20")
    two_questions.unlink()
    os.mkfifo(two_questions)  # reading it would block forever
    rc, out, err = finish(proc)
    assert rc == 1 and out == "" and "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"autorun: error: {two_questions}: the review file was replaced by something that "
        "is not a file while waiting for answers"
    )
    res = run_cli("review", "answers", str(two_questions))
    assert res.returncode == 1
    assert (
        res.stderr == f"autorun: error: {two_questions}: is not a regular file, not a review file\n"
    )


def test_polling_fallback_sees_saves(two_questions: Path) -> None:
    proc = start_wait(two_questions, "--timeout", "20", *FAST, env={"AUTORUN_REVIEW_POLL": "1"})
    save_by_rename(two_questions, answer_all(two_questions.read_text(), ["x", "y"]))
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert [a["answer"] for a in json.loads(out)] == ["x", "y"]


def test_wait_on_a_fully_answered_or_done_file_returns_at_once(two_questions: Path) -> None:
    text = two_questions.read_text()
    save_in_place(two_questions, answer_all(text, ["done", "done"]))
    res = run_cli("review", "wait", str(two_questions), "--no-open", "--timeout", "5")
    assert res.returncode == 0
    assert "1. Postgres or SQLite?\n   Answer:\n     done\n" in res.stdout
    save_in_place(two_questions, tick_done(text))
    res = run_cli("review", "wait", str(two_questions), "--no-open", "--timeout", "5")
    assert res.returncode == 0 and res.stdout.count("(no answer)") == 2


def test_wait_on_a_file_without_questions_fails(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("# just notes\n")
    res = run_cli("review", "wait", str(path), "--no-open", "--timeout", "5")
    assert res.returncode == 1 and "not a review file" in res.stderr


# -- the inbox, events, the monitor's view --------------------------------------


def test_waiting_is_visible_to_other_processes(autorun_home: Path) -> None:
    orch = autorun_home / "orchestration" / "plan-x"
    orch.mkdir(parents=True)
    (orch / "status.json").write_text(json.dumps({"plan_name": "plan-x", "project_slug": "px"}))
    path = new_review("Need input", ["One?", "Two?"], stage=(orch, 2))
    other = new_review("Unrelated", ["Three?"])

    assert not is_stage_waiting(orch, 2)
    proc = start_wait(path, "--timeout", "20")
    try:
        assert is_stage_waiting(orch, 2) and not is_stage_waiting(orch, 3)
        inbox = {r.path: r for r in list_reviews()}
        assert inbox[path].state == "waiting" and inbox[path].run == "plan-x"
        assert inbox[path].stage == 2 and inbox[path].waiting_pids == (proc.pid,)
        assert inbox[other].state == "open"
        assert [r.path for r in waiting_reviews_for(orch)] == [path]
        res = run_cli("review", "list")
        line = next(ln for ln in res.stdout.splitlines() if str(path) in ln)
        assert line.split()[1:5] == ["waiting", "plan-x", "2", "2/2"]
    finally:
        save_in_place(path, tick_done(answer_all(path.read_text(), ["1", ""])))
        rc, out, err = finish(proc)
    assert rc == 0, err

    assert not is_stage_waiting(orch, 2)
    assert not list((autorun_home / "review" / ".waiting").iterdir())
    # done, though question 2 is empty: off the inbox, on --all
    assert [r.path for r in list_reviews()] == [other]
    everything = {r.path: r.state for r in list_reviews(include_answered=True)}
    assert everything == {path: "answered", other: "open"}
    assert waiting_reviews_for(orch) == []
    res = run_cli("review", "list", "--all", "--json")
    assert {(d["path"], d["state"]) for d in json.loads(res.stdout)} == {
        (str(path), "answered"),
        (str(other), "open"),
    }

    events = [json.loads(x) for x in (orch / "events.jsonl").read_text().splitlines()]
    assert [e["type"] for e in events] == ["review_waiting", "review_answered"]
    assert events[0]["stage"] == 2 and events[0]["review_file"] == str(path)
    assert events[0]["questions"] == 2 and events[0]["plan_name"] == "plan-x"
    assert events[1]["answered"] == 1


def test_a_waiter_is_alive_only_while_it_holds_its_lock(autorun_home: Path) -> None:
    """Records whose lock nobody holds are stale, whatever their pid says: a dead
    pid, this very (live) process's pid as a reused one, an old pid-only record."""
    orch = autorun_home / "orchestration" / "plan-y"
    orch.mkdir(parents=True)
    path = new_review("Stale", ["Q?"], stage=(orch, 1))
    waiting = autorun_home / "review" / ".waiting"
    waiting.mkdir(parents=True)
    records = []
    for token, pid in (("dead", 999999), ("reused", os.getpid()), (str(os.getpid()), 1)):
        record = waiting / f"{path.name}.{token}.json"
        record.write_text(
            json.dumps(
                {"pid": pid, "file": str(path), "started_at": "", "orch_dir": str(orch), "stage": 1}
            )
        )
        if token != str(os.getpid()):
            record.with_suffix(".lock").write_text("")  # left by a waiter that died
        records.append(record)
    assert not is_stage_waiting(orch, 1)
    assert [r.state for r in list_reviews()] == ["open"]
    assert not list(waiting.iterdir())

    # A live wait in this process: seen while it holds the lock, gone after.
    from autorun_py.review.inbox import registered_waiter

    with registered_waiter(path, read_meta(path.read_text())):
        assert is_stage_waiting(orch, 1)
        assert [r.state for r in list_reviews()] == ["waiting"]
    assert not is_stage_waiting(orch, 1)
    assert not list(waiting.iterdir())


def test_tmux_message_reaches_attached_clients(tmux_socket: str, two_questions: Path) -> None:
    subprocess.run(
        ["tmux", "-L", tmux_socket, "new-session", "-d", "-s", "s", "-x", "80", "-y", "24"],
        check=True,
    )
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm"}
    client = subprocess.Popen(
        ["tmux", "-L", tmux_socket, "attach", "-t", "s"],
        stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    try:
        names: list[str] = []
        for _ in range(100):
            out = subprocess.run(
                ["tmux", "-L", tmux_socket, "list-clients", "-F", "#{client_name}"],
                capture_output=True, text=True,
            ).stdout  # fmt: skip
            names = out.split()
            if names:
                break
            time.sleep(0.05)
        assert names, "the tmux client did not attach"
        used = notify_user(two_questions, read_meta(two_questions.read_text()), 2, bell=False)
        assert used == ["tmux"]
        log = subprocess.run(
            ["tmux", "-L", tmux_socket, "show-messages", "-t", names[0]],
            capture_output=True,
            text=True,
        ).stdout
        assert f"message: autorun: waits for your answers (Pick a database): {two_questions}" in log
    finally:
        client.kill()
        client.wait(5)
        os.close(master)


def test_no_channel_is_used_without_tmux_clients_desktop_or_run(
    two_questions: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if sys.platform == "darwin":
        pytest.skip("macOS always has a desktop session")
    assert review.has_desktop() is False
    assert review.open_for_user(two_questions) is False
    assert notify_user(two_questions, read_meta(two_questions.read_text()), 2, bell=False) == []


def test_read_answers_of_a_review_created_by_the_cli() -> None:
    res = run_cli("review", "new", "--title", "Multi", "--question", "A?", "--context", "ctx")
    path = Path(res.stdout.strip())
    assert [a.question for a in read_answers(path)] == ["A?"]


def test_terminated_wait_removes_its_waiter_record(autorun_home: Path, two_questions: Path) -> None:
    proc = start_wait(two_questions, "--timeout", "20")
    proc.terminate()
    rc, _out, _err = finish(proc)
    assert rc == 128 + 15
    assert not list((autorun_home / "review" / ".waiting").iterdir())  # record and lock


def test_a_killed_wait_is_not_waiting_any_more(autorun_home: Path, two_questions: Path) -> None:
    proc = start_wait(two_questions, "--timeout", "20")
    assert [r.state for r in list_reviews()] == ["waiting"]
    proc.kill()  # SIGKILL: no clean-up runs; the lock dies with the process
    proc.wait(5)
    assert [r.state for r in list_reviews()] == ["open"]
    assert not list((autorun_home / "review" / ".waiting").iterdir())
