"""The one domain exception type and the exit codes it maps to.

Every module raises :class:`AutorunError` (or a subclass); only the CLI edge
(``autorun_py.cli.main``) turns it into a message on stderr and an exit code.
"""

from __future__ import annotations

import enum
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, Union


class ExitCode(enum.IntEnum):
    OK = 0
    FAILURE = 1  # invalid input (bad plan, bad state), or an operation that failed
    USAGE = 2  # wrong usage of the command line
    MERGE_CONFLICT = 3  # `autorun merge`: conflicted; the model must resolve
    MERGE_BLOCKED = 4  # `autorun merge`: the user's uncommitted changes block the base update
    TIMEOUT = 5  # a wait (review, lock) ran out of time
    # `autorun merge`: the candidate failed the verify command (the merge gate); the base
    # did not move. (Exit codes are per command: `autorun merge` never exits 5 for a
    # timeout, see autorun_py/cli/merge_cmd.py.)
    VERIFY_FAILED = 5
    INTERRUPTED = 130


class AutorunError(Exception):
    """An error a person can act on: one line, naming the file and line when known."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(
        self,
        message: str,
        *,
        path: Optional[Union[str, Path]] = None,
        line: Optional[int] = None,
        exit_code: Optional[ExitCode] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path + (f":{self.line}" if self.line is not None else "") + ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        return where + self.message


class UsageError(AutorunError):
    exit_code = ExitCode.USAGE


class CommandError(AutorunError):
    """A subprocess (git, tmux, ...) failed; carries the argv and its stderr."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int,
        stderr: str,
        *,
        stdout: str = "",
        what: str = "",
    ) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        self.stdout = stdout
        detail = stderr.strip().splitlines()
        tail = detail[-1] if detail else f"exit status {returncode}"
        prefix = f"{what}: " if what else ""
        super().__init__(f"{prefix}`{shlex.join(self.argv)}` failed: {tail}")


class GitError(CommandError):
    pass


class TmuxError(CommandError):
    pass


def os_error_line(exc: OSError) -> str:
    """One line for an OSError: the file(s) it names and the system's reason (the
    error boundary's, for the full CLI and the lean path alike)."""
    where = ""
    if exc.filename is not None:
        where = f"{os.fsdecode(exc.filename)}: "
        if exc.filename2 is not None:
            where = f"{os.fsdecode(exc.filename)} -> {os.fsdecode(exc.filename2)}: "
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"autorun: error: {where}{reason}"
