"""Output helpers for the CLI edge."""

from __future__ import annotations

import json
from typing import Any

import click


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def echo_err(message: str) -> None:
    click.echo(message, err=True)
