"""``autorun doctor``: is everything autorun needs here, in a version it can use?

Checks Python, git (>= 2.38, for ``git merge-tree --write-tree``), tmux
(>= 3.0, for ``new-session -e``), the Claude Code CLI (the configured agent),
the engine's Python environment and its dependencies, and ``$AUTORUN_HOME``.
Each check carries the version found and, when something is missing or too
old, the command that installs it on macOS and on Debian/Ubuntu.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Literal, Optional, TypedDict

from autorun_py import __version__, paths
from autorun_py.errors import AutorunError

Status = Literal["ok", "missing", "outdated", "broken", "warning"]

MIN_PYTHON = (3, 9)
MIN_GIT = (2, 38)  # git merge-tree --write-tree
MIN_TMUX = (3, 0)  # new-session/new-window -e VAR=value

# The engine's runtime dependencies (import name, distribution name).
DEPENDENCIES = (
    ("click", "click"),
    ("markdown_it", "markdown-it-py"),
    ("filelock", "filelock"),
    ("watchdog", "watchdog"),
)


@dataclass(frozen=True)
class InstallHint:
    """How to install a missing tool, per platform."""
    macos: str
    debian: str


@dataclass(frozen=True)
class Check:
    """One of `autorun doctor`'s checks and its result."""
    name: str
    status: Status
    required: bool
    version: Optional[str] = None
    path: Optional[str] = None
    detail: str = ""
    install: Optional[InstallHint] = None

    @property
    def failed(self) -> bool:
        return self.required and self.status not in ("ok", "warning")


class InstallHintJSON(TypedDict):
    macos: str
    debian: str


class CheckJSON(TypedDict):
    name: str
    status: str
    required: bool
    version: Optional[str]
    path: Optional[str]
    detail: str
    install: Optional[InstallHintJSON]


class DoctorJSON(TypedDict):
    ok: bool
    autorun_version: str
    checks: list[CheckJSON]


@dataclass(frozen=True)
class DoctorReport:
    """Every check `autorun doctor` made."""
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return not any(c.failed for c in self.checks)

    def to_json(self) -> DoctorJSON:
        return {
            "ok": self.ok,
            "autorun_version": __version__,
            "checks": [
                {
                    "name": c.name,
                    "status": c.status,
                    "required": c.required,
                    "version": c.version,
                    "path": c.path,
                    "detail": c.detail,
                    "install": (
                        None
                        if c.install is None
                        else {"macos": c.install.macos, "debian": c.install.debian}
                    ),
                }
                for c in self.checks
            ],
        }


HINTS = {
    "python": InstallHint(
        macos="brew install python3",
        debian="sudo apt-get install python3 python3-venv",
    ),
    "git": InstallHint(
        macos="brew install git",
        debian=(
            "sudo apt-get install git  (Ubuntu < 23.04: sudo add-apt-repository ppa:git-core/ppa"
            " && sudo apt-get update && sudo apt-get install git)"
        ),
    ),
    "tmux": InstallHint(macos="brew install tmux", debian="sudo apt-get install tmux"),
    "claude": InstallHint(
        macos="brew install node && npm install -g @anthropic-ai/claude-code",
        debian="sudo apt-get install nodejs npm && sudo npm install -g @anthropic-ai/claude-code",
    ),
}

Which = Callable[[str], Optional[str]]


def parse_version(text: str) -> Optional[tuple[int, ...]]:
    """The first dotted number in ``text``: 'git version 2.39.5' -> (2, 39, 5),
    'tmux 3.3a' -> (3, 3), 'tmux next-3.4' -> (3, 4)."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(v) for v in version)


def _version_check(
    name: str,
    found: Optional[str],
    path: Optional[str],
    minimum: tuple[int, ...],
    why: str,
    *,
    required: bool = True,
) -> Check:
    hint = HINTS.get(name)
    if found is None:
        return Check(name, "broken", required, None, path, "did not report a version", hint)
    version = parse_version(found)
    if version is None:
        return Check(name, "warning", required, found, path, "version not recognized", None)
    if version < minimum:
        detail = f"needs >= {_dotted(minimum)} ({why})"
        return Check(name, "outdated", required, _dotted(version), path, detail, hint)
    return Check(name, "ok", required, _dotted(version), path, "", None)


def _run_version(argv: list[str], timeout: float = 30) -> Optional[str]:
    from autorun_py.proc import run

    try:
        res = run(argv, timeout=timeout)
    except AutorunError:
        return None
    out = (res.stdout or res.stderr).strip()
    return out.splitlines()[0] if res.returncode == 0 and out else None


def check_python(which: Which, python: str = "python3") -> list[Check]:
    """The interpreter running autorun, and the ``python3`` the shim builds with."""
    running = _dotted(tuple(sys.version_info[:3]))
    checks = [
        _version_check(
            "python", running, sys.executable, MIN_PYTHON, "autorun's engine", required=True
        )
    ]
    chosen = python
    found = which(chosen)
    if found is None:
        checks.append(
            Check(
                "python3",
                "missing",
                True,
                None,
                None,
                f"{chosen} is not on PATH (the plugin's shim builds its environment with it)",
                HINTS["python"],
            )
        )
    else:
        out = _run_version([found, "--version"])
        checks.append(
            _version_check("python3", out, found, MIN_PYTHON, "the plugin's shim", required=True)
        )
    return checks


def check_git(which: Which) -> Check:
    found = which("git")
    if found is None:
        return Check("git", "missing", True, None, None, "not on PATH", HINTS["git"])
    from autorun_py.git import run_git

    try:
        res = run_git(["--version"], Path.cwd() if Path.cwd().exists() else Path("/"), check=False)
        out: Optional[str] = res.stdout.strip() if res.ok else None
    except AutorunError:
        out = None
    return _version_check("git", out, found, MIN_GIT, "git merge-tree --write-tree")


def check_git_identity(which: Which) -> Check:
    """Can git tell who commits here? Every stage commits, and every merge."""
    if which("git") is None:
        return Check("git-identity", "warning", False, None, None, "not checked: no git")
    from autorun_py.git import identity_problem

    cwd = Path.cwd() if Path.cwd().exists() else Path("/")
    try:
        problem = identity_problem(cwd)
    except AutorunError as exc:
        problem = str(exc)
    if problem:
        cmd = (
            'git config --global user.email "you@example.com"; '
            'git config --global user.name "Your Name"'
        )
        return Check(
            "git-identity", "broken", True, None, None, problem, InstallHint(macos=cmd, debian=cmd)
        )
    return Check("git-identity", "ok", True, None, None, "")


def check_tmux(which: Which) -> Check:
    found = which("tmux")
    if found is None:
        return Check("tmux", "missing", True, None, None, "not on PATH", HINTS["tmux"])
    from autorun_py.tmux import Tmux

    try:
        proc = Tmux.from_env().run(["-V"], check=False)
        out: Optional[str] = proc.stdout.strip() if proc.returncode == 0 else None
    except AutorunError:
        out = None
    return _version_check("tmux", out, found, MIN_TMUX, "new-session -e")


def check_claude(which: Which, environ: Mapping[str, str]) -> Check:
    """The agent the engine starts in stage sessions (config ``agent`` or $AUTORUN_CLAUDE)."""
    try:
        from autorun_py.config import load_config

        agent = load_config(environ).agent
    except AutorunError as exc:
        return Check("claude", "broken", True, None, None, f"config: {exc}", None)
    found = which(agent) if os.sep not in agent else (agent if os.access(agent, os.X_OK) else None)
    if found is None:
        detail = f"{agent} is not on PATH (set AUTORUN_CLAUDE or config agent to its path)"
        return Check("claude", "missing", True, None, None, detail, HINTS["claude"])
    out = _run_version([found, "--version"], timeout=60)
    if out is None:
        return Check("claude", "broken", True, None, found, "`--version` failed", HINTS["claude"])
    version = parse_version(out)
    return Check("claude", "ok", True, _dotted(version) if version else out, found, "", None)


def check_environment() -> Check:
    """The interpreter's environment: the plugin's venv (built by scripts/autorun) or
    a development install; every runtime dependency importable."""
    prefix = Path(sys.prefix)
    stamp = prefix / ".autorun-stamp"
    kind = "plugin venv" if stamp.is_file() else "not the plugin's venv"
    if sys.prefix == sys.base_prefix:
        kind = "system interpreter, no venv"
    missing: list[str] = []
    versions: list[str] = []
    for module, dist in DEPENDENCIES:
        try:
            __import__(module)
            versions.append(f"{dist} {metadata.version(dist)}")
        except ImportError:
            missing.append(dist)
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} (version unknown)")
    if missing:
        hint = InstallHint(
            macos="run the plugin's scripts/autorun once (it rebuilds its environment)",
            debian="run the plugin's scripts/autorun once (it rebuilds its environment)",
        )
        detail = f"{kind}; missing: {', '.join(missing)}"
        return Check("environment", "broken", True, None, str(prefix), detail, hint)
    return Check("environment", "ok", True, None, str(prefix), f"{kind}; {', '.join(versions)}")


def check_home() -> Check:
    home = paths.autorun_home()
    probe = home
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if home.exists() and not home.is_dir():
        return Check("AUTORUN_HOME", "broken", True, None, str(home), "exists but is not a folder")
    if not probe.is_dir():
        detail = f"{probe} is a file, not a folder (set AUTORUN_HOME to a folder you can write)"
        return Check("AUTORUN_HOME", "broken", True, None, str(home), detail)
    if not os.access(probe, os.W_OK | os.X_OK):
        detail = f"{probe} is not writable (set AUTORUN_HOME to a folder you can write)"
        return Check("AUTORUN_HOME", "broken", True, None, str(home), detail)
    detail = "exists" if home.exists() else "will be created on first use"
    return Check("AUTORUN_HOME", "ok", True, None, str(home), detail)


def check_permission_mode(environ: Mapping[str, str]) -> Check:
    """Whether unattended stage sessions will stop at permission prompts."""
    from autorun_py.config import load_config
    from autorun_py.permissions import DOCS, check_permissions, is_claude_code, project_root

    try:
        config = load_config(environ)
    except AutorunError as exc:
        return Check("permissions", "broken", False, None, None, f"config: {exc}")
    if not is_claude_code(config):
        return Check(
            "permissions", "ok", False, None, None, f"agent {config.agent} (not Claude Code)"
        )
    cwd = Path.cwd() if Path.cwd().exists() else Path("/")
    check = check_permissions(config, project_root(cwd))
    if check.stops:
        hint = InstallHint(
            macos=f"see {DOCS} (the choices for an unattended run)",
            debian=f"see {DOCS} (the choices for an unattended run)",
        )
        return Check("permissions", "warning", False, check.mode, None, check.detail, hint)
    return Check("permissions", "ok", False, check.mode, None, check.detail)


def check_cli() -> Check:
    """Is ``autorun`` on PATH, and is it this plugin's shim? (Not required: the
    slash commands call the shim by its path.)"""
    from autorun_py.install import cli_status, shim_path

    found, real, ours = cli_status()
    hint = InstallHint(macos=f"{shim_path()} install-cli", debian=f"{shim_path()} install-cli")
    if found is None:
        detail = "not on PATH (the README's `autorun ...` commands need it)"
        return Check("autorun", "warning", False, None, None, detail, hint)
    if not ours:
        detail = f"-> {real}, not this plugin's shim {shim_path()}"
        return Check("autorun", "warning", False, None, found, detail, hint)
    return Check("autorun", "ok", False, None, found, f"-> {real}")


def run_doctor(environ: Mapping[str, str], which: Which = shutil.which) -> DoctorReport:
    """Every check, for a process with the environment ``environ`` (the CLI passes its
    own: ``AUTORUN_PYTHON``, the interpreter the shim builds with; the config's
    ``AUTORUN_*`` variables)."""
    checks: list[Check] = [
        *check_python(which, environ.get("AUTORUN_PYTHON") or "python3"),
        check_git(which),
        check_git_identity(which),
        check_tmux(which),
        check_claude(which, environ),
        check_permission_mode(environ),
        check_cli(),
        check_environment(),
        check_home(),
    ]
    return DoctorReport(tuple(checks))


_LABEL = {
    "ok": "ok",
    "missing": "MISSING",
    "outdated": "TOO OLD",
    "broken": "BROKEN",
    "warning": "warning",
}


def render_text(report: DoctorReport) -> str:
    lines = [f"autorun {__version__} doctor"]
    width = max(len(c.name) for c in report.checks)
    for c in report.checks:
        parts = [f"  {_LABEL[c.status]:<8} {c.name:<{width}}"]
        if c.version:
            parts.append(c.version)
        if c.path:
            parts.append(f"({c.path})")
        if c.detail:
            parts.append(f"- {c.detail}")
        lines.append(" ".join(parts))
        if c.install is not None and c.status != "ok":
            if c.install.macos == c.install.debian:
                lines.append(f"  {'':<8} {'':<{width}} fix: {c.install.macos}")
            else:
                lines.append(f"  {'':<8} {'':<{width}} macOS:         {c.install.macos}")
                lines.append(f"  {'':<8} {'':<{width}} Debian/Ubuntu: {c.install.debian}")
    failed = [c.name for c in report.checks if c.failed]
    lines.append(
        "everything autorun needs is here"
        if not failed
        else f"missing or unusable: {', '.join(failed)}"
    )
    return "\n".join(lines) + "\n"
