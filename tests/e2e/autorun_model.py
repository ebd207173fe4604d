"""A scripted model that plays every Claude Code session of an autorun run.

One :class:`AutorunModel` is the fake API's script for a whole run: the
orchestrating ``claude -p "/autorun:orchestrate ..."`` session, each stage's
``/autorun:start <context>`` session and each ``/autorun:merge`` window. It is
stateless: every reply is decided from what the request shows, the way a model
would read it:

- which command the session runs (``<command-name>`` in the first user turn);
- the command's own text (``R`` below means ``"<plugin>/scripts/autorun" --data-dir
  "<data>"``: the fake calls the engine exactly as the command tells the model);
- the output of the command's ``!`` lines (the stage's worktree and name; a
  merge's result, its merge worktree and conflicted files);
- the tool results so far (the step reached; a failed step stops the session).

It never looks at stage numbers: the work for a stage comes from its name.
Whatever goes wrong is collected in :attr:`AutorunModel.problems` (a test asserts
it is empty), and the session is told to stop.
"""

from __future__ import annotations

import re
import shlex
import threading
from dataclasses import dataclass, field
from typing import Callable, Optional

from .fake_anthropic import Block, MessagesRequest, Reply, _flatten, bash, text

ORCHESTRATE = "<command-name>/autorun:orchestrate</command-name>"
START = "<command-name>/autorun:start</command-name>"
MERGE = "<command-name>/autorun:merge</command-name>"

# What the model says when a session is done (tests may look for them on screen).
LAUNCHED_REPLY = "RUN-LAUNCHED: the ready stages are running."
CHAINED_REPLY = "STAGE-DONE: handed over to /autorun:merge."
MERGED_REPLY = "MERGED: the stage is in the base branch; the stages waiting on it started."
RESOLVED_REPLY = "RESOLVED: kept both sides and finished the merge."
NOTIFIED_REPLY = "NOTED."

_R = re.compile(r"`R` means `(.+?)`")


def kebab(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "stage"


@dataclass(frozen=True)
class StageSeen:
    """What a stage session learns from its ``/autorun:start`` output."""

    name: str
    worktree: str
    r: str  # the engine's command line, as the command text spells it


# A stage -> the Bash command doing its work (run in its worktree).
Work = Callable[[StageSeen], str]


def new_file_work(stage: StageSeen) -> str:
    """The default work: a new file named after the stage."""
    rel = f"work/{kebab(stage.name)}.md"
    content = f"# {stage.name}\n\nWritten by the stage session in its worktree.\n"
    return (
        f"mkdir -p work && printf '%s' {shlex.quote(content)} > {shlex.quote(rel)} "
        f"&& echo wrote {shlex.quote(rel)}"
    )


def resolve_both_sides(conflicted: str) -> str:
    """A conflicted file with each conflict replaced by both sides (ours, then theirs;
    a diff3 base section dropped)."""
    out: list[str] = []
    state = "plain"
    for line in conflicted.splitlines(keepends=True):
        if line.startswith("<<<<<<< "):
            state = "ours"
        elif line.startswith("||||||| ") and state == "ours":
            state = "base"
        elif line.rstrip("\n") == "=======" and state in ("ours", "base"):
            state = "theirs"
        elif line.startswith(">>>>>>> ") and state == "theirs":
            state = "plain"
        elif state != "base":
            out.append(line)
    return "".join(out)


# Where each command's own text begins after its ``!`` output (the output comes
# first in these commands).
_BODY_STARTS = {
    START: "You are one stage of an autorun run",
    MERGE: "`R` means",
    ORCHESTRATE: "The engine has already done",
}


def command_output(first: str, command: str) -> str:
    """The output of the ``!`` lines of ``command`` in the first user turn."""
    after = first.split(command, 1)[-1]
    return after.split(_BODY_STARTS[command], 1)[0].strip()


def _field(output: str, label: str) -> Optional[str]:
    m = re.search(rf"^{re.escape(label)}:\s*(.+?)\s*$", output, re.M)
    return m.group(1) if m else None


@dataclass
class AutorunModel:
    work: Work = new_file_work
    commit_message: str = "stage work: {name}"
    problems: list[str] = field(default_factory=list)
    # Every merge result the model was shown (the first request of each
    # /autorun:merge session): proof that its ``!`` line succeeded.
    merges_seen: list[str] = field(default_factory=list)
    # What each stage's chain to the merge answered (the engine merges a stage that
    # needs no judgment right there, and no /autorun:merge session starts).
    chains_seen: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def problem(self, what: str) -> Reply:
        with self._lock:
            self.problems.append(what)
        return f"STOPPING: {what}"

    # -- the script ------------------------------------------------------------
    def __call__(self, req: MessagesRequest) -> Reply:
        if not req.is_main:
            return None  # titles, topics: the fake's default short text
        first = req.first_user_text()
        results = req.pending_tool_results()
        if results and results[-1].get("is_error"):
            kind = "start" if START in first else "merge" if MERGE in first else "session"
            last = req.last_tool_result() or ""
            return self.problem(f"a {kind} tool call failed: {last.strip()[-600:]}")
        if START in first:
            return self.start(req, first)
        if MERGE in first:
            return self.merge(req, first)
        if ORCHESTRATE in first:
            return self.orchestrate(req, first)
        return None

    def orchestrate(self, req: MessagesRequest, first: str) -> Reply:
        if len(req.user_texts()) > 1:
            return NOTIFIED_REPLY  # a monitor notification: relay nothing in a test
        out = command_output(first, ORCHESTRATE)
        if "Orchestration launched:" not in out or "exit status" in out:
            return self.problem(f"orchestrate did not launch the run:\n{out}")
        return LAUNCHED_REPLY

    def _r(self, first: str) -> Optional[str]:
        m = _R.search(first)
        return m.group(1) if m else None

    def start(self, req: MessagesRequest, first: str) -> Reply:
        r = self._r(first)
        out = command_output(first, START)
        worktree = _field(out, "Worktree")
        stage_line = _field(out, "Stage")
        if r is None or worktree is None or stage_line is None or "exit status" in out:
            return self.problem(f"/autorun:start output is not a stage context:\n{out}")
        name = re.sub(r"^\d+:\s*", "", stage_line)
        name = re.sub(r"\s*\([a-z_]+\)$", "", name)
        stage = StageSeen(name=name, worktree=worktree, r=r)
        work = bash(f"cd {shlex.quote(worktree)} && {self.work(stage)}", "do the stage's work")
        # Idempotent, as a model that sees "nothing to commit" goes on: a session
        # recovered after its process died may replay the work it had committed.
        commit = bash(
            f"cd {shlex.quote(worktree)} && git add -A && (git diff --cached --quiet || "
            f"git commit -q -m {shlex.quote(self.commit_message.format(name=name))}) "
            "&& git log --oneline -1",
            "commit",
        )
        chain = bash(f'{r} chain "/autorun:merge" --window merge --close-caller', "chain to merge")
        # The steps the command text asks for: with `R phase` lines (older texts)
        # the model records each phase itself.
        steps: list[Block]
        if "R phase implement started" in first:
            steps = [
                bash(f"{r} phase triage completed", "record triage"),
                bash(f"{r} phase implement started", "record implement start"),
                work,
                commit,
                bash(f"{r} phase implement completed", "record implement end"),
                chain,
            ]
        else:
            steps = [work, commit, chain]
        steps = self.plan_steps(stage, steps)
        done = len(req.tool_results())
        refusal = _stop_feedback(req)
        if refusal is not None:
            return self.on_refusal(stage, refusal, steps, done)
        if done == 0:
            return [text(f"QUICK: one small change for {name}."), steps[0]]
        if done < len(steps):
            nxt = steps[done]
            return nxt if isinstance(nxt, (str, list)) else [nxt]
        last = req.last_tool_result() or ""
        if last and steps and " chain " in str(steps[-1]):
            with self._lock:
                self.chains_seen.append(last)
        if last.startswith("merged by the engine"):
            return MERGED_REPLY
        return CHAINED_REPLY

    # -- hooks for scripted misbehaviour (subclasses) -----------------------------
    def plan_steps(self, stage: StageSeen, steps: list[Block]) -> list[Block]:
        """The steps this model takes (a subclass may drop or replace some)."""
        return steps

    def on_refusal(self, stage: StageSeen, reason: str, steps: list[Block], done: int) -> Reply:
        """The Stop hook refused the stop with ``reason``: do what it says."""
        m = re.search(r"`([^`]*chain \"/autorun:merge\"[^`]*)`", reason)
        if "uncommitted changes" in reason:
            return [
                bash(
                    f"cd {shlex.quote(stage.worktree)} && git add -A && git commit -q -m "
                    f"{shlex.quote(self.commit_message.format(name=stage.name))}",
                    "commit, as the hook says",
                )
            ]
        if "has no commits yet" in reason:
            return [bash(f"cd {shlex.quote(stage.worktree)} && {self.work(stage)}", "the work")]
        if m is not None:
            return [bash(m.group(1), "hand over, as the hook says")]
        return self.problem(f"a Stop refusal not understood: {reason}")

    def merge(self, req: MessagesRequest, first: str) -> Reply:
        r = self._r(first)
        if r is None:
            return self.problem(f"/autorun:merge text has no R line:\n{first[-1500:]}")
        out = command_output(first, MERGE)
        if not req.tool_results():
            with self._lock:
                self.merges_seen.append(out)
        if "exit status 3" not in out:
            if "exit status" in out or "merged into" not in out:
                return self.problem(f"/autorun:merge did not merge:\n{out}")
            return MERGED_REPLY
        mw = _field(out, "Resolve in")
        files = re.findall(r"^\s+conflicted:\s*(.+?)\s*$", out, re.M)
        cont = re.search(r"`autorun merge (\S+) (\d+) --continue`", out)
        if mw is None or not files or cont is None:
            return self.problem(f"conflict output not understood:\n{out}")
        results = _result_texts(req)
        done = len(results)
        # Steps: for each file, cat it then write its resolution; git add; continue.
        if done < 2 * len(files):
            path = f"{mw}/{files[done // 2]}"
            if done % 2 == 0:
                return [text("Conflicts: reading them."), bash(f"cat -- {shlex.quote(path)}")]
            resolved = resolve_both_sides(results[-1])
            if "<<<<<<<" in resolved or resolved == results[-1]:
                return self.problem(f"cannot resolve {path}:\n{results[-1]}")
            doc = "AUTORUN_RESOLVED_EOF"
            return [bash(f"cat > {shlex.quote(path)} <<'{doc}'\n{resolved.rstrip(chr(10))}\n{doc}")]
        steps = [
            # As a model would: cd into the merge worktree (the Bash tool keeps the
            # cwd for later calls), add the files there.
            bash(f"cd {shlex.quote(mw)} && git add -- " + " ".join(shlex.quote(f) for f in files)),
            bash(f"{r} merge {cont.group(1)} {cont.group(2)} --continue", "finish the merge"),
        ]
        i = done - 2 * len(files)
        if i < len(steps):
            return [steps[i]]
        if "merged into" not in results[-1]:
            return self.problem(f"merge --continue did not merge:\n{results[-1]}")
        return RESOLVED_REPLY


def _stop_feedback(req: MessagesRequest) -> Optional[str]:
    """The Stop hook's refusal when it is the newest thing the model was told (Claude
    Code puts it in a system reminder: ``Stop hook feedback:\n<reason>``)."""
    for msg in reversed(req.messages):
        if msg.get("role") == "assistant":
            return None
        content = _flatten(msg.get("content"))
        if "Stop hook feedback:" in content:
            return content.split("Stop hook feedback:", 1)[1].strip()
    return None


def _result_texts(req: MessagesRequest) -> list[str]:
    return [_flatten(b.get("content", "")) for b in req.tool_results()]
