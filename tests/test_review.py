"""Review files: writing, parsing, waiting (real files, real subprocesses, real tmux)."""

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

from autorun_py import review
from autorun_py.review import (
    Answer,
    is_stage_waiting,
    list_reviews,
    new_review,
    notify_user,
    parse_answers,
    read_answers,
    read_meta,
    waiting_reviews_for,
)


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
    """`autorun review wait FILE --no-open --json`, returned once it is waiting."""
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
        if (waiting / f"{path.name}.{proc.pid}.json").exists():
            return proc
        time.sleep(0.02)
    out, err = proc.communicate(timeout=5) if proc.poll() is not None else ("", "")
    proc.kill()
    raise AssertionError(f"review wait did not start waiting: {out!r} {err!r}")


def answer_all(text: str, answers: list[str]) -> str:
    it = iter(answers)
    return re.sub(
        r"^\*\*Your answer\*\*:$", lambda _m: f"**Your answer**: {next(it)}", text, flags=re.M
    )


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
    assert "# Review: Pick a database!" in text
    assert "## Context\n\nStage 2 needs storage.\n" in text
    assert "### 1. Postgres or SQLite?" in text and "### 2. Which port?" in text
    assert text.count("**Your answer**:\n") == 2
    assert text.rstrip().endswith("continues as soon as you save._")
    assert parse_answers(text) == [
        Answer(1, "Postgres or SQLite?", ""),
        Answer(2, "Which port?\nDefault: 5432.", ""),
    ]
    meta = read_meta(text)
    assert meta is not None and meta.title == "Pick a database!" and meta.stage is None


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


def test_answers_with_code_blocks_and_extra_paragraphs(two_questions: Path) -> None:
    text = two_questions.read_text()
    first = (
        "**Your answer**: Postgres, because:\n\n"
        "- we need JSONB\n- and row locks\n\n"
        "A second paragraph.\n\n"
        "```python\n**Your answer**: not a marker\n### 2. not a question\n\n\nx = 1\n```\n\n"
        "Final words."
    )
    text = text.replace("**Your answer**:", first, 1)
    text = text.replace(
        "### 2. Which port?\n\n**Your answer**:",
        "### 2. Which port?\n\n**Your answer**:\n\n5433",
        1,
    )
    answers = parse_answers(text)
    assert [a.number for a in answers] == [1, 2]
    assert answers[0].question == "Postgres or SQLite?"
    assert answers[0].answer == first[len("**Your answer**: ") :]
    assert answers[1] == Answer(2, "Which port?", "5433")


def test_answers_survive_user_edits(two_questions: Path) -> None:
    text = two_questions.read_text()
    text = text.replace("### 1.", "# 1.").replace("### 2.", "#### 2.")  # heading levels
    text = text.replace("## Context\n", "## Context\n\nMy own note up here.\n")  # added text
    text = text.replace("**Your answer**:", "**Your answer:** SQLite", 1)  # variant marker
    text = text[: text.index("---")]  # trailing rule and closing line removed
    text += "**Your answer**:\nNo port, it is a file.\n"
    text = text.replace("**Your answer**:\n\n\n**Your answer**:", "**Your answer**:\n")
    answers = parse_answers(text)
    assert answers == [
        Answer(1, "Postgres or SQLite?", "SQLite"),
        Answer(2, "Which port?", "No port, it is a file."),
    ]


def test_closing_line_and_rule_are_not_part_of_the_last_answer(two_questions: Path) -> None:
    text = answer_all(two_questions.read_text(), ["a", "b"]) + "\nA note after everything.\n"
    answers = parse_answers(text)
    assert answers[1].answer == "b\n\nA note after everything."
    assert "---" not in answers[1].answer and "autorun is waiting" not in answers[1].answer


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


def test_wait_returns_on_in_place_save(two_questions: Path) -> None:
    proc = start_wait(two_questions, "--timeout", "20")
    save_in_place(two_questions, answer_all(two_questions.read_text(), ["Postgres", "5432"]))
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert [a["answer"] for a in json.loads(out)] == ["Postgres", "5432"]
    assert str(two_questions) in err and "**Your answer**:" in err  # how to answer, on stderr


def test_wait_returns_on_atomic_rename_save(two_questions: Path) -> None:
    proc = start_wait(two_questions, "--timeout", "20")
    save_by_rename(two_questions, answer_all(two_questions.read_text(), ["SQLite", "none"]))
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert [a["answer"] for a in json.loads(out)] == ["SQLite", "none"]


def test_wait_survives_backup_rename_then_write(two_questions: Path) -> None:
    """vim with 'backupcopy=no': rename the file away, write a new one, drop the backup."""
    proc = start_wait(two_questions, "--timeout", "20")
    text = two_questions.read_text()
    backup = two_questions.with_name(two_questions.name + "~")
    os.rename(two_questions, backup)
    time.sleep(0.2)
    two_questions.write_text(answer_all(text, ["a", "b"]))
    backup.unlink()
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert [a["answer"] for a in json.loads(out)] == ["a", "b"]


def test_save_with_unchanged_answers_keeps_waiting(two_questions: Path) -> None:
    proc = start_wait(two_questions, "--timeout", "20")
    text = two_questions.read_text()
    save_in_place(two_questions, text.replace("We need a DB.", "We need a DB. (edited)"))
    save_by_rename(two_questions, text + "\n\n")
    time.sleep(0.8)
    assert proc.poll() is None, proc.communicate()
    save_in_place(two_questions, answer_all(text, ["", "8080"]))
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert [a["answer"] for a in json.loads(out)] == ["", "8080"]


def test_wait_times_out_with_its_own_exit_code(two_questions: Path) -> None:
    proc = start_wait(two_questions, "--timeout", "0.5")
    rc, out, err = finish(proc)
    assert rc == 5 and out == ""
    assert f"autorun: error: {two_questions}: no answers after" in err and "timed out" in err
    assert "Traceback" not in err
    assert not list((two_questions.parent / ".waiting").iterdir())  # record removed


def test_file_deleted_while_waiting_is_a_clear_error(two_questions: Path) -> None:
    proc = start_wait(two_questions, "--timeout", "20")
    two_questions.unlink()
    rc, out, err = finish(proc)
    assert rc == 1 and out == ""
    assert err.splitlines()[-1] == (
        f"autorun: error: {two_questions}: the review file was deleted while waiting for answers"
    )


def test_polling_fallback_sees_saves(two_questions: Path) -> None:
    proc = start_wait(two_questions, "--timeout", "20", env={"AUTORUN_REVIEW_POLL": "1"})
    save_by_rename(two_questions, answer_all(two_questions.read_text(), ["x", "y"]))
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert [a["answer"] for a in json.loads(out)] == ["x", "y"]


def test_wait_on_a_fully_answered_file_returns_at_once(two_questions: Path) -> None:
    save_in_place(two_questions, answer_all(two_questions.read_text(), ["done", "done"]))
    res = run_cli("review", "wait", str(two_questions), "--no-open", "--timeout", "5")
    assert res.returncode == 0
    assert "1. Postgres or SQLite?\n   Answer:\n     done\n" in res.stdout


def test_wait_on_a_file_without_placeholders_fails(tmp_path: Path) -> None:
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
        save_in_place(path, answer_all(path.read_text(), ["1", ""]))
        rc, out, err = finish(proc)
    assert rc == 0, err

    assert not is_stage_waiting(orch, 2)
    # answered by the wait, though question 2 is empty: off the inbox, on --all
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


def test_stale_waiter_record_is_ignored(autorun_home: Path) -> None:
    orch = autorun_home / "orchestration" / "plan-y"
    orch.mkdir(parents=True)
    path = new_review("Stale", ["Q?"], stage=(orch, 1))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    record = autorun_home / "review" / ".waiting" / f"{path.name}.{pid}.json"
    record.parent.mkdir(parents=True)
    record.write_text(
        json.dumps(
            {"pid": pid, "file": str(path), "started_at": "", "orch_dir": str(orch), "stage": 1}
        )
    )
    assert not is_stage_waiting(orch, 1)
    assert [r.state for r in list_reviews()] == ["open"]
    assert not record.exists()


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
    assert not list((autorun_home / "review" / ".waiting").glob("*.json"))
