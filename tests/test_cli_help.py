"""Every command and every option says what it does in --help."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest

from autorun_py.cli import cli


def commands(cmd: click.Command, path: tuple[str, ...]) -> Iterator[tuple[str, click.Command]]:
    yield " ".join(path), cmd
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd, info_name=path[-1])
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            assert sub is not None, name
            yield from commands(sub, (*path, name))


ALL = list(commands(cli, ("autorun",)))


def test_there_are_commands() -> None:
    names = [name for name, _ in ALL]
    assert {"autorun orchestrate", "autorun status", "autorun review wait"} <= set(names)


@pytest.mark.parametrize(("name", "cmd"), ALL, ids=[name for name, _ in ALL])
def test_every_option_has_help(name: str, cmd: click.Command) -> None:
    assert (cmd.help or cmd.short_help or "").strip(), f"{name} has no help text"
    missing = [
        "/".join(p.opts)
        for p in cmd.params
        if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()
    ]
    assert not missing, f"{name}: options without help: {', '.join(missing)}"


def test_schedule_help_says_what_waves_means() -> None:
    ctx = click.Context(cli, info_name="autorun")
    orchestrate = cli.get_command(ctx, "orchestrate")
    assert orchestrate is not None
    (schedule,) = [p for p in orchestrate.params if p.name == "schedule"]
    text = getattr(schedule, "help", "") or ""
    assert "seed" not in text and "every stage of the waves before it" in text
