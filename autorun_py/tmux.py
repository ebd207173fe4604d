"""The one wrapper for tmux subprocess calls.

Argv lists only, never a shell string. When ``AUTORUN_TMUX_SOCKET`` is set every
call is ``tmux -L <socket> ...`` (tests and the demo run on a private server).
Processes run through :mod:`autorun_py.proc`; the tmux binary is looked up once.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from autorun_py import proc
from autorun_py.errors import AutorunError, TmuxError

# Variables the agent needs inside a stage session, even when the tmux server
# was started earlier with another environment.
# IS_SANDBOX: Claude Code's bypassPermissions mode as root (docs/permissions.md).
FORWARD_EXACT = (
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "TERM",
    "SHELL",
    "TMPDIR",
    "IS_SANDBOX",
)
FORWARD_PREFIXES = ("CLAUDE_", "ANTHROPIC_", "AUTORUN_")
# Set in the session environment of every stage session (``new-session -e``):
# the run a session belongs to. autorun kills and types into its own only.
OWNER_VAR = "AUTORUN_ORCH_DIR"


def same_run(a: str, b: str) -> bool:
    return os.path.realpath(a.rstrip("/") or "/") == os.path.realpath(b.rstrip("/") or "/")


def forwarded_env(environ: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for key, value in env.items():
        if key in FORWARD_EXACT or key.startswith(FORWARD_PREFIXES):
            out[key] = value
    return out


def current_pane() -> Optional[str]:
    """The tmux pane this process runs in (``$TMUX_PANE``), if any."""
    return os.environ.get("TMUX_PANE") or None


def pipe_pane_args(target: str, log_file: Path) -> list[str]:
    """The tmux command that appends everything pane ``target`` prints to ``log_file``."""
    return ["pipe-pane", "-o", "-t", target, "cat >> " + shlex.quote(str(log_file))]


def _end_session_cmd(ident: str) -> str:
    """tmux command text that ends session ``ident`` (``$N``) on purpose: renamed
    ``autorun-done-N`` first, which the session-closed hook skips."""
    return f"rename-session -t '{ident}' 'autorun-done-{ident[1:]}' ; kill-session -t '{ident}'"


def _window_args(
    command: Sequence[str], window: Optional[str], env: Optional[Mapping[str, str]]
) -> list[str]:
    """The tail shared by new-session and new-window: name, environment, argv.

    With two or more words tmux execs the command directly; a lone word goes
    through ``sh -c``, so it is shell-quoted to stay one literal word.
    """
    args: list[str] = []
    if window:
        args += ["-n", window]
    for key, value in sorted((env or {}).items()):
        args += ["-e", f"{key}={value}"]
    if command:
        args += ["--", *command] if len(command) > 1 else ["--", shlex.quote(command[0])]
    return args


@dataclass(frozen=True)
class Tmux:
    """A handle on one tmux server (the default one, or ``-L socket``)."""

    socket: Optional[str] = None

    @classmethod
    def from_env(cls) -> Tmux:
        return cls(os.environ.get("AUTORUN_TMUX_SOCKET") or None)

    def shell_prefix(self) -> str:
        """``tmux`` or ``tmux -L <socket>``, for a command shown to a person."""
        return f"tmux -L {shlex.quote(self.socket)}" if self.socket else "tmux"

    def current_session(self) -> Optional[str]:
        """The tmux session this process runs in (``$TMUX``, ``$TMUX_PANE``), if any."""
        if not os.environ.get("TMUX"):
            return None
        args = ["display-message", "-p"]
        pane = current_pane()
        if pane:
            args += ["-t", pane]
        with contextlib.suppress(AutorunError, OSError):
            res = self.run([*args, "#{session_name}"], check=False)
            if res.returncode == 0 and res.stdout.strip():
                return res.stdout.strip()
        return None

    def argv(self, args: Sequence[str]) -> list[str]:
        base = ["tmux"]
        if self.socket:
            base += ["-L", self.socket]
        return base + list(args)

    def run(self, args: Sequence[str], *, check: bool = True) -> proc.Result:
        argv = self.argv(args)
        exe = proc.which("tmux")
        if exe is None:
            raise AutorunError(
                "tmux is not installed "
                "(Debian/Ubuntu: sudo apt-get install tmux; macOS: brew install tmux)"
            )
        try:
            res = proc.run([exe, *argv[1:]])
        except proc.CommandNotFound as exc:
            raise AutorunError(f"tmux cannot be run: {exc}") from None
        if check and res.returncode != 0:
            raise TmuxError(argv, res.returncode, res.stderr, stdout=res.stdout, what="tmux")
        return res

    def out(self, args: Sequence[str]) -> str:
        return self.run(args).stdout.rstrip("\n")

    # -- sessions ---------------------------------------------------------------
    def has_session(self, name: str) -> bool:
        # "=name" asks for an exact match (tmux otherwise matches prefixes).
        return self.run(["has-session", "-t", f"={name}"], check=False).returncode == 0

    def list_sessions(self) -> list[str]:
        proc = self.run(["list-sessions", "-F", "#{session_name}"], check=False)
        if proc.returncode != 0:
            return []  # no server running: no sessions
        return [line for line in proc.stdout.splitlines() if line]

    def new_session(
        self,
        name: str,
        command: Sequence[str],
        *,
        cwd: Path,
        window: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        width: int = 220,
        height: int = 50,
        after: Sequence[Sequence[str]] = (),
        server_env: Optional[str] = None,
    ) -> str:
        """Start a detached session running ``command`` (an argv list); return its pane id.

        ``after``: tmux commands run right after, in the same tmux call (one tmux
        process for the lot, issue 16); their failure is not the session's (it was
        started when its pane id was printed), and is logged only. ``server_env``:
        the server's global environment as :meth:`probe_session` just read it."""
        args = ["new-session", "-d", "-P", "-F", "#{pane_id}", "-s", name, "-c", str(cwd)]
        args += ["-x", str(width), "-y", str(height)]
        args += _window_args(command, window, self._without_stale(env, server_env))
        if not after:
            return self.out(args)
        for more in after:
            args += [";", *more]
        res = self.run(args, check=False)
        pane = res.stdout.strip().splitlines()[0] if res.stdout.strip() else ""
        if not pane.startswith("%"):  # the session did not start
            raise TmuxError(
                self.argv(args), res.returncode or 1, res.stderr, stdout=res.stdout, what="tmux"
            )
        if res.returncode != 0:
            proc.debug(f"tmux: a command after new-session failed: {res.stderr.strip()}")
        return pane

    def probe_session(self, name: str) -> tuple[bool, str]:
        """Whether session ``name`` exists, and the server's global environment (``""``
        when no server runs), in one tmux call."""
        args = ["show-environment", "-g", ";", "has-session", "-t", f"={name}"]
        res = self.run(args, check=False)
        return res.returncode == 0, res.stdout

    def _without_stale(
        self, env: Optional[Mapping[str, str]], server_env: Optional[str] = None
    ) -> Optional[Mapping[str, str]]:
        """``env``, plus an empty value (autorun reads empty as unset) for each
        ``AUTORUN_*`` variable that the running server's global environment holds but
        ``env`` does not: a server that outlived the command that started it must not
        hand a new session the settings of back then. ``server_env``: that
        environment as read already (else it is read now)."""
        if env is None:
            return None
        if server_env is None:
            proc = self.run(["show-environment", "-g"], check=False)
            if proc.returncode != 0:
                return env  # no server yet: it starts with this environment
            server_env = proc.stdout
        stale = {}
        for line in server_env.splitlines():
            key, sep, _ = line.partition("=")
            if sep and key.startswith("AUTORUN_") and key not in env:
                stale[key] = ""
        return {**stale, **env} if stale else env

    def new_window(
        self,
        session: str,
        command: Sequence[str],
        *,
        cwd: Path,
        window: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
    ) -> str:
        args = ["new-window", "-d", "-P", "-F", "#{pane_id}", "-t", f"={session}:", "-c", str(cwd)]
        return self.out(args + _window_args(command, window, self._without_stale(env)))

    def kill_session(self, name: str) -> bool:
        return self.run(["kill-session", "-t", f"={name}"], check=False).returncode == 0

    # -- ownership: a run touches only the sessions it started ------------------
    def session_owner(self, target: str) -> Optional[str]:
        """The ``AUTORUN_ORCH_DIR`` of a session (a name, or a pane id ``%N``),
        as autorun set it with ``new-session -e``; None when unset or no such
        session."""
        tgt = target if target.startswith(("%", "=", "$", "@")) else f"={target}"
        proc = self.run(["show-environment", "-t", tgt, OWNER_VAR], check=False)
        line = proc.stdout.strip()
        if proc.returncode != 0 or not line.startswith(OWNER_VAR + "="):
            return None
        return line[len(OWNER_VAR) + 1 :]

    def owned_by(self, target: str, orch_dir: str) -> bool:
        """True when the session of ``target`` was started by the run ``orch_dir``."""
        owner = self.session_owner(target)
        return owner is not None and same_run(owner, orch_dir)

    def kill_owned_session(self, name: str, orch_dir: str) -> bool:
        """Kill the session only if it belongs to ``orch_dir``'s run; True when killed."""
        if not self.owned_by(name, orch_dir):
            return False
        return self.kill_session(name)

    def require_free_or_owned(self, name: str, orch_dir: str) -> None:
        """Refuse (AutorunError) when a session ``name`` exists that is not this run's."""
        if self.has_session(name) and not self.owned_by(name, orch_dir):
            owner = self.session_owner(name)
            whose = f"run {owner}" if owner else "no autorun run (yours?)"
            raise AutorunError(
                f"tmux session {name} already exists and belongs to {whose}; "
                "autorun leaves it alone (rename or end it to let this stage start)"
            )

    # -- probes: is a session alive, which pane to read -------------------------
    def session_alive(self, name: Optional[str], owner: Optional[str] = None) -> bool:
        """The session exists and has a pane whose process still runs (and, with
        ``owner``, belongs to that run: a same-named session of another run is not ours)."""
        if not name or not self.has_session(name):
            return False
        if owner is not None and not self.owned_by(name, owner):
            return False
        return any(p.get("dead") != "1" for p in self.list_panes(name))

    def live_pane(self, name: str, owner: Optional[str] = None) -> Optional[str]:
        """The newest live pane of a session (a chained step opens a later window);
        None when, with ``owner``, the session is not that run's."""
        if owner is not None and not self.owned_by(name, owner):
            return None
        best: Optional[tuple[int, str]] = None
        for p in self.list_panes(name):
            if p.get("dead") == "1":
                continue
            pid = p.get("pane_id", "")
            try:
                num = int(pid.lstrip("%"))
            except ValueError:
                continue
            if best is None or num > best[0]:
                best = (num, pid)
        return best[1] if best else None

    def end_session(self, name: str) -> bool:
        """Kill the session ``name`` as one ended on purpose (renamed
        ``autorun-done-N`` first: the session-closed hook starts no recovery for
        it); True when killed."""
        tgt = name if name.startswith(("%", "$", "@")) else f"={name}:"
        res = self.run(["display-message", "-p", "-t", tgt, "#{session_id}"], check=False)
        ident = res.stdout.strip()
        if res.returncode != 0 or not re.fullmatch(r"\$[0-9]+", ident):
            return False
        return self.run(["run-shell", "-C", _end_session_cmd(ident)], check=False).returncode == 0

    def kill_pane(self, target: str) -> bool:
        return self.run(["kill-pane", "-t", target], check=False).returncode == 0

    def kill_later(
        self,
        target: str,
        delay: float,
        *,
        session: bool,
        owner: Optional[str],
        before: Sequence[str] = (),
    ) -> bool:
        """Have the tmux server itself kill the pane (or, ``session``, the session)
        ``target`` after ``delay`` seconds (``run-shell -b -d -C``: no process
        waits for it). The target is resolved to its id and its owner checked now;
        a server never reuses an id, so the kill hits that very pane or session or
        nothing. A session is renamed ``autorun-done-N`` first: the session-closed
        hook (:func:`autorun_py.launchers.tmux_launcher.watch_session_close`) knows
        it was ended on purpose. True when scheduled; False when the target is gone or not
        ``owner``'s (nothing is killed then).

        ``before``: a tmux command run first in any case (in the same call as the
        scheduling when there is one: one tmux process fewer, issue 16); its failure
        is not this one's."""
        tgt = target if target.startswith(("%", "=", "$", "@")) else f"={target}"
        if session and tgt.startswith("="):
            tgt += ":"
        fmt = "#{session_id}" if session else "#{pane_id}"
        args = ["display-message", "-p", "-t", tgt, fmt]
        if owner is not None:  # the id and its session's owner in one call
            args += [";", "show-environment", "-t", tgt, OWNER_VAR]
        lines = self.run(args, check=False).stdout.splitlines() + ["", ""]
        ident = lines[0].strip()
        mine = re.fullmatch(r"[$%][0-9]+", ident) is not None
        if mine and owner is not None:
            key, _, value = lines[1].partition("=")
            mine = key == OWNER_VAR and same_run(value, owner)
        if not mine:
            if before:
                self.run(list(before), check=False)
            return False
        cmd = _end_session_cmd(ident) if session else f"kill-pane -t '{ident}'"
        schedule = ["run-shell", "-b", "-d", f"{max(0.0, delay):g}", "-C", cmd]
        if before:
            if self.run([*before, ";", *schedule], check=False).returncode == 0:
                return True
            # `before` failed, so the scheduling did not run: on its own now
        return self.run(schedule, check=False).returncode == 0

    def kill_server(self) -> None:
        """Kill the server; a private one's (``-L``) socket file goes with it."""
        where = ""
        if self.socket:
            probe = self.run(["display-message", "-p", "#{socket_path}"], check=False)
            where = probe.stdout.strip() if probe.returncode == 0 else ""
        self.run(["kill-server"], check=False)
        if where and self.socket:
            from autorun_py import worktrees

            with contextlib.suppress(AutorunError, OSError):
                worktrees.remove_tmux_socket(Path(where), self.socket)

    def pipe_pane(self, target: str, log_file: Path) -> None:
        """Append everything the pane prints to ``log_file`` (argv-quoted for tmux's shell)."""
        self.run(pipe_pane_args(target, log_file))

    def capture_pane(self, target: str, *, lines: int = 200) -> str:
        return self.out(["capture-pane", "-p", "-J", "-t", target, "-S", f"-{lines}"])

    def send_keys(self, target: str, text: str, *, enter: bool = True) -> None:
        self.run(["send-keys", "-t", target, "-l", "--", text])
        if enter:
            self.run(["send-keys", "-t", target, "Enter"])

    def display_message(self, target: Optional[str], message: str) -> None:
        args = ["display-message"]
        if target:
            args += ["-t", target]
        self.run([*args, message], check=False)

    def list_panes(self, session: str) -> list[dict[str, str]]:
        fmt = "#{pane_id}\t#{window_name}\t#{pane_dead}\t#{pane_current_path}\t#{pane_pid}"
        proc = self.run(["list-panes", "-s", "-t", f"={session}", "-F", fmt], check=False)
        if proc.returncode != 0:
            return []
        panes = []
        for line in proc.stdout.splitlines():
            pid, win, dead, path, ppid = (line.split("\t") + [""] * 5)[:5]
            panes.append({"pane_id": pid, "window": win, "dead": dead, "path": path, "pid": ppid})
        return panes
