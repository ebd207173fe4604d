"""The run's verify spec: the command, its timeout, the attempts a stage gets and
how many candidates are verified at once; from ``autorun orchestrate --verify``,
the plan's front matter or ``config.json`` (first wins per field), stored in
``status.json`` under ``"verify"``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from autorun_py import paths
from autorun_py.errors import AutorunError

if TYPE_CHECKING:
    from autorun_py.config import Config

DEFAULT_TIMEOUT = 900.0
DEFAULT_ATTEMPTS = 3
DEFAULT_PARALLEL = 4


@dataclass(frozen=True)
class VerifySpec:
    """The run's verify spec (not gated when ``command`` is None)."""
    command: Optional[str] = None
    timeout: float = DEFAULT_TIMEOUT
    attempts: int = DEFAULT_ATTEMPTS
    source: Optional[str] = None  # "command line" | "plan" | "config"
    parallel: int = DEFAULT_PARALLEL  # speculative candidates verified at once

    @property
    def gated(self) -> bool:
        return bool(self.command)

    def to_raw(self) -> dict[str, Any]:
        return {
            "command": self.command or None,
            "timeout": self.timeout,
            "attempts": self.attempts,
            "parallel": self.parallel,
            "source": self.source if self.command else None,
        }

    @classmethod
    def from_raw(cls, raw: Any) -> VerifySpec:
        if not isinstance(raw, dict) or not raw.get("command"):
            return cls()
        try:
            return cls(
                command=str(raw["command"]),
                timeout=float(raw.get("timeout") or DEFAULT_TIMEOUT),
                attempts=max(1, int(raw.get("attempts") or DEFAULT_ATTEMPTS)),
                parallel=max(1, int(raw.get("parallel") or DEFAULT_PARALLEL)),
                source=str(raw.get("source") or "") or None,
            )
        except (TypeError, ValueError):
            raise AutorunError("status.json: verify must be {command, timeout, attempts}") from None

    def describe(self) -> str:
        if not self.command:
            return (
                "not gated (no verify command: stages merge without a check; give one with "
                "--verify CMD, `verify:` in the plan's front matter, or config.json)"
            )
        return (
            f"`{self.command}` (from the {self.source or 'run'}; timeout {self.timeout:g}s, "
            f"{self.attempts} attempt(s) per stage)"
        )


def _positive(value: Any, what: str, where: str, *, integer: bool = False) -> float:
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise AutorunError(
            f"{what} must be a {'whole ' if integer else ''}number", path=where
        ) from None
    if number <= 0:
        raise AutorunError(f"{what} must be positive", path=where)
    return number


def resolve_spec(
    *,
    command_line: Optional[str] = None,
    command_line_timeout: Optional[float] = None,
    front_matter: Optional[Mapping[str, str]] = None,
    plan_path: Optional[Path] = None,
    config: Config,
) -> VerifySpec:
    """The run's verify spec: command line over plan front matter over ``config``
    (the user's configuration as the CLI edge loaded it)."""
    front = dict(front_matter or {})
    config_path = str(paths.layout().config_file)
    plan_where = str(plan_path or "plan")
    command: Optional[str] = None
    source: Optional[str] = None
    for value, src in (
        (command_line, "command line"),
        (front.get("verify"), "plan"),
        (config.verify, "config"),
    ):
        if value is not None:
            command, source = value.strip(), src
            break
    timeout = DEFAULT_TIMEOUT
    if command_line_timeout is not None:
        timeout = _positive(command_line_timeout, "--verify-timeout", "command line")
    elif front.get("verify_timeout"):
        timeout = _positive(front["verify_timeout"], "verify_timeout (front matter)", plan_where)
    elif config.verify_timeout is not None:
        timeout = _positive(config.verify_timeout, "verify_timeout", config_path)
    attempts = DEFAULT_ATTEMPTS
    if front.get("verify_attempts"):
        attempts = int(
            _positive(
                front["verify_attempts"], "verify_attempts (front matter)", plan_where, integer=True
            )
        )
    elif config.verify_attempts is not None:
        attempts = int(
            _positive(config.verify_attempts, "verify_attempts", config_path, integer=True)
        )
    parallel = DEFAULT_PARALLEL
    if front.get("verify_parallel"):
        parallel = int(
            _positive(
                front["verify_parallel"], "verify_parallel (front matter)", plan_where, integer=True
            )
        )
    elif config.verify_parallel is not None:
        parallel = int(
            _positive(config.verify_parallel, "verify_parallel", config_path, integer=True)
        )
    if not command:
        return VerifySpec(timeout=timeout, attempts=attempts, parallel=parallel)
    return VerifySpec(
        command=command, timeout=timeout, attempts=attempts, source=source, parallel=parallel
    )


def spec_of(state: Any) -> VerifySpec:
    """The verify spec stored in a run's state (``RunState.extra["verify"]``)."""
    return VerifySpec.from_raw(getattr(state, "extra", {}).get("verify"))
