"""`autorun install-cli`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import click

from autorun_py.cli._out import echo_json


@click.command("install-cli")
@click.option(
    "--bin-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where to put the link [default: $XDG_BIN_HOME or ~/.local/bin].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")
def install_cli(bin_dir: Optional[Path], as_json: bool) -> None:
    """Put `autorun` on PATH: link BIN_DIR/autorun to this plugin's scripts/autorun.

    Idempotent. A file of that name that is not autorun's own link is never
    replaced (exit 1); a link to another copy of autorun's shim is updated.
    """
    from autorun_py.install import install_cli as do_install

    result = do_install(bin_dir, os.environ)
    if as_json:
        echo_json(result.to_json())
    else:
        click.echo(result.to_text())
