"""A stand-in for the ``claude`` CLI, used by ``autorun demo`` and the tests.

It accepts the arguments autorun passes to Claude Code (``--session-id``,
``--resume``, ``--model``, ``--permission-mode``, ``--plugin-dir``, a prompt)
and does, with real commands, what the real pipeline does for a stage:

``/autorun:start <context>``: what the command texts (``commands/*.md``) ask of
a QUICK stage, with the same engine calls: ``autorun stage start`` (start.md's
inline line), a real commit in the stage's worktree after a short random delay,
then ``autorun chain "/autorun:merge" --window merge --close-caller`` (the engine
records the phases from the hand-off, and merges in place when nothing needs
judgment). ``/autorun:merge [ORCH STAGE]`` (the window the chain opens otherwise,
or a restart on a conflicted merge): ``autorun merge``
(merge.md's inline line), and on exit 5 the fix-and-merge-again loop merge.md
asks for. A ``--resume`` picks the step its conversation was on (the first
prompt in its transcript). Its behaviour can be steered
per stage through ``AUTORUN_STANDIN_*`` variables:

- ``AUTORUN_STANDIN_DELAY``: ``"min-max"`` seconds of "work" (default ``0.2-1.0``)
- ``AUTORUN_STANDIN_FAIL``: comma-separated stages that report failure instead
- ``AUTORUN_STANDIN_FILE``: ``"shared"`` makes every stage edit the same file
  (for conflict scenarios); default: a file per stage
- ``AUTORUN_STANDIN_IDLE``: comma-separated stages that stop at an idle prompt
  (``❯``) and wait for ``continue`` before going on
- ``AUTORUN_STANDIN_LIMIT``: ``"stage:seconds"``: that stage prints a usage-limit
  message with a reset time that many seconds ahead, then waits for ``continue``
- ``AUTORUN_STANDIN_LOG``: append one line per action to this file
- ``AUTORUN_STANDIN_CLAUDECODE``: ``1`` runs its engine calls with ``CLAUDECODE=1``,
  as Claude Code's ``!`` lines and Bash calls do (the merge then leaves the
  worktree to be removed after the session is gone)
- ``AUTORUN_STANDIN_LIMIT_SECONDS``: ``1`` prints the reset time with seconds
  (``3:45:07pm``), so a test need not wait for the next minute
- ``AUTORUN_STANDIN_STUCK``: stages that sit at the idle prompt for good (each
  ``continue`` brings the prompt back)
- ``AUTORUN_STANDIN_REVIEW``: stages that ask a question (``autorun review new
  --stage``) and block in ``autorun review wait`` until it is answered
- ``AUTORUN_STANDIN_CRASH``: stages whose agent exits at once (every start)
- ``AUTORUN_STANDIN_GATE``: a directory; before its work, stage N waits until
  ``<dir>/stage-N`` exists (a test holds stages mid-run with it)
- ``AUTORUN_STANDIN_MERGE_GATE``: the same, after the commit and before the
  hand-off to the merge
- ``AUTORUN_STANDIN_TREE``: a directory; stage N's work is the files under
  ``<dir>/stage-N/`` (copied over its worktree) instead of ``stages/stage-N.md``.
  When the merge gate sends the stage back (``autorun merge`` exit 5), the
  stand-in merges the base branch into its branch, copies ``<dir>/stage-N-fix/``
  over the worktree, commits and merges again; without a fix it merges again
  unchanged until the gate marks the stage failed (its ``verify_attempts``)

Like Claude Code, it appends its conversation to
``~/.claude/projects/<project key>/<session id>.jsonl`` (an assistant line with
token usage per step), so ``--resume <id>`` finds it and the report counts it.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from autorun_py import proc as _proc
from autorun_py.git import run_git


def _numbers(value: str) -> frozenset[int]:
    return frozenset(int(x) for x in value.replace(" ", "").split(",") if x.isdigit())


@dataclass(frozen=True)
class Steering:
    """The ``AUTORUN_STANDIN_*`` variables (module doc), and the session's prepared
    start (``AUTORUN_STAGE_START``, ``AUTORUN_STAGE_WORKTREE``), read once by :func:`main`."""

    delay: str = "0.2-1.0"
    log: Optional[str] = None
    file: str = ""
    tree: Optional[str] = None
    limit: str = ""
    limit_seconds: bool = False
    claudecode: bool = False
    # The session's own (the launch's prepared start, start.md's `!` line): not steering.
    start_file: Optional[str] = None
    start_worktree: Optional[str] = None
    gates: dict[str, str] = field(default_factory=dict)  # "work" / "merge" -> directory
    stages: dict[str, frozenset[int]] = field(default_factory=dict)  # "fail", "idle", ...

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Steering:
        kinds = ("crash", "stuck", "review", "idle", "fail")
        gates = {"work": "AUTORUN_STANDIN_GATE", "merge": "AUTORUN_STANDIN_MERGE_GATE"}
        return cls(
            delay=environ.get("AUTORUN_STANDIN_DELAY", "0.2-1.0"),
            log=environ.get("AUTORUN_STANDIN_LOG") or None,
            file=environ.get("AUTORUN_STANDIN_FILE", ""),
            tree=environ.get("AUTORUN_STANDIN_TREE") or None,
            limit=environ.get("AUTORUN_STANDIN_LIMIT", ""),
            limit_seconds=bool(environ.get("AUTORUN_STANDIN_LIMIT_SECONDS")),
            claudecode=bool(environ.get("AUTORUN_STANDIN_CLAUDECODE")),
            start_file=environ.get("AUTORUN_STAGE_START") or None,
            start_worktree=environ.get("AUTORUN_STAGE_WORKTREE") or None,
            gates={k: environ[v] for k, v in gates.items() if environ.get(v)},
            stages={k: _numbers(environ.get(f"AUTORUN_STANDIN_{k.upper()}", "")) for k in kinds},
        )

    def told(self, kind: str, n: int) -> bool:
        """Whether stage ``n`` is among ``AUTORUN_STANDIN_<KIND>``'s stages."""
        return n in self.stages.get(kind, frozenset())


_STEER: list[Steering] = [Steering()]  # main() puts the environment's in


def _steer() -> Steering:
    return _STEER[0]


def _autorun(*args: str) -> _proc.Result:
    env = None
    if _steer().claudecode:
        env = _proc.child_env({"CLAUDECODE": "1"})  # as Claude Code's shell has it
    return _proc.run([sys.executable, "-m", "autorun_py", *args], env=env)


def _log(message: str) -> None:
    print(message, flush=True)
    path = _steer().log
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{time.time():.3f} {os.getpid()} {message}\n")


def _delay() -> float:
    spec = _steer().delay
    lo, _, hi = spec.partition("-")
    a = float(lo)
    b = float(hi) if hi else a
    return random.uniform(a, b)


def _clear_screen() -> None:
    """Redraw from a clean screen once the prompt is left, as Claude Code's TUI does
    (a prompt no longer in use must not stay in sight)."""
    sys.stdout.write("\x1b[2J\x1b[H")
    sys.stdout.flush()


def _wait_for_continue(prompt: str = "❯ ") -> None:
    """Sit at an idle prompt until someone types ``continue``."""
    while True:
        sys.stdout.write(f"\n{prompt}")
        sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            time.sleep(0.2)
            continue
        if line.strip().lower().startswith("continue"):
            _clear_screen()
            _log("got continue")
            return


def _wait_for_gate(n: int, what: str) -> None:
    gate = _steer().gates.get(what)
    if not gate:
        return
    path = Path(gate) / f"stage-{n}"
    if path.exists():
        return
    _log(f"stage {n} waiting at {what} gate")
    while not path.exists():
        time.sleep(0.05)
    _log(f"stage {n} passed {what} gate")


_SESSION: dict[str, Any] = {"id": None, "turn": 0, "prompt": ""}


def _transcript(step: str, n: int = 0) -> None:
    """Append a user line and an assistant line with usage, as Claude Code does."""
    sid = _SESSION["id"]
    if not sid:
        return
    from autorun_py.transcripts import transcript_path

    cwd = os.getcwd()
    path = transcript_path(cwd, sid)
    path.parent.mkdir(parents=True, exist_ok=True)
    _SESSION["turn"] += 1
    turn = _SESSION["turn"]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    base = {"cwd": cwd, "sessionId": sid, "version": "standin", "timestamp": now + "Z"}
    msg_id = f"msg_standin_{sid[:8]}_{os.getpid()}_{turn}"
    usage = {
        "input_tokens": 100 * n + turn,
        "output_tokens": 10 * n + turn,
        "cache_creation_input_tokens": 1000 + turn,
        "cache_read_input_tokens": 5000 + 10 * turn,
    }
    user: dict[str, Any] = {**base, "type": "user", "message": {"role": "user", "content": step}}
    if turn == 1 and _SESSION.get("prompt"):
        user["prompt"] = _SESSION["prompt"]  # what --resume goes on with
    lines = [
        user,
        {
            **base,
            "type": "assistant",
            "requestId": f"req_{msg_id}",
            "message": {
                "id": msg_id,
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [{"type": "text", "text": f"({step})"}],
                "usage": usage,
            },
        },
    ]
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(line) + "\n" for line in lines))


def _review(orch: str, n: int) -> None:
    """Ask a question about the stage and block until the user answers it."""
    proc = _autorun(
        "review",
        "new",
        "--title",
        f"Stage {n} question",
        "--question",
        "Which way should the stand-in go?",
        "--stage",
        f"{orch}:{n}",
    )
    path = proc.stdout.strip()
    _log(f"stage {n} waiting for review {path}")
    waiter = _proc.start([sys.executable, "-m", "autorun_py", "review", "wait", path, "--no-open"])
    from autorun_py.review import is_stage_waiting

    while waiter.poll() is None and not is_stage_waiting(Path(orch), n):
        time.sleep(0.05)
    sys.stdout.write("\n❯ ")  # looks exactly like an idle prompt while it waits
    sys.stdout.flush()
    code = waiter.wait()
    _clear_screen()
    _log(f"stage {n} review answered (exit {code})")


def _git(cwd: Path, *args: str) -> None:
    run_git(args, cwd)


_SHIM = Path(__file__).resolve().parent.parent / "scripts" / "autorun"


def _start_line() -> Optional[dict[str, Any]]:
    """start.md's ``!`` line as Claude Code runs it (``scripts/autorun --exit-zero
    --args-of start stage start``), when the shim answers it from the launch's
    prepared start (in this session's worktree, not yet taken): the context it
    printed, and the CPU it took (it is the engine's, not the model's). None when it
    would go on to the engine (the stand-in has no prompt hook to hand it the
    arguments: :func:`run_stage` then calls ``autorun stage start`` itself)."""
    import resource

    start, wt = _steer().start_file, _steer().start_worktree
    here = os.path.realpath(os.getcwd())
    if not (start and wt and os.path.isfile(start) and (here + "/").startswith(wt + "/")):
        return None
    if not _SHIM.is_file():
        return None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = _proc.child_env({"CLAUDECODE": "1"}) if _steer().claudecode else None
    out = _proc.run([str(_SHIM), "--exit-zero", "--args-of", "start", "stage", "start"], env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    head = out.stdout.split("\n\n")[0].splitlines()  # the rows before the context file
    rows = {k.strip(): v.strip() for k, sep, v in (line.partition(":") for line in head) if sep}
    number, _, rest = rows.get("Stage", "").partition(": ")
    if out.returncode != 0 or not number.isdigit() or "Worktree" not in rows:
        return None
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {
        "orch_dir": rows.get("Orchestration", ""),
        "stage": int(number),
        "name": rest.rsplit(" (", 1)[0],
        "worktree": rows["Worktree"],
        "start_line_cpu": cpu,
    }


def run_stage(context_file: str) -> int:
    """``/autorun:start``: the QUICK tier of commands/start.md."""
    ctx = _start_line()
    if ctx is None:
        proc = _autorun("stage", "start", context_file, "--json")
        if proc.returncode != 0:
            _log(f"stage start failed: {proc.stderr.strip()}")
            return 1
        ctx = json.loads(proc.stdout)
    assert ctx is not None
    orch, n = ctx["orch_dir"], int(ctx["stage"])
    cpu = ctx.get("start_line_cpu")
    how = f" (start line from the shim: {cpu:.4f} s CPU)" if cpu is not None else ""
    _log(f"stage {n} started in {ctx['worktree']}{how}")
    _transcript("start", n)
    steer = _steer()
    if steer.told("crash", n):
        _log(f"stage {n} crashing")
        return 1
    if steer.told("stuck", n):
        _log("stuck at prompt")
        while True:
            _wait_for_continue()
    if steer.told("review", n):
        _review(orch, n)
    _wait_for_gate(n, "work")
    if steer.told("idle", n):
        _log("idle at prompt")
        _wait_for_continue()
    limit = steer.limit
    if limit.partition(":")[0] == str(n):
        secs = float(limit.partition(":")[2] or 60)
        reset = datetime.datetime.now() + datetime.timedelta(seconds=secs)
        fmt = "%I:%M:%S%p" if steer.limit_seconds else "%I:%M%p"
        hour = reset.strftime(fmt).lstrip("0").lower()
        print(f"Claude usage limit reached. Your limit will reset at {hour}.", flush=True)
        _log(f"usage limit until {hour}")
        _wait_for_continue()
    time.sleep(_delay())
    if steer.told("fail", n):
        _autorun("stage", "fail", orch, str(n), "--reason", "the stand-in was told to fail")
        _log(f"stage {n} reported failure")
        return 0
    wt = Path(ctx["worktree"])
    tree = steer.tree
    if tree and (Path(tree) / f"stage-{n}").is_dir():
        _copy_tree(Path(tree) / f"stage-{n}", wt)
    elif steer.file == "shared":
        target = wt / "shared.txt"
        target.write_text(f"stage {n} was here\n", encoding="utf-8")
    else:
        target = wt / "stages" / f"stage-{n}.md"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"# {ctx['name']}\n\nDone by stage {n}.\n", encoding="utf-8")
    _git(wt, "add", "-A")
    staged = run_git(["diff", "--cached", "--quiet"], wt, check=False)
    if staged.returncode != 0:  # a resumed stage may have committed already
        _git(wt, "commit", "-q", "-m", f"Stage {n}: {ctx['name']}")
    _transcript("implement", n)
    _wait_for_gate(n, "merge")
    _log(f"stage {n} committed; merging")
    # The hand-off of commands/start.md: the engine merges right there (or opens
    # the merge window when the merge needs judgment); this pane is closed by it.
    handed = _autorun("chain", "/autorun:merge", "--window", "merge", "--close-caller")
    _log(f"stage {n} chain exit {handed.returncode}")
    if handed.returncode != 0:
        _log(handed.stderr.strip())
        return handed.returncode
    _idle_until_closed()
    return 0


def run_merge(args: list[str]) -> int:
    """``/autorun:merge [ORCH STAGE]``: commands/merge.md's inline ``autorun merge``,
    and what it asks on exit 5 (fix the branch, merge again)."""
    _transcript("merge")
    merged = _autorun("merge", *args, "--json")
    try:
        rep: dict[str, Any] = json.loads(merged.stdout) if merged.stdout.strip() else {}
    except ValueError:
        rep = {}
    n = int(rep.get("stage") or 0)
    _log(f"stage {n} merge exit {merged.returncode}")
    for _ in range(10):
        if merged.returncode != 5:
            break
        merged = _after_red_gate(str(rep.get("orch_dir")), n, rep, Path.cwd(), merged)
    if merged.returncode not in (0, 3, 4, 5):
        _log(merged.stderr.strip())
    if merged.returncode == 0:
        _idle_until_closed()
    return 0 if merged.returncode in (0, 4) else merged.returncode


def _idle_until_closed(seconds: float = 30.0) -> None:
    """After its hand-off, sit at the prompt as Claude Code does until the engine
    closes the pane (the chain's caller, the merged stage's session); a stand-in
    that exited by itself would close its session before the engine does."""
    sys.stdout.write("\n❯ ")
    sys.stdout.flush()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.2)


def _copy_tree(src: Path, dst: Path) -> None:
    for path in sorted(src.rglob("*")):
        if path.is_file():
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())


def _after_red_gate(
    orch: str, n: int, rep: dict[str, Any], wt: Path, red: _proc.Result
) -> _proc.Result:
    """What the model does on exit 5: read the failure, fix the branch, merge again."""
    try:
        verdict = json.loads(red.stdout).get("verify") or {}
    except ValueError:
        verdict = {}
    tail = [ln for ln in (verdict.get("tail") or "").splitlines() if ln and not ln.startswith("# ")]
    _log(f"stage {n} sent back by the merge gate: {tail[-1] if tail else '?'}")
    print(red.stdout, flush=True)
    if verdict.get("stage_failed"):
        _log(f"stage {n} failed by the merge gate")
        return red
    tree = _steer().tree
    fix = Path(tree) / f"stage-{n}-fix" if tree else None
    if fix is not None and fix.is_dir():
        base = rep.get("base_branch") or "main"
        _git(wt, "-c", "core.hooksPath=/dev/null", "merge", "-q", "--no-edit", base)
        _copy_tree(fix, wt)
        _git(wt, "add", "-A")
        _git(wt, "commit", "-q", "-m", f"Stage {n}: fix what the merge gate found")
        _log(f"stage {n} merged {base} in and fixed its code")
    merged = _autorun("merge", "--json")
    _log(f"stage {n} merge exit {merged.returncode}")
    return merged


def main(argv: Optional[list[str]] = None) -> int:
    _STEER[0] = Steering.from_environ(os.environ)
    args = list(sys.argv[1:] if argv is None else argv)
    prompt = ""
    resume = None
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--session-id", "--model", "--permission-mode", "--plugin-dir"):
            if a == "--session-id" and i + 1 < len(args):
                _SESSION["id"] = args[i + 1]
            i += 2
            continue
        if a == "--resume":
            resume = args[i + 1]
            _SESSION["id"] = resume
            i += 2
            continue
        if not a.startswith("--"):
            prompt = a
        i += 1
    _log(f"stand-in agent: prompt={prompt!r} resume={resume!r}")
    if resume and not prompt.startswith("/"):
        # Resuming a conversation: go on with the step it was started on.
        first = _first_prompt()
        if first.startswith("/autorun:merge"):
            return run_merge([])
        proc = _autorun("context", "--json")
        if proc.returncode == 0:
            ctx = json.loads(proc.stdout)
            return run_stage(ctx["context_file"])
    _SESSION["prompt"] = prompt
    if prompt.startswith("/autorun:start "):
        return run_stage(prompt[len("/autorun:start ") :].strip())
    if prompt == "/autorun:merge" or prompt.startswith("/autorun:merge "):
        return run_merge(prompt.split()[1:3])
    _log("nothing to do")
    return 0


def _first_prompt() -> str:
    """The prompt the resumed conversation began with (its first user line)."""
    sid = _SESSION["id"]
    if not sid:
        return ""
    from autorun_py.transcripts import transcript_path

    try:
        with open(transcript_path(os.getcwd(), sid), encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                if rec.get("type") == "user":
                    return str(rec.get("prompt") or rec.get("message", {}).get("content") or "")
    except (OSError, ValueError):
        pass
    return ""


if __name__ == "__main__":
    sys.exit(main())
