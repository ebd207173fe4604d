"""Drive the real Claude Code CLI against the fake Messages API.

- :func:`find_claude`: the binary (``$AUTORUN_TEST_CLAUDE``, else ``<repo>/.node``
  as installed by ``scripts/install-claude-code.sh``), or None.
- :func:`prepare_home`: a HOME in which Claude Code shows no first-run screen
  (onboarding, API-key approval, folder trust, auto-mode offer) and answers no
  permission prompt it was not told to.
- :class:`ClaudeRunner`: the environment (only 127.0.0.1 is ever contacted),
  ``claude -p`` runs, and interactive sessions in a private tmux server
  (:class:`TuiSession`: send keys, wait for screen text).

Everything Claude Code needs to skip its first-run screens is documented in
docs/claude-code.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from .fake_anthropic import FakeAnthropic

REPO = Path(__file__).resolve().parents[2]
FAKE_API_KEY = "sk-ant-api03-autorun-e2e-fake-key-0123456789abcdefghijklmnop"

# Tools a test session may use without being asked (permission mode dontAsk:
# anything else is refused at once instead of waiting at a prompt).
DEFAULT_ALLOW = ["Bash", "Read", "Write", "Edit", "Glob", "Grep"]

# Screens that must never appear in a prepared HOME.
FIRST_RUN_MARKERS = (
    "Choose the text style",  # theme picker (onboarding)
    "Select login method",  # login (onboarding)
    "Unable to connect to Anthropic services",  # onboarding connectivity check
    "Detected a custom API key",  # API-key approval
    "Do you trust the files in this folder",
    "Yes, I trust this folder",  # folder trust
    "Make auto mode your default permission mode",  # auto-mode offer
    "Bypass Permissions mode",  # bypass acceptance
)

# Only 127.0.0.1: no auto-update, telemetry, error reporting, feature flags,
# release notes or survey traffic (checked with strace: with these set, the
# only connect() calls go to the fake API).
QUIET_ENV = {
    "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
}


def find_claude() -> Optional[Path]:
    """The Claude Code binary for tests, or None when it is not installed."""
    env = os.environ.get("AUTORUN_TEST_CLAUDE")
    if env:
        path = Path(env) if os.sep in env else Path(shutil.which(env) or env)
        return path if path.is_file() and os.access(path, os.X_OK) else None
    local = REPO / ".node" / "node_modules" / ".bin" / "claude"
    if local.exists() and os.access(local, os.X_OK):
        return local
    return None


def claude_version(claude: Path) -> str:
    out = subprocess.run([str(claude), "--version"], capture_output=True, text=True, timeout=60)
    return out.stdout.strip().split(" ")[0]


def prepare_home(
    home: Path,
    *,
    trusted: Sequence[Path],
    api_key: str = FAKE_API_KEY,
    allow: Sequence[str] = DEFAULT_ALLOW,
    mode: Optional[str] = "dontAsk",
    settings: Optional[dict[str, Any]] = None,
) -> None:
    """Write ``~/.claude.json`` and ``~/.claude/settings.json`` so that no first-run
    screen appears: onboarding done, the API key's last 20 characters approved,
    the ``trusted`` folders (and everything below them) trusted, the auto-mode
    offer already seen. ``allow``/``mode`` go to ``permissions`` (``mode=None``
    and ``allow=[]`` keep Claude Code's defaults)."""
    home.mkdir(parents=True, exist_ok=True)
    config_path = home / ".claude.json"
    config: dict[str, Any] = {}
    if config_path.exists():
        config = json.loads(config_path.read_text(encoding="utf-8"))
    config["hasCompletedOnboarding"] = True
    config["hasSeenAutoDefaultNudge"] = True
    responses = config.setdefault("customApiKeyResponses", {"approved": [], "rejected": []})
    if api_key[-20:] not in responses.setdefault("approved", []):
        responses["approved"].append(api_key[-20:])
    projects = config.setdefault("projects", {})
    for folder in trusted:
        projects.setdefault(str(Path(folder).resolve()), {})["hasTrustDialogAccepted"] = True
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")

    claude_dir = home / ".claude"
    claude_dir.mkdir(exist_ok=True)
    merged: dict[str, Any] = {}
    permissions: dict[str, Any] = {}
    if allow:
        permissions["allow"] = list(allow)
    if mode:
        permissions["defaultMode"] = mode
    if permissions:
        merged["permissions"] = permissions
    merged.update(settings or {})
    (claude_dir / "settings.json").write_text(json.dumps(merged, indent=2), encoding="utf-8")


def clean_env(base: Optional[dict[str, str]] = None) -> dict[str, str]:
    """``os.environ`` without what would leak from an enclosing Claude Code session
    or tmux (CLAUDE*, ANTHROPIC_*, TMUX*), nor real credentials."""
    env = dict(os.environ if base is None else base)
    for key in list(env):
        if key.startswith(("CLAUDE", "ANTHROPIC_", "TMUX", "AWS_BEARER")) or key in (
            "IS_SANDBOX",
            "AI_AGENT",
        ):
            del env[key]
    return env


@dataclass
class PrintResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class ClaudeRunner:
    """Runs Claude Code with a HOME prepared by :func:`prepare_home` and the fake API."""

    claude: Path
    home: Path
    fake: FakeAnthropic
    extra_env: dict[str, str] = field(default_factory=dict)
    tmux_socket: str = field(default_factory=lambda: f"autorun-e2e-{uuid.uuid4().hex[:10]}")
    sessions: list[TuiSession] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        env = clean_env()
        env.update(QUIET_ENV)
        env["HOME"] = str(self.home)
        env["ANTHROPIC_BASE_URL"] = self.fake.base_url
        env["ANTHROPIC_API_KEY"] = FAKE_API_KEY
        env["TERM"] = "xterm-256color"
        # Stage sessions the engine starts use the same binary.
        env["AUTORUN_CLAUDE"] = str(self.claude)
        env["PATH"] = str(self.claude.parent) + os.pathsep + env.get("PATH", "")
        env.update(self.extra_env)
        env.update(extra)
        return env

    # -- claude -p -----------------------------------------------------------------
    def run_print(
        self,
        prompt: str,
        *args: str,
        cwd: Path,
        plugin_dirs: Sequence[Path] = (),
        timeout: float = 90,
        env: Optional[dict[str, str]] = None,
    ) -> PrintResult:
        argv = [str(self.claude), "-p"]
        for plugin in plugin_dirs:
            argv += ["--plugin-dir", str(plugin)]
        argv += [*args, prompt]
        started = time.monotonic()
        proc = subprocess.run(
            argv,
            cwd=str(cwd),
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return PrintResult(
            argv, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started
        )

    # -- interactive, in tmux --------------------------------------------------------
    def tui(
        self,
        *args: str,
        cwd: Path,
        plugin_dirs: Sequence[Path] = (),
        name: Optional[str] = None,
        width: int = 160,
        height: int = 50,
    ) -> TuiSession:
        """Start ``claude [--plugin-dir D] args...`` in a new session of the private tmux
        server. The pane stays after claude exits (remain-on-exit) so its last screen
        can be read."""
        argv = [str(self.claude)]
        for plugin in plugin_dirs:
            argv += ["--plugin-dir", str(plugin)]
        argv += list(args)
        session = TuiSession(self.tmux_socket, name or f"cc{len(self.sessions)}")
        session.start(argv, cwd=cwd, env=self.env(), width=width, height=height)
        self.sessions.append(session)
        return session

    def close(self) -> None:
        subprocess.run(
            ["tmux", "-L", self.tmux_socket, "kill-server"], capture_output=True, check=False
        )
        # A killed server can leave its socket file behind.
        tmpdir = os.environ.get("TMUX_TMPDIR") or "/tmp"
        Path(tmpdir, f"tmux-{os.getuid()}", self.tmux_socket).unlink(missing_ok=True)


class ScreenTimeout(AssertionError):
    pass


def _matcher(what: Union[str, re.Pattern[str], Callable[[str], bool]]) -> Callable[[str], bool]:
    if isinstance(what, str):
        return lambda screen: what in screen
    if isinstance(what, re.Pattern):
        return lambda screen: what.search(screen) is not None
    return what


@dataclass
class TuiSession:
    socket: str
    name: str

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=check
        )

    def start(
        self, argv: Sequence[str], *, cwd: Path, env: dict[str, str], width: int, height: int
    ) -> None:
        cmd = ["new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height)]
        cmd += ["-c", str(cwd)]
        for key, value in sorted(env.items()):
            cmd += ["-e", f"{key}={value}"]
        # remain-on-exit is set for the new window in the same tmux call, before
        # the command can exit (so an early crash leaves its message readable).
        self.tmux(
            "-f",
            "/dev/null",
            *cmd,
            "--",
            *argv,
            ";",
            "set-option",
            "-w",
            "-t",
            self.name,
            "remain-on-exit",
            "on",
        )

    @property
    def target(self) -> str:
        return f"={self.name}:"

    def screen(self, history: int = 0) -> str:
        """The visible screen (plus ``history`` lines of scroll-back)."""
        args = ["capture-pane", "-p", "-J", "-t", self.target]
        if history:
            args += ["-S", f"-{history}"]
        return self.tmux(*args).stdout

    def is_dead(self) -> bool:
        out = self.tmux("display-message", "-p", "-t", self.target, "#{pane_dead}", check=False)
        return out.stdout.strip() == "1"

    def send(self, text: str, *, enter: bool = True) -> None:
        """Type ``text`` literally, then (after the TUI took it) press Enter."""
        if text:
            self.tmux("send-keys", "-t", self.target, "-l", "--", text)
        if enter:
            time.sleep(0.3)  # a paste followed at once by Enter is taken as a newline
            self.tmux("send-keys", "-t", self.target, "Enter")

    def key(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.target, *keys)

    def wait_for(
        self,
        what: Union[str, re.Pattern[str], Callable[[str], bool]],
        *,
        timeout: float = 30,
        history: int = 200,
        interval: float = 0.2,
    ) -> str:
        """Wait until the screen (with ``history`` lines of scroll-back) shows ``what``;
        return that screen. Fails with the last screen when time runs out or the
        pane died without showing it."""
        test = _matcher(what)
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            last = self.screen(history)
            if test(last):
                return last
            if self.is_dead() or time.monotonic() > deadline:
                state = "pane died" if self.is_dead() else f"{timeout:.0f}s passed"
                raise ScreenTimeout(f"{state} waiting for {what!r}; last screen:\n{last}")
            time.sleep(interval)

    def wait_ready(self, timeout: float = 30) -> str:
        """Wait for the input prompt; fail if any first-run screen shows instead."""

        def ready(s: str) -> bool:
            for marker in FIRST_RUN_MARKERS:
                if marker in s:
                    raise AssertionError(f"first-run screen {marker!r} appeared:\n{s}")
            return "\u276f" in s and ("for shortcuts" in s or "on (shift+tab" in s or "\u2500" in s)

        return self.wait_for(ready, timeout=timeout, history=0)

    def kill(self) -> None:
        self.tmux("kill-session", "-t", self.target, check=False)


def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 30, interval: float = 0.2, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or predicate}")
        time.sleep(interval)


def build_plugin(dest: Path, *, extra_commands: Sequence[Path] = ()) -> Path:
    """A copy of the plugin as Claude Code loads it (manifest, commands, scripts,
    engine source, pyproject) plus ``extra_commands`` (test-only commands), at
    ``dest``. Only committed-looking files: no .venv, .node or caches."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in (".claude-plugin", "commands", "scripts", "autorun_py", "monitors", "hooks"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore, dirs_exist_ok=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, dest / name)
    if extra_commands:
        (dest / "commands").mkdir(exist_ok=True)
        for cmd in extra_commands:
            shutil.copy2(cmd, dest / "commands" / cmd.name)
    return dest
