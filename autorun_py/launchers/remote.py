"""The ``remote`` launcher: each stage as a Claude Code cloud session on the
user's self-hosted environment (the scale-out engine, docs/scale-out.md).

What it relies on, observed with Claude Code 2.1.332 (docs/claude-code.md,
"Cloud sessions"; ``tests/e2e/test_claude_flags.py`` checks the flags):

- ``claude -p "<prompt>" --environment <ccpool_...> --ref <branch> --name <name>
  --output-format json`` creates a cloud session on that environment and prints
  one JSON object. ``--ref`` is accepted but hidden from ``--help``. Without a
  claude.ai login it prints ``{"ok":false,"error":...}`` and exits 1; the
  success object could not be seen here: autorun reads the session id from
  ``session_id`` (the field ``--cloud``'s own answer carries), ``sessionId`` or
  ``id``, and the URL from ``url`` (else ``https://claude.ai/code/<id>``, a form
  ``--cloud`` accepts).
- ``claude -p "<message>" --cloud <session id>`` sends the session a message (an
  id is ``session_...`` or ``cse_...``). The CLI has no command to ask a cloud
  session's state or to stop one: liveness is "started and not stopped"; a stop
  is a message (:data:`STOP_MESSAGE`).

The session cannot call the local engine, so its prompt is self-contained
(:func:`stage_prompt`) and everything comes back through git: autorun pushes the
stage's branch ``autorun/<run>/...`` to ``remote.git_remote`` from the tip that
holds its dependencies; the session commits there, asks questions by committing
``.autorun/questions/<name>.md`` and finishes with a completion commit carrying
the trailer ``Autorun-Stage: <run>/<n>``, then pushes. :func:`autorun_py.launchers.
remote_poll.poll_run` (called by the monitor each check, through
:func:`autorun_py.launchers.poll`) fetches
each remote stage's branch, files new questions in the review inbox, sends
answers back with ``--cloud``, and sends a completed stage through the same merge
gate as a local stage (:func:`autorun_py.merge.merge`).

This module is the one wrapper for those ``claude`` calls (argv lists only,
never a shell) and for autorun's git calls towards the remote, with the launcher
that uses them; it is a little over 500 lines because the settings, the prompt
and those calls change together when Claude Code's cloud sessions do.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from autorun_py import git, proc
from autorun_py.errors import AutorunError
from autorun_py.launchers import Started

# A stage's merge through the gate (autorun_py.merge.merge: orch_dir, stage number ->
# its report), passed in by the caller above merge, so the launchers stay below it.
MergeFn = Callable[[Path, int], Any]

NAME = "remote"
# The flags this launcher passes (tests/e2e/test_claude_flags.py checks each in
# the installed CLI's --help); HIDDEN_FLAGS are accepted but not listed.
CLI_FLAGS = ("--print", "--environment", "--cloud", "--name", "--output-format")
HIDDEN_FLAGS = ("--ref",)
TRAILER = "Autorun-Stage"
QUESTION_DIR = ".autorun/questions"
STOP_MESSAGE = (
    "autorun: stop. This stage was cancelled on the user's machine: stop working now, "
    "push nothing more, and end the session."
)
ENV_PREFIX = "ccpool_"
ADOPTED = "adopted-"  # the handle of a session found by its pushes, not by its id
SESSION_ID = re.compile(r"^(?:session|cse)_[A-Za-z0-9_-]+$")
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0"}  # never wait for a password on a terminal


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class RemoteSettings:
    """``remote.environment`` (the self-hosted environment's id) and
    ``remote.git_remote`` (the git remote the sessions' branches live on)."""

    environment: str
    git_remote: str = "origin"

    def to_raw(self) -> dict[str, str]:
        return {"environment": self.environment, "git_remote": self.git_remote}


def check_environment(value: str, where: str) -> str:
    value = value.strip()
    if not value.startswith(ENV_PREFIX) or len(value) <= len(ENV_PREFIX) or " " in value:
        raise AutorunError(
            f"{where}: remote.environment must be a self-hosted environment id "
            f"({ENV_PREFIX}...), not {value!r}"
        )
    return value


def resolve_settings(
    *,
    command_line_environment: Optional[str] = None,
    command_line_git_remote: Optional[str] = None,
    front_matter: Optional[dict[str, str]] = None,
    plan_path: Optional[Path] = None,
    config: Any = None,
) -> RemoteSettings:
    """The run's remote settings: command line over plan front matter
    (``remote.environment:``, ``remote.git_remote:``) over ``config.json``'s
    ``"remote": {"environment", "git_remote"}``. One clear line when none names an
    environment."""
    front = dict(front_matter or {})
    plan_where = str(plan_path or "plan")
    env_value: Optional[str] = None
    where = ""
    for value, src in (
        (command_line_environment, "--remote-environment"),
        (front.get("remote.environment"), f"{plan_where}: remote.environment (front matter)"),
        (getattr(config, "remote_environment", None), "remote.environment in config.json"),
    ):
        if value:
            env_value, where = str(value), src
            break
    if not env_value:
        raise AutorunError(
            "the remote launcher needs a self-hosted environment: --remote-environment "
            "ccpool_..., `remote.environment: ccpool_...` in the plan's front matter, or "
            '"remote": {"environment": "ccpool_..."} in config.json (docs/scale-out.md)'
        )
    environment = check_environment(env_value, where)
    remote = "origin"
    for value in (
        command_line_git_remote,
        front.get("remote.git_remote"),
        getattr(config, "remote_git_remote", None),
    ):
        if value:
            remote = str(value).strip()
            break
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$", remote):
        raise AutorunError(f"remote.git_remote: {remote!r} is not a git remote name")
    return RemoteSettings(environment, remote)


def check_git_remote(repo: Path, settings: RemoteSettings) -> None:
    """Refuse a run whose git remote the repository does not have."""
    res = git.run_git(["remote", "get-url", settings.git_remote], repo, check=False)
    if not res.ok or not res.stdout.strip():
        raise AutorunError(
            f"remote.git_remote: {repo} has no git remote {settings.git_remote!r} "
            f"(`git remote -v` lists them); the remote launcher pushes the stages' branches "
            "there; no run was created"
        )


def settings_of(state: Any) -> RemoteSettings:
    raw = state.extra.get("remote") if hasattr(state, "extra") else None
    if not isinstance(raw, dict) or not isinstance(raw.get("environment"), str):
        raise AutorunError(
            f"{Path(state.orch_dir) / 'status.json'}: remote: no remote.environment recorded "
            "for this run's remote stages"
        )
    remote = raw.get("git_remote")
    return RemoteSettings(raw["environment"], remote if isinstance(remote, str) else "origin")


def stage_launcher(state: Any, stage: Any) -> str:
    """The launcher of one stage: its own (a run mixing launchers) or the run's."""
    from autorun_py.launchers import stage_launcher_name

    return stage_launcher_name(state, stage)


def _list(value: Any) -> list[str]:
    """A list of strings from status.json (anything else: empty; never a traceback)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return (
        {k: v for k, v in value.items() if isinstance(v, dict)} if isinstance(value, dict) else {}
    )


def run_of(state: Any) -> str:
    return Path(state.orch_dir).name


def trailer_value(state: Any, stage: Any) -> str:
    return f"{run_of(state)}/{stage.number}"


# --------------------------------------------------------------------------- claude


def _agent() -> str:
    """The agent executable, as the environment the agent is started with (the
    process wrapper's ``claude_env``) names it over ``config.json``: the launcher's
    calls (start, stop, message) have no configuration passed to them."""
    from autorun_py.config import load_config, require_agent
    from autorun_py.launchers.background import claude_env

    return require_agent(load_config(claude_env()))


def run_claude(args: list[str], *, cwd: Optional[Path] = None, timeout: float = 120) -> proc.Result:
    from autorun_py.launchers.background import claude_env

    try:
        return proc.run([_agent(), *args], cwd=cwd, env=claude_env(), timeout=timeout)
    except AutorunError as exc:
        raise AutorunError(f"`claude {' '.join(args[:1])} ... ` failed: {exc}") from None


def _json_object(text: str) -> Optional[dict[str, Any]]:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                data = json.loads(line)
                if isinstance(data, dict):
                    return data
    return None


def parse_created(result: proc.Result) -> tuple[str, str]:
    """The session id and URL from ``-p --environment ... --output-format json``."""
    data = _json_object(result.stdout)
    if result.returncode != 0 or data is None or data.get("ok") is False:
        error = (data or {}).get("error") or result.stderr.strip() or result.stdout.strip()
        raise AutorunError(
            f"`claude -p --environment` did not create a cloud session "
            f"(exit {result.returncode}): {str(error)[-300:]}"
        )
    sid = next(
        (
            str(data[k])
            for k in ("session_id", "sessionId", "id")
            if isinstance(data.get(k), str) and SESSION_ID.match(data[k])
        ),
        None,
    )
    url = data.get("url") if isinstance(data.get("url"), str) else None
    if sid is None and url:
        m = re.search(r"/code/((?:session|cse)_[A-Za-z0-9_-]+)", url)
        sid = m.group(1) if m else None
    if sid is None:
        raise AutorunError(
            "`claude -p --environment --output-format json` printed no session id: "
            + result.stdout.strip()[-300:]
        )
    return sid, url or f"https://claude.ai/code/{sid}"


def send_message(session_id: str, message: str, *, cwd: Optional[Path] = None) -> None:
    """``claude -p "<message>" --cloud <session id>``; raise when it was refused."""
    if not SESSION_ID.match(session_id):
        raise AutorunError(f"{session_id!r} is not a cloud session id")
    res = run_claude(["-p", message, "--cloud", session_id, "--output-format", "json"], cwd=cwd)
    data = _json_object(res.stdout)
    if res.returncode != 0 or (data is not None and data.get("ok") is False):
        error = (data or {}).get("error") or res.stderr.strip()
        raise AutorunError(f"`claude --cloud {session_id}` refused the message: {error}"[-400:])


# --------------------------------------------------------------------------- prompt


def _section(text: str, name: str) -> str:
    m = re.search(rf"^## {name}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    return m.group(1).strip() if m else ""


def stage_prompt(state: Any, stage: Any, settings: RemoteSettings) -> str:
    """The self-contained prompt of a remote stage (the session cannot call the
    local engine). Only the plan's own text, names and branches: no secret."""
    try:
        context = Path(stage.context_file).read_text(encoding="utf-8")
    except OSError:
        context = ""
    scope = _section(context, "Scope") or f"Stage {stage.number}: {stage.name}"
    deps = [
        f"- Stage {d} ({state.stages[d].name}): merged already; its work is in the branch "
        "you start from"
        for d in stage.depends_on
        if d in state.stages
    ]
    branch = stage.branch
    trailer = f"{TRAILER}: {trailer_value(state, stage)}"
    return "\n".join(
        [
            f"You are stage {stage.number} ({stage.name}) of the autorun run {run_of(state)} "
            f"(plan: {state.plan_name}), running as a cloud session. You cannot reach autorun "
            "on the user's machine: everything you need is in this message.",
            "",
            "## Branch",
            f"You start on the branch `{branch}`, which autorun pushed to the project's git "
            "remote from the tip that holds this stage's dependencies. Commit only on it and "
            f"push only to it: `git push origin HEAD:refs/heads/{branch}`. Never push another "
            "branch, never open a pull request, never merge: autorun merges the stage once "
            "the project's checks pass.",
            "",
            "## Scope",
            scope,
            "",
            "## Dependencies",
            "\n".join(deps) if deps else "None.",
            "",
            "## What to commit",
            "Commit your work on the branch in small commits with clear messages. Never commit "
            "secrets, tokens or credentials.",
            "",
            "## Asking a question",
            f"Commit a file `{QUESTION_DIR}/<short-name>.md`: its first line `# <title>`, one "
            "line `- <question>` per question, then any context, and push. It reaches the "
            "user's review inbox; the answers come back to this session as a message. Wait for "
            f"them. Remove the question files (`git rm -r {QUESTION_DIR}`) before you finish.",
            "",
            "## Finishing",
            "When the scope is done, make a completion commit (`git commit --allow-empty` if "
            "nothing is left to add) whose message ends with the trailer line",
            "",
            f"    {trailer}",
            "",
            f"and push it to `{branch}`. Then stop. autorun fetches the branch, runs the "
            "project's checks and merges it. If the checks fail you get a message with what "
            "failed: fix it, commit, make a new completion commit with the same trailer and "
            "push again.",
            "",
            'A message starting with "autorun: stop" means the stage was cancelled: stop at '
            "once and push nothing more.",
        ]
    )


# --------------------------------------------------------------------------- git


def _git(args: list[str], cwd: Path, *, check: bool = True) -> git.GitResult:
    return git.run_git(args, cwd, check=check, env=GIT_ENV)


def remote_tip(repo: Path, settings: RemoteSettings, branch: str) -> Optional[str]:
    """The commit ``branch`` points to on the git remote (None: no such branch)."""
    res = _git(["ls-remote", settings.git_remote, f"refs/heads/{branch}"], repo, check=False)
    if not res.ok:
        raise AutorunError(
            f"git ls-remote {settings.git_remote} failed: {res.stderr.strip()[-300:]}"
        )
    for line in res.stdout.splitlines():
        sha, _, ref = line.partition("\t")
        if ref == f"refs/heads/{branch}":
            return sha
    return None


def push_branch(repo: Path, settings: RemoteSettings, branch: str, commit: str) -> None:
    """Push ``commit`` as ``branch`` to the remote (never forced). A branch already
    there that holds ``commit`` (a session's work after a restart) is kept."""
    res = _git(["push", "--quiet", settings.git_remote, f"{commit}:refs/heads/{branch}"], repo,
               check=False)  # fmt: skip
    if res.ok:
        return
    tip = remote_tip(repo, settings, branch)
    if tip is not None:
        _git(["fetch", "--quiet", "--no-tags", settings.git_remote, f"refs/heads/{branch}"],
             repo, check=False)  # fmt: skip
        if git.is_ancestor(commit, tip, repo):
            return
    raise AutorunError(
        f"git push {settings.git_remote} {branch} failed: {res.stderr.strip()[-300:]}"
    )


def delete_remote_branch(state: Any, stage: Any) -> list[str]:
    """Delete the stage's branches on the git remote: only ``autorun/<run>/...``
    branches this run pushed for it (``remote_branches``); return those deleted."""
    from autorun_py.worktrees import is_own_branch

    settings = settings_of(state)
    done = []
    for branch in _list(stage.extra.get("remote_branches")):
        if not is_own_branch(branch, state.orch_dir):
            continue
        res = _git(["push", "--quiet", settings.git_remote, "--delete", f"refs/heads/{branch}"],
                   Path(state.project_root), check=False)  # fmt: skip
        if res.ok:
            done.append(branch)
    return done


def clean_remote_branches(state: Any) -> tuple[list[str], list[str]]:
    """``autorun clean``: the run's branches still on the git remote (one
    ``ls-remote``): a merged stage's deleted, a cancelled stage's kept (its session's
    work is only there). Returns (deleted, kept with the reason), as ``remote/branch``."""
    from autorun_py.state import COMPLETED

    if not any(stage_launcher(state, st) == NAME for st in state.stages.values()):
        return [], []
    settings = settings_of(state)
    prefix = f"refs/heads/autorun/{run_of(state)}/"
    res = _git(["ls-remote", settings.git_remote, prefix + "*"], Path(state.project_root),
               check=False)  # fmt: skip
    if not res.ok:
        return [], [f"{settings.git_remote}: not reached ({res.stderr.strip()[-200:]})"]
    there = {
        ln.split("\t", 1)[1][len("refs/heads/") :] for ln in res.stdout.splitlines() if "\t" in ln
    }
    deleted: list[str] = []
    kept: list[str] = []
    for st in state.stages.values():
        mine = [b for b in _list(st.extra.get("remote_branches")) if b in there]
        if not mine:
            continue
        if st.status == COMPLETED:
            gone = delete_remote_branch(state, st)
            deleted += [f"{settings.git_remote}/{b}" for b in gone]
            mine = [b for b in mine if b not in gone]
        kept += [
            f"{settings.git_remote}/{b}: stage {st.number} is {st.status} (its session's work "
            f"is there); `git push {settings.git_remote} --delete {b}` drops it"
            for b in mine
        ]
    return deleted, kept


# --------------------------------------------------------------------------- launcher


def current_id(stage: Any) -> Optional[str]:
    handle = stage.extra.get("launcher_handle")
    return str(handle) if isinstance(handle, str) and SESSION_ID.match(handle) else None


@dataclass
class RemoteLauncher:
    """Stages as Claude Code cloud sessions on the user's environment."""
    name: str = NAME

    def start(
        self,
        state: Any,
        stage: Any,
        argv: list[str],
        *,
        cwd: Path,
        window: str,
        env: dict[str, str],
        log_file: Path,
        replace: bool = False,
    ) -> Started:
        """Push the stage's branch, then create its cloud session (``argv``, the
        local agent's command line, is not used: the session runs elsewhere)."""
        from autorun_py.state import StatusStore

        settings = settings_of(state)
        repo = Path(state.project_root)
        branch = stage.branch
        if not branch:
            raise AutorunError(f"stage {stage.number} has no branch to push")
        tip = git.rev_parse(f"refs/heads/{branch}", repo)  # holds its dependencies
        store = StatusStore(Path(state.orch_dir))
        with store.transaction() as txn:  # intent first: what autorun may delete later
            st = txn.state.stage(stage.number)
            pushed = _list(st.extra.get("remote_branches"))
            st.extra["remote_branches"] = pushed if branch in pushed else [*pushed, branch]
        push_branch(repo, settings, branch, tip)
        if replace:
            there = remote_tip(repo, settings, branch)
            if there is not None and there != tip:
                return self._adopt(state, stage, there)
        prompt = stage_prompt(state, stage, settings)
        name = f"{stage.session or state.project_slug}-{window}"
        created = run_claude(
            ["-p", prompt, "--environment", settings.environment, "--ref", branch,
             "--name", name, "--output-format", "json"],
            cwd=cwd,
        )  # fmt: skip
        sid, url = parse_created(created)
        with store.transaction() as txn:  # at once: a session autorun does not know of
            st = txn.state.stage(stage.number)  # would be started again by a recovery
            from autorun_py.launchers import record_started

            record_started(self, st, Started(sid))
            st.extra["remote_url"] = url
            st.extra["remote_started_from"] = tip
            st.extra.pop("remote_stopped", None)
            txn.emit("remote_session_started", stage=stage.number, session=sid, url=url,
                     branch=branch, environment=settings.environment)  # fmt: skip
        return Started(sid)

    def _adopt(self, state: Any, stage: Any, there: str) -> Started:
        """A recovery of a stage whose start did not record its session, while the
        stage branch on the remote has moved: a session of this stage evidently runs
        (or ran) there. It is adopted, not doubled: its pushes are still read (the
        poll needs no session id); it cannot be sent messages."""
        from autorun_py.state import StatusStore

        with StatusStore(Path(state.orch_dir)).transaction() as txn:
            st = txn.state.stage(stage.number)
            st.extra["remote_adopted"] = there
            txn.emit("remote_session_adopted", stage=stage.number, branch=stage.branch,
                     tip=there)  # fmt: skip
        return Started(f"{ADOPTED}{there[:12]}")

    def alive(self, state: Any, stage: Any) -> bool:
        # The CLI cannot ask a cloud session's state: one started (or adopted) and not
        # stopped counts as running (never a second copy). Without an id the start did
        # not finish: the monitor's recovery starts it.
        handle = str(stage.extra.get("launcher_handle") or "")
        known = current_id(stage) is not None or handle.startswith(ADOPTED)
        return known and not stage.extra.get("remote_stopped")

    def waiting(self, state: Any, stage: Any) -> Optional[str]:
        asked = _dict(stage.extra.get("remote_questions"))
        open_ = [q for q in asked.values() if not q.get("answered")]
        if open_:
            return f"a question in the review inbox: {open_[0].get('review')}"
        return None

    def stop(self, state: Any, stage: Any) -> list[str]:
        from autorun_py.state import StatusStore

        sid = current_id(stage)
        if sid is None or stage.extra.get("remote_stopped"):
            return []
        send_message(sid, STOP_MESSAGE)
        with StatusStore(Path(state.orch_dir)).transaction() as txn:
            txn.state.stage(stage.number).extra["remote_stopped"] = True
        return [sid]

    def attach(self, state: Any, stage: Any) -> Optional[str]:
        url = stage.extra.get("remote_url")
        return str(url) if isinstance(url, str) and url else None

    def kill_target(self, state: Any, stage: Any) -> Optional[str]:
        return None  # a merged stage's session ended with its completion commit
