"""``autorun review``: ask the user questions through a review file and wait for the answers."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from autorun_py.errors import AutorunError, UsageError

if TYPE_CHECKING:
    from autorun_py.review import Answer


@click.group("review")
def review() -> None:
    """Ask the user questions in a Markdown review file and wait for the answers.

    \b
    FILE=$(autorun review new --title "Pick a DB" --question "Postgres or SQLite?")
    autorun review wait "$FILE" --json      # blocks until the user has answered
    autorun review list                     # every question still waiting
    """


@review.command("new")
@click.option("--title", required=True, help="What the review is about (heading and file name).")
@click.option("--context", "context_text", default=None, help="Context for the user (Markdown).")
@click.option(
    "--context-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read the context from this Markdown file.",
)
@click.option("--question", "questions", multiple=True, required=True, help="A question (repeat).")
@click.option(
    "--stage",
    "stage_ref",
    default=None,
    metavar="ORCH:N",
    help="The run (directory or plan name) and stage asking.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of the path.")
def new_cmd(
    title: str,
    context_text: str | None,
    context_file: Path | None,
    questions: tuple[str, ...],
    stage_ref: str | None,
    as_json: bool,
) -> None:
    """Write a new review file and print its path."""
    from autorun_py.review import new_review, parse_stage_ref

    if context_text is not None and context_file is not None:
        raise UsageError("give --context or --context-file, not both")
    context = context_text or ""
    if context_file is not None:
        try:
            context = context_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise AutorunError(
                f"cannot read context file: {exc.strerror}", path=context_file
            ) from None
    stage = parse_stage_ref(stage_ref) if stage_ref else _current_stage()
    path = new_review(title, list(questions), context, stage)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "path": str(path),
                    "questions": len([q for q in questions if q.strip()]),
                    "orch_dir": None if stage is None else str(stage[0]),
                    "stage": None if stage is None else stage[1],
                }
            )
        )
    else:
        click.echo(str(path))


@review.command("wait")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--timeout", type=click.FloatRange(min=0), default=None, help="Give up after SECONDS (exit 5)."
)
@click.option(
    "--no-open", is_flag=True, help="Do not open the file in the desktop's default application."
)
@click.option(
    "--settle",
    type=click.FloatRange(min=0),
    default=3.0,
    show_default=True,
    help="Once every question has an answer, go on after SECONDS without another save "
    "(an autosaving editor saves mid-sentence). The done box goes on at once.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the answers as JSON.")
def wait_cmd(
    file: Path, timeout: float | None, no_open: bool, settle: float, as_json: bool
) -> None:
    """Wait until the user has answered FILE; print the answers.

    Answered means: every question has an answer (and no save for --settle
    seconds), or the user ticked the file's done box (`- [x] done`), leaving
    the rest unanswered. Progress goes to stderr, the answers to stdout. Exit 5
    on timeout, 1 when the file is deleted or replaced while waiting.
    """
    import signal

    from autorun_py.review import wait_for_answers

    def _terminated(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds: the waiter record and lock go

    signal.signal(signal.SIGTERM, _terminated)
    answers = wait_for_answers(
        file,
        timeout,
        notify=True,
        open_file=not no_open,
        progress=lambda msg: click.echo(msg, err=True),
        settle=settle,
        force_polling=bool(os.environ.get("AUTORUN_REVIEW_POLL")),
    )
    _print_answers(answers, as_json)


@review.command("answers")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the answers as JSON.")
def answers_cmd(file: Path, as_json: bool) -> None:
    """Print the questions and answers of FILE (an empty answer is an empty string)."""
    from autorun_py.review import read_review

    doc = read_review(file)
    for problem in doc.problems:
        click.echo(f"autorun: warning: {file}: {problem}", err=True)
    _print_answers(list(doc.answers), as_json)


@review.command("list")
@click.option("--all", "include_answered", is_flag=True, help="Include answered reviews.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_cmd(include_answered: bool, as_json: bool) -> None:
    """The inbox: every review still waiting for you, across all runs."""
    from autorun_py.attention import entries
    from autorun_py.review import format_duration, list_reviews

    reviews = list_reviews(include_answered=include_answered)
    others = entries()  # stages waiting at a permission prompt, or stalled
    if as_json:
        click.echo(json.dumps([r.to_json() for r in reviews] + others, indent=2))
        return
    for entry in others:
        click.echo(f"! {entry.get('message', '')}")
    if not reviews:
        if not others:
            click.echo("No reviews waiting." if not include_answered else "No reviews.")
        return
    rows = [("AGE", "STATE", "RUN", "STAGE", "OPEN", "FILE")]
    for r in reviews:
        rows.append(
            (
                format_duration(r.age_seconds()),
                r.state,
                r.run or "-",
                "-" if r.stage is None else str(r.stage),
                f"{r.unanswered}/{r.questions}",
                str(r.path),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5]
        )


def _print_answers(answers: Sequence[Answer], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([a.to_json() for a in answers], indent=2, ensure_ascii=False))
        return
    for a in answers:
        first, *rest = (a.question or "(no question text)").split("\n")
        click.echo(f"{a.number}. {first}")
        for line in rest:
            click.echo(f"   {line}" if line else "")
        click.echo("   Answer:")
        body = a.answer if a.answer else "(no answer)"
        for line in body.split("\n"):
            click.echo(f"     {line}" if line else "")
        click.echo("")


def _current_stage() -> tuple[Path, int] | None:
    """The running stage this worktree or tmux session belongs to, if any: a
    question asked from inside a stage is attached to it without ``--stage``."""
    from autorun_py.stage import find_context

    try:
        ctx = find_context(Path.cwd(), environ=os.environ)
    except AutorunError:
        return None
    return Path(ctx.orch_dir), ctx.stage
