"""User configuration: ``$AUTORUN_HOME/config.json``, overridable by environment.

```json
{
  "agent": "claude",
  "agent_args": [],
  "permission_mode": "dontAsk",
  "models": {"research": "opus", "create_plan": "opus", "implement": "sonnet"},
  "keep_sessions": false,
  "max_launch_attempts": 3,
  "verify": "pytest -q",
  "verify_timeout": 900,
  "verify_attempts": 3,
  "verify_parallel": 4
}
```

Environment overrides: ``AUTORUN_CLAUDE`` (the agent executable),
``AUTORUN_AGENT_ARGS`` (extra arguments, shell-like words), ``AUTORUN_PERMISSION_MODE``,
``AUTORUN_MODEL`` (every phase) and ``AUTORUN_MODEL_<PHASE>``, ``AUTORUN_KEEP_SESSIONS``,
``AUTORUN_PLUGIN_DIR`` (passed as ``--plugin-dir`` when the plugin is not installed),
``AUTORUN_LAUNCHER`` (``launcher``: ``tmux``, the default, ``background`` or
``remote``; what runs the stages of new runs, or several with a cap each,
``tmux=2,background=4``, also as ``"launchers": {"tmux": 2, "background": 4}``;
see docs/scale-out.md). The remote launcher's ``"remote": {"environment":
"ccpool_...", "git_remote": "origin"}`` (the plan's front matter and
``--remote-environment`` / ``--remote-git-remote`` take precedence).

``permission_mode`` is passed to Claude Code as ``--permission-mode``; ``dontAsk``
needs an allow list in Claude Code's settings (``permissions.allow``). Which mode an
unattended run needs, and what each costs: docs/permissions.md (``acceptEdits`` is not
one: it stops at the first command it was not allowed).
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from autorun_py import paths
from autorun_py.errors import AutorunError

LAUNCH_STAGGER = 2.0


@dataclass(frozen=True)
class Config:
    """The user's configuration: `config.json` overridden by the environment, as the CLI edge
    loaded it."""
    agent: str = "claude"
    agent_args: tuple[str, ...] = ()
    permission_mode: Optional[str] = None
    models: dict[str, str] = field(default_factory=dict)
    keep_sessions: bool = False
    max_launch_attempts: int = 3
    plugin_dir: Optional[str] = None
    agent_source: str = "the default"  # where ``agent`` came from, for messages
    # where ``permission_mode`` came from, for messages
    permission_source: str = "autorun config permission_mode"
    max_parallel: Optional[int] = None  # None: from the machine (autorun_py/capacity.py)
    launch_stagger: float = LAUNCH_STAGGER  # seconds between two session starts
    # the merge gate's defaults (a plan's front matter and --verify take precedence)
    verify: Optional[str] = None
    verify_timeout: Optional[float] = None
    verify_attempts: Optional[int] = None
    verify_parallel: Optional[int] = None
    # what runs new runs' stages: a name or caps, "tmux=2,background=4" (autorun_py/launchers)
    launcher: str = "tmux"
    # the remote launcher's defaults (``"remote": {"environment", "git_remote"}``)
    remote_environment: Optional[str] = None
    remote_git_remote: Optional[str] = None

    def model_for(self, phase: str) -> Optional[str]:
        return self.models.get(phase) or self.models.get("default")


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def load_config(environ: Mapping[str, str]) -> Config:
    """``config.json`` under ``$AUTORUN_HOME`` with the ``AUTORUN_*`` variables of
    ``environ`` over it (see the module doc). ``environ`` is the caller's environment,
    read at the CLI edge (issue 12): library functions take the loaded :class:`Config`."""
    path = paths.layout().config_file
    raw: dict[str, Any] = {}
    if path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AutorunError(f"cannot read config: {exc}", path=path) from None
        if not isinstance(loaded, dict):
            raise AutorunError("config must be a JSON object", path=path)
        raw = loaded
    env = environ
    agent = env.get("AUTORUN_CLAUDE") or str(raw.get("agent") or "claude")
    if env.get("AUTORUN_CLAUDE"):
        source = "$AUTORUN_CLAUDE"
    elif raw.get("agent"):
        source = f"`agent` in {path}"
    else:
        source = "the default"
    args = list(raw.get("agent_args") or [])
    if env.get("AUTORUN_AGENT_ARGS"):
        args += shlex.split(env["AUTORUN_AGENT_ARGS"])
    models = {str(k): str(v) for k, v in (raw.get("models") or {}).items()}
    if env.get("AUTORUN_MODEL"):
        models["default"] = env["AUTORUN_MODEL"]
    for key, value in env.items():
        if key.startswith("AUTORUN_MODEL_") and value:
            models[key[len("AUTORUN_MODEL_") :].lower()] = value
    keep = bool(raw.get("keep_sessions", False))
    if env.get("AUTORUN_KEEP_SESSIONS"):  # empty reads as unset
        keep = _truthy(env["AUTORUN_KEEP_SESSIONS"])
    try:
        attempts = int(raw.get("max_launch_attempts", 3))
    except (TypeError, ValueError):
        raise AutorunError("max_launch_attempts must be a number", path=path) from None
    max_parallel = raw.get("max_parallel")
    if max_parallel is not None and (
        not isinstance(max_parallel, int) or isinstance(max_parallel, bool) or max_parallel < 1
    ):
        raise AutorunError(
            f"max_parallel must be a positive number of stages, not {max_parallel!r}", path=path
        )
    stagger_raw: Any = raw.get("launch_stagger", LAUNCH_STAGGER)
    where: Any = path
    if env.get("AUTORUN_LAUNCH_STAGGER"):
        stagger_raw, where = env["AUTORUN_LAUNCH_STAGGER"], "AUTORUN_LAUNCH_STAGGER"
    try:
        stagger = float(stagger_raw)
        if not 0 <= stagger <= 600 or isinstance(stagger_raw, bool):
            raise ValueError
    except (TypeError, ValueError):
        raise AutorunError(
            f"launch_stagger must be a number of seconds from 0 to 600, not {stagger_raw!r}",
            path=where,
        ) from None
    verify = raw.get("verify")
    if verify is not None and not isinstance(verify, str):
        raise AutorunError("verify must be a shell command (a string)", path=path)
    try:
        v_timeout = None if raw.get("verify_timeout") is None else float(raw["verify_timeout"])
        v_attempts = None if raw.get("verify_attempts") is None else int(raw["verify_attempts"])
        v_parallel = None if raw.get("verify_parallel") is None else int(raw["verify_parallel"])
    except (TypeError, ValueError):
        raise AutorunError(
            "verify_timeout, verify_attempts and verify_parallel must be numbers", path=path
        ) from None
    launcher = _launcher_spec(env.get("AUTORUN_LAUNCHER"), raw, path)
    remote = raw.get("remote") if raw.get("remote") is not None else {}
    if not isinstance(remote, dict) or not all(
        isinstance(remote.get(k), (str, type(None))) for k in ("environment", "git_remote")
    ):
        raise AutorunError(
            'remote must be an object {"environment": "ccpool_...", "git_remote": "origin"}',
            path=path,
        )
    return Config(
        remote_environment=remote.get("environment") or None,
        remote_git_remote=remote.get("git_remote") or None,
        verify=verify or None,
        verify_timeout=v_timeout,
        verify_attempts=v_attempts,
        verify_parallel=v_parallel,
        launcher=launcher,
        agent=agent,
        agent_args=tuple(str(a) for a in args),
        permission_mode=env.get("AUTORUN_PERMISSION_MODE") or raw.get("permission_mode"),
        permission_source=(
            "AUTORUN_PERMISSION_MODE"
            if env.get("AUTORUN_PERMISSION_MODE")
            else "autorun config permission_mode"
        ),
        models=models,
        keep_sessions=keep,
        max_launch_attempts=max(1, attempts),
        plugin_dir=env.get("AUTORUN_PLUGIN_DIR") or raw.get("plugin_dir"),
        agent_source=source,
        max_parallel=max_parallel,
        launch_stagger=stagger,
    )


def _launcher_spec(from_env: Optional[str], raw: dict[str, Any], path: Any) -> str:
    """``AUTORUN_LAUNCHER``, else the config's ``launchers`` (``{"tmux": 2,
    "background": 4}``) or ``launcher`` (a name or ``tmux=2,background=4``), as the
    spec text ``--launcher`` takes; one clear error for a bad one."""
    from autorun_py.launchers.spec import NAMES, from_value, spec_text

    if from_env:
        value: Any = from_env
        where: Any = "AUTORUN_LAUNCHER"
    elif raw.get("launchers") is not None:
        value, where = raw["launchers"], path
    else:
        value, where = raw.get("launcher") or "tmux", path
    try:
        return spec_text(from_value(value, "launcher"))
    except AutorunError as exc:
        raise AutorunError(
            f"launcher must be one of {', '.join(NAMES)} (or name=cap,...): {exc}", path=where
        ) from None


def find_agent(config: Config) -> Optional[str]:
    """The agent's executable as a session would find it (PATH lookup, or the path
    given), or None when there is none."""
    agent = config.agent
    if os.sep in agent:
        path = os.path.expanduser(agent)
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    import shutil  # (not at import: issue 16)
    return shutil.which(agent)


def require_agent(config: Config) -> str:
    """The agent's executable; one clear error naming what was looked up when missing."""
    found = find_agent(config)
    if found is None:
        where = "at that path" if os.sep in config.agent else "on PATH"
        raise AutorunError(
            f"the agent {config.agent!r} ({config.agent_source}) was not found {where}, "
            "so no stage session can start; `autorun doctor` says how to install it "
            "(or set AUTORUN_CLAUDE / `agent` in config.json to its path)"
        )
    return found


def agent_argv(
    config: Config,
    prompt: str,
    *,
    phase: str,
    session_id: Optional[str] = None,
    resume: Optional[str] = None,
) -> list[str]:
    """The argv that starts (or resumes) the agent on ``prompt``; never a shell string."""
    argv = [config.agent, *config.agent_args]
    if config.plugin_dir:
        argv += ["--plugin-dir", config.plugin_dir]
    model = config.model_for(phase)
    if model:
        argv += ["--model", model]
    if config.permission_mode:
        argv += ["--permission-mode", config.permission_mode]
    if resume:
        argv += ["--resume", resume]
    elif session_id:
        argv += ["--session-id", session_id]
    if prompt:
        argv.append(prompt)
    return argv
