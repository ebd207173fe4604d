"""Every ``autorun ...`` and ``scripts/...`` command shown in README.md and docs/*.md
exists, and its options parse: the docs cannot drift from the CLI.

Commands are taken from fenced code blocks (one per line) and inline code spans.
Usage forms are understood: ``[optional]`` parts, ``a|b`` alternatives (each is
checked), and placeholders (``PLAN``, ``RUN``, ``<args>``, ``...``). A command
without placeholders is parsed in full by click, as if it were run; every
command's ``--help`` is run too.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Optional

import click
import pytest
from click.testing import CliRunner

from autorun_py.cli import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^ {0,3}(```+|~~~+)[^\n]*\n(.*?)^ {0,3}\1", re.S | re.M)
_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_COMMAND = re.compile(r"^(?:\$ )?(?:[A-Z_][A-Z0-9_]*=\S* )*((?:autorun|scripts/|\.ci/)\S*)(.*)$")
_SHIM_OPTIONS = {"--data-dir": True, "--exit-zero": False}  # scripts/autorun's own


def shown_commands() -> list[tuple[str, str]]:
    """(where, command text) for every command the docs show."""
    out: list[tuple[str, str]] = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        name = doc.relative_to(ROOT).as_posix()
        for m in _FENCE.finditer(text):
            for line in m.group(2).splitlines():
                line = re.sub(r"\s+#\s.*$", "", line).strip()  # a shell comment
                for part in re.split(r"\s(?:\|\||&&|\||;)\s", line):
                    if _COMMAND.match(part.strip()):
                        out.append((f"{name} (code block)", part.strip()))
        prose = _FENCE.sub("", text)
        for m in _SPAN.finditer(prose):
            span = " ".join(m.group(2).split()).replace("\\|", "|")
            cm = _COMMAND.match(span)
            if cm and (cm.group(1) == "autorun" or not cm.group(1).startswith("autorun")):
                out.append((f"{name} (code span)", span))
    return out


def _placeholder(word: str) -> bool:
    w = word.strip("[]\"'")
    return (
        w in ("...", "…")
        or w.startswith("<")
        or bool(re.fullmatch(r"[A-Z][A-Z0-9_]*", w))
        or bool(re.fullmatch(r"[A-Z][A-Z0-9_]*\.\.\.", w))
    )


def _words(text: str) -> list[str]:
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    return [w for w in (w.strip("[]") for w in words) if w]


def _option(cmd: click.Command, name: str) -> Optional[click.Parameter]:
    for p in cmd.params:
        if isinstance(p, click.Option) and (name in p.opts or name in p.secondary_opts):
            return p
    return None


def check_autorun(words: list[str], text: str) -> list[str]:
    """Problems with ``autorun WORDS`` (empty: fine)."""
    problems: list[str] = []
    cmd: click.Command = cli
    path = ["autorun"]
    i = 0
    while isinstance(cmd, click.Group) and i < len(words) and not words[i].startswith("-"):
        if _placeholder(words[i]):
            return problems  # e.g. `scripts/autorun <autorun args>`
        alts = words[i].split("|")
        ctx = click.Context(cmd, info_name=path[-1])
        subs = [cmd.get_command(ctx, a) for a in alts]
        missing = [a for a, s in zip(alts, subs) if s is None]
        if missing:
            return [f"no command `{' '.join(path)} {missing[0]}`"]
        if len(alts) > 1:
            for alt in alts:
                problems += check_autorun([*words[:i], alt, *words[i + 1 :]], text)
            return problems
        sub = subs[0]
        assert sub is not None
        cmd = sub
        path.append(alts[0])
        i += 1
    rest = words[i:]
    positional = 0
    j = 0
    while j < len(rest):
        word = rest[j]
        j += 1
        if not word.startswith("-") or word == "-":
            positional += not _placeholder(word)
            continue
        for alt in word.split("|"):
            name, _, inline = alt.partition("=")
            if name in ("--help", "-h"):
                continue
            opt = _option(cmd, name)
            if opt is None:
                problems.append(f"`{' '.join(path)}` has no option {name}")
                continue
            assert isinstance(opt, click.Option)
            if opt.is_flag or opt.count:
                continue
            value = inline
            if not inline and j < len(rest):
                value, j = rest[j], j + 1
            if value and not _placeholder(value) and isinstance(opt.type, click.Choice):
                bad = [v for v in value.split("|") if v not in opt.type.choices]
                if bad:
                    problems.append(
                        f"`{' '.join(path)} {name}` does not take {bad[0]!r} "
                        f"(choices: {', '.join(map(str, opt.type.choices))})"
                    )
    result = CliRunner().invoke(cli, [*path[1:], "--help"])
    if result.exit_code != 0:
        problems.append(f"`{' '.join(path)} --help` exits {result.exit_code}: {result.output}")
    concrete = not any(_placeholder(w) or "|" in w for w in words) and "[" not in text
    if concrete and not problems and not isinstance(cmd, click.Group):
        try:
            with cmd.make_context(path[-1], list(rest)) as _ctx:
                pass
        except click.MissingParameter:
            if positional:  # a command given with arguments must be complete
                problems.append(f"`{text}` lacks an argument")
        except click.ClickException as exc:
            problems.append(f"`{text}` does not parse: {exc.format_message()}")
    return problems


def check(text: str) -> list[str]:
    cm = _COMMAND.match(text)
    assert cm is not None
    head, tail = cm.group(1), cm.group(2)
    words = _words(tail)
    if head == "autorun":
        return check_autorun(words, text)
    target = ROOT / head.rstrip("/")
    if not target.exists():
        return [f"{head} does not exist"]
    if head.endswith("/"):
        return [] if target.is_dir() else [f"{head} is not a folder"]
    if words and not os.access(target, os.X_OK):
        return [f"{head} is shown with arguments but is not executable"]
    if head == "scripts/autorun":
        k = 0
        while k < len(words) and words[k] in _SHIM_OPTIONS:
            k += 2 if _SHIM_OPTIONS[words[k]] else 1
        return check_autorun(words[k:], text) if words[k:] else []
    return []


SHOWN = shown_commands()


def test_the_docs_show_commands() -> None:
    texts = {t for _, t in SHOWN}
    assert "autorun doctor" in texts and "scripts/check" in texts
    assert len(SHOWN) > 30


@pytest.mark.parametrize(("where", "text"), SHOWN, ids=[f"{w}: {t}" for w, t in SHOWN])
def test_shown_command_exists_and_parses(where: str, text: str) -> None:
    problems = check(text)
    assert not problems, f"{where}: {'; '.join(problems)}"


@pytest.mark.parametrize(
    "text",
    [
        "autorun nonsense",
        "autorun plan check PLAN --jsn",
        "autorun plan show PLAN --format mermaid|svg",
        "autorun review new|ask",
        "autorun orchestrate plan.md --max-parallel many",
        "autorun merge RUN STAGE [--continue|--abandon]",
        "scripts/no-such-script",
    ],
)
def test_the_checker_catches_drift(text: str) -> None:
    assert check(text), text
