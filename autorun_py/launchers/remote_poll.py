"""The remote launcher's side of a monitor check: what came back through git.

:func:`poll_run` (called by the monitor each check, through
:func:`autorun_py.launchers.poll`) makes one ``git ls-remote`` for all the run's
remote stages, fetches a stage branch that moved into the stage worktree's own
``FETCH_HEAD``, files committed question files in the review inbox, sends
answers back with ``--cloud``, and sends a completion commit (the trailer
``Autorun-Stage: <run>/<n>``) through the same merge and gate as a local stage.
Starting, stopping and the settings are :mod:`autorun_py.launchers.remote`.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from autorun_py import git
from autorun_py.errors import AutorunError
from autorun_py.launchers.remote import (
    NAME,
    QUESTION_DIR,
    TRAILER,
    MergeFn,
    _dict,
    _git,
    _list,
    current_id,
    delete_remote_branch,
    remote_tip,
    run_of,
    send_message,
    settings_of,
    stage_launcher,
    trailer_value,
)


@dataclass(frozen=True)
class Finding:
    """One thing a monitor check learned of a remote stage through git."""
    stage: int
    kind: str  # completed | merged | merge_result | question | answered | error
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "kind": self.kind, "detail": self.detail}


def _completion(wt: Path, start: str, tip: str, value: str) -> Optional[str]:
    """The newest commit in ``start..tip`` with the trailer ``Autorun-Stage: value``."""
    fmt = f"%H%x1f%(trailers:key={TRAILER},valueonly,separator=%x1f)%x1e"
    out = _git(["log", f"--format={fmt}", f"{start}..{tip}"], wt).stdout
    for record in out.split("\x1e"):
        fields = [f.strip() for f in record.strip().split("\x1f")]
        if len(fields) > 1 and value in fields[1:]:
            return fields[0]
    return None


def _questions(wt: Path, tip: str) -> dict[str, str]:
    """``{path: blob}`` of the question files in ``tip``."""
    out = _git(["ls-tree", "-r", tip, "--", QUESTION_DIR + "/"], wt, check=False).stdout
    found = {}
    for line in out.splitlines():
        meta, _, path = line.partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == "blob" and path.endswith(".md"):
            found[path] = parts[2]
    return found


def parse_question(text: str, path: str) -> tuple[str, list[str], str]:
    title, questions, context = "", [], []
    for line in text.splitlines():
        if not title and line.startswith("# "):
            title = line[2:].strip()
        elif line.startswith("- ") and line[2:].strip():
            questions.append(line[2:].strip())
        elif line.strip():
            context.append(line)
    return title or Path(path).stem, questions or [text.strip() or path], "\n".join(context)


def _file_questions(orch_dir: Path, state: Any, stage: Any, wt: Path, tip: str) -> list[Finding]:
    from autorun_py.review import new_review
    from autorun_py.state import StatusStore

    found = []
    asked = _dict(stage.extra.get("remote_questions"))
    for path, blob in sorted(_questions(wt, tip).items()):
        key = f"{path}@{blob}"
        if key in asked:
            continue
        text = _git(["cat-file", "blob", blob], wt).stdout
        title, questions, context = parse_question(text, path)
        context = (context + "\n\n" if context else "") + (
            f"(asked by the remote session of stage {stage.number}, committed as {path} "
            f"on {stage.branch})"
        )
        review = new_review(title, questions, context, stage=(orch_dir, stage.number))
        with StatusStore(orch_dir).transaction() as txn:
            st = txn.state.stage(stage.number)
            st.extra["remote_questions"] = _dict(st.extra.get("remote_questions"))
            st.extra["remote_questions"][key] = {
                "review": str(review),
                "path": path,
            }
            txn.emit("remote_question", stage=stage.number, path=path, review=str(review))
        found.append(Finding(stage.number, "question", str(review)))
    return found


def _send_answers(orch_dir: Path, state: Any, stage: Any) -> list[Finding]:
    from autorun_py.review import DEFAULT_SETTLE, read_review
    from autorun_py.state import StatusStore

    found = []
    sid = current_id(stage)
    for key, q in sorted(_dict(stage.extra.get("remote_questions")).items()):
        if not isinstance(q, dict) or q.get("answered") or sid is None:
            continue
        try:
            doc = read_review(Path(q["review"]))
        except (AutorunError, OSError, KeyError):
            continue
        if not doc.complete:
            continue
        with contextlib.suppress(OSError):  # still being written: answered at a later look
            if not doc.done and time.time() - Path(q["review"]).stat().st_mtime < DEFAULT_SETTLE:
                continue
        lines = [f"Answers to your question {q.get('path')}:"]
        for a in doc.answers:
            lines += [f"Q: {a.question}", f"A: {a.answer}"]
        send_message(sid, "\n".join(lines))
        with StatusStore(orch_dir).transaction() as txn:
            st = txn.state.stage(stage.number)
            entry = _dict(st.extra.get("remote_questions")).get(key)
            if isinstance(entry, dict):
                entry["answered"] = True
            txn.emit("remote_answer_sent", stage=stage.number, path=q.get("path"))
        found.append(Finding(stage.number, "answered", str(q.get("path"))))
    return found


def run_tips(state: Any) -> dict[str, str]:
    """Every ``autorun/<run>/...`` branch on the git remote and its tip: one
    ``ls-remote`` per check, however many stages run remotely."""
    settings = settings_of(state)
    prefix = f"refs/heads/autorun/{run_of(state)}/"
    res = _git(["ls-remote", settings.git_remote, prefix + "*"], Path(state.project_root),
               check=False)  # fmt: skip
    if not res.ok:
        raise AutorunError(
            f"git ls-remote {settings.git_remote} failed: {res.stderr.strip()[-300:]}"
        )
    tips = {}
    for line in res.stdout.splitlines():
        sha, _, ref = line.partition("\t")
        if ref.startswith("refs/heads/"):
            tips[ref[len("refs/heads/") :]] = sha
    return tips


def poll_stage(
    orch_dir: Path,
    state: Any,
    stage: Any,
    tips: Optional[dict[str, str]] = None,
    *,
    merge: MergeFn,
) -> list[Finding]:
    """Fetch one remote stage's branch: file its questions, send answers, and merge
    it through the gate (``merge``: :func:`autorun_py.merge.merge`) once a completion
    commit is there. ``tips``: the branches' tips on the remote (:func:`run_tips`),
    else asked for this one."""
    from autorun_py.state import StatusStore

    findings = _send_answers(orch_dir, state, stage)
    settings = settings_of(state)
    repo = Path(state.project_root)
    branch = stage.branch
    wt = Path(stage.worktree) if stage.worktree else None
    if not branch or wt is None or not wt.is_dir():
        return findings
    tip = tips.get(branch) if tips is not None else remote_tip(repo, settings, branch)
    done = stage.extra.get("remote_completion")
    if tip is not None and tip != stage.extra.get("remote_seen"):
        # Into the stage worktree's own FETCH_HEAD (per worktree): no ref of the user's.
        _git(["fetch", "--quiet", "--no-tags", settings.git_remote, f"refs/heads/{branch}"], wt)
        tip = _git(["rev-parse", "FETCH_HEAD"], wt).stdout.strip()
        head = _git(["rev-parse", "HEAD"], wt).stdout.strip()
        if not git.is_ancestor(head, tip, wt):
            with StatusStore(orch_dir).transaction() as txn:
                txn.state.stage(stage.number).extra["remote_seen"] = tip
                txn.emit("remote_branch_diverged", stage=stage.number, tip=tip, local=head)
            detail = f"{branch} on {settings.git_remote} no longer holds {head[:12]}; not merged"
            return [*findings, Finding(stage.number, "error", detail)]
        findings += _file_questions(orch_dir, state, stage, wt, tip)
        new = _completion(wt, head, tip, trailer_value(state, stage))
        with StatusStore(orch_dir).transaction() as txn:
            st = txn.state.stage(stage.number)
            st.extra["remote_seen"] = tip
            if new:
                st.extra["remote_completion"] = done = new
                txn.emit("remote_completed", stage=stage.number, commit=new, branch=branch)
                findings.append(Finding(stage.number, "completed", new))
    if not isinstance(done, str) or stage.extra.get("remote_merged_try") == done:
        return findings
    return findings + _merge_completed(orch_dir, state, stage, wt, done, merge)


def _merge_completed(
    orch_dir: Path, state: Any, stage: Any, wt: Path, done: str, merge: MergeFn
) -> list[Finding]:
    """Send a completed remote stage through the same merge (and gate) as a local one."""
    from autorun_py.state import StatusStore

    # The stage's worktree and branch are autorun's own: carried to the completion.
    _git(["merge", "--quiet", "--ff-only", done], wt)
    report = merge(orch_dir, stage.number)
    with StatusStore(orch_dir).transaction() as txn:
        txn.state.stage(stage.number).extra["remote_merged_try"] = done
    findings = [Finding(stage.number, "merge_result", f"{report.result}: {report.message}")]
    if report.result in ("merged", "already_merged"):
        with contextlib.suppress(AutorunError):  # a kill before it: `autorun clean` does it
            delete_remote_branch(state, stage)
    elif report.result == "verify_failed" and current_id(stage):
        from autorun_py.gate import red_text

        with contextlib.suppress(AutorunError):
            send_message(
                str(current_id(stage)),
                "autorun: the project's checks failed on your completion commit "
                f"{done[:12]}; fix it, commit, make a new completion commit with the trailer "
                f"'{TRAILER}: {trailer_value(state, stage)}' and push again.\n"
                + "\n".join(red_text(report))[-3000:],
            )
    return findings


def poll_run(orch_dir: Path, merge: MergeFn) -> list[Finding]:
    """One look at every remote stage in progress of the run (the monitor's check);
    ``merge`` merges a completed one (:func:`autorun_py.merge.merge`)."""
    from autorun_py.state import IN_PROGRESS, StatusStore

    state = StatusStore(orch_dir).read()
    findings: list[Finding] = []
    polled = [
        st
        for st in state.stages.values()
        if st.status == IN_PROGRESS
        and stage_launcher(state, st) == NAME
        # the user's (a conflict), the existing retries' (blocked), a recovery's
        and not (st.merge_state in ("conflict", "blocked") or st.merge_intent)
    ]
    if not polled:
        return findings
    try:
        tips = run_tips(state)
    except AutorunError as exc:  # the remote is not reached: the next check tries again
        return [Finding(st.number, "error", str(exc)) for st in polled[:1]]
    for st in sorted(polled, key=lambda s: s.number):
        n = st.number
        try:
            findings += poll_stage(orch_dir, state, st, tips, merge=merge)
        except AutorunError as exc:  # one stage's trouble does not stop the others
            findings.append(Finding(n, "error", str(exc)))
    # A stage merged outside a poll (`autorun merge --continue` of a conflict, or a
    # poll killed before its clean-up): its branches still on the remote go now.
    from autorun_py.state import COMPLETED

    for st in state.stages.values():
        if st.status == COMPLETED and stage_launcher(state, st) == NAME:
            if any(b in tips for b in _list(st.extra.get("remote_branches"))):
                with contextlib.suppress(AutorunError):
                    for b in delete_remote_branch(state, st):
                        findings.append(Finding(st.number, "branch_deleted", b))
    return findings
