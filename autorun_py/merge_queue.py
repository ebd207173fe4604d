"""The speculative merge queue: several gated merges waiting at once are verified
in parallel, the way Zuul's gate does.

Verification is serialised per repository by the merge lock, so N stages that
finish together would wait N x the verify time. Instead, each gated ``autorun
merge`` puts an entry in the repository's queue file
(``$AUTORUN_HOME/locks/merge-queue-<key>.json``, under its own file lock) and
waits for the merge lock. Whoever gets the lock (the *leader*) takes every
entry waiting with the same base branch and verify command, in queue order,
and builds the speculative chain: candidate k = base + stages 1..k (one merge
commit per stage, each on top of the previous candidate). The candidates are
verified in parallel, up to ``verify_parallel`` at once; the base then moves by
the usual compare-and-swap through the chain, one verified commit at a time,
in order. The first red candidate drops out (its stage gets the red verdict);
the verifications behind it are cancelled and those stages are rebuilt without
it and verified again. A stage that conflicts at its place in the chain, or
that meets a base moved by someone else or blocked by the user's changes, is
*deferred*: its own ``autorun merge`` handles it alone, exactly as without a
queue (conflict hand-off, blocked merge).

Each waiting process reads its entry's result: ``merged`` (the base holds its
merge; it completes the stage as an already-merged one), ``red`` (exit 5 with
the verdict), or ``deferred``. Entries of processes that died are dropped. The
base never holds a commit that was not verified as it is: every commit the
chain moves it to is exactly the one that passed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from autorun_py import git as g
from autorun_py.errors import AutorunError
from autorun_py.paths import layout

MERGED = "merged"
RED = "red"
DEFERRED = "deferred"


@dataclass
class Entry:
    """A gated merge waiting in the merge queue."""
    orch_dir: str
    stage: int
    branch: str
    base_branch: str
    command: str
    message: str
    pid: int = field(default_factory=os.getpid)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    enqueued_at: float = field(default_factory=time.time)
    alone: bool = False  # deferred once: handled by its own process, alone
    result: Optional[dict[str, Any]] = None


def _alive(pid: int) -> bool:
    from autorun_py.proc import pid_alive

    return pid_alive(pid)


class Queue:
    """One repository's queue file; every read-modify-write under its lock."""

    def __init__(self, repo: Path) -> None:
        key = hashlib.sha1(str(g.common_dir(repo)).encode("utf-8")).hexdigest()
        self.path = layout().merge_queue(key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        from autorun_py.fsutil import Lock

        self._lock = Lock(
            str(self.path) + ".lock",
            timeout=60,
            message="another merge holds the merge queue",
        )

    def _read(self) -> list[Entry]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError):
            return []  # a torn or foreign file: start a fresh queue
        out = []
        for item in raw.get("entries", []) if isinstance(raw, dict) else []:
            with contextlib.suppress(TypeError, ValueError, KeyError):
                out.append(Entry(**item))
        return out

    @contextlib.contextmanager
    def edit(self) -> Iterator[list[Entry]]:
        from autorun_py.state import write_json_atomic

        with self._lock:
            entries = self._read()
            yield entries
            write_json_atomic(self.path, {"entries": [asdict(e) for e in entries]})

    def add(self, entry: Entry) -> None:
        with self.edit() as entries:
            entries.append(entry)

    def remove(self, entry_id: str) -> None:
        with self.edit() as entries:
            entries[:] = [e for e in entries if e.id != entry_id]

    def get(self, entry_id: str) -> Optional[Entry]:
        for e in self._read():
            if e.id == entry_id:
                return e
        return None

    def set_result(self, entry_id: str, result: Optional[dict[str, Any]], **changes: Any) -> None:
        with self.edit() as entries:
            for e in entries:
                if e.id == entry_id:
                    e.result = result
                    for k, v in changes.items():
                        setattr(e, k, v)

    def batch_for(self, me: Entry) -> list[Entry]:
        """The entries the leader ``me`` verifies together, in queue order: waiting,
        alive, same base branch and command, not deferred. Dead ones are dropped."""
        with self.edit() as entries:
            entries[:] = [e for e in entries if _alive(e.pid) or e.id == me.id]
            return [
                e
                for e in entries
                if e.result is None
                and not e.alone
                and e.base_branch == me.base_branch
                and e.command == me.command
            ]


@dataclass
class _Link:
    """A candidate of the speculative chain: an entry merged onto its parent candidate."""
    entry: Entry
    candidate: str
    parent: str


def speculate(
    repo: Path,
    queue: Queue,
    batch: list[Entry],
    *,
    verify: Callable[[Entry, str, str, threading.Event], Any],
    parallel: int,
    say: Optional[Callable[[str], None]] = None,
    leader: Optional[Entry] = None,
) -> None:
    """Verify ``batch`` as a speculative chain and move the base through its
    green prefix; write each entry's result. ``verify(entry, candidate, parent,
    cancel)`` returns a :class:`~autorun_py.gate.Verdict` (the caller holds the
    merge lock). With ``leader``, entries that join the queue while the chain is
    being verified are appended to it at once (built on its last candidate)."""
    from autorun_py import gitmerge

    base_branch = batch[0].base_branch
    pending = list(batch)
    seen = {e.id for e in batch}
    while pending:
        chain: list[_Link] = []
        parent = gitmerge._branch_tip(repo, base_branch)
        for e in pending:
            link = _build(repo, queue, e, parent)
            if link is not None:
                chain.append(link)
                parent = link.candidate
        if not chain:
            return
        if say is not None:
            say(
                f"autorun: merge queue: verifying {len(chain)} candidate(s) speculatively "
                f"(stages {', '.join(str(link.entry.stage) for link in chain)}; "
                f"up to {parallel} at once)"
            )
        pending = _verify_chain(
            repo, queue, chain, base_branch, verify, parallel, say, leader, seen
        )


def _build(repo: Path, queue: Queue, e: Entry, parent: str) -> Optional[_Link]:
    """Candidate = ``parent`` + the entry's stage; None (deferred) when it
    conflicts there or cannot be built: its own merge handles it alone."""
    from autorun_py import gitmerge

    try:
        tip = gitmerge._branch_tip(repo, e.branch)
        if g.is_ancestor(tip, parent, repo):
            raise AutorunError("already merged")
        tree, conflicted = gitmerge._merge_tree(repo, parent, tip)
        if conflicted:
            raise AutorunError("conflicts")
        candidate = gitmerge._commit_tree(repo, tree, [parent, tip], e.message)
    except AutorunError:
        queue.set_result(e.id, {"kind": DEFERRED})
        return None
    return _Link(e, candidate, parent)


def _verify_chain(
    repo: Path,
    queue: Queue,
    chain: list[_Link],
    base_branch: str,
    verify: Callable[[Entry, str, str, threading.Event], Any],
    parallel: int,
    say: Optional[Callable[[str], None]],
    leader: Optional[Entry],
    seen: set[str],
) -> list[Entry]:
    """One round: verify the chain in parallel, move the base through it in
    order; the entries to rebuild (behind a red one) are returned."""
    from autorun_py import gitmerge
    from autorun_py.gitmerge import MergeKind

    cancel = threading.Event()
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures: list[Future[Any]] = [
            pool.submit(_verify_unless_cancelled, verify, link, cancel) for link in chain
        ]
        try:
            i = 0
            while i < len(chain):
                link = chain[i]
                while not futures[i].done():
                    if leader is not None:
                        for e in queue.batch_for(leader):
                            if e.id in seen:
                                continue
                            seen.add(e.id)
                            joined = _build(repo, queue, e, chain[-1].candidate)
                            if joined is not None:
                                chain.append(joined)
                                futures.append(
                                    pool.submit(_verify_unless_cancelled, verify, joined, cancel)
                                )
                                if say is not None:
                                    say(
                                        f"autorun: merge queue: stage {e.stage} joined the "
                                        f"chain ({len(chain)} candidates)"
                                    )
                    with contextlib.suppress(Exception):
                        futures[i].result(timeout=0.2)
                verdict = futures[i].result()
                if verdict is not None and verdict.passed:
                    out = gitmerge._advance_base(
                        repo,
                        base_branch,
                        link.entry.branch,
                        link.parent,
                        link.candidate,
                        link.entry.message,
                        journal=_journal_of(link.entry),
                    )
                    if out is not None and out.kind is MergeKind.MERGED:
                        queue.set_result(
                            link.entry.id,
                            {
                                "kind": MERGED,
                                "merge_commit": link.candidate,
                                "previous_tip": link.parent,
                                "verdict": verdict.to_json(),
                            },
                        )
                        i += 1
                        continue
                if verdict is None or verdict.passed:
                    # cancelled, or the base moved under us / the user's changes block it:
                    # this one and the rest go back to their own merges
                    cancel.set()
                    for rest in chain[i:]:
                        queue.set_result(rest.entry.id, {"kind": DEFERRED})
                    return []
                queue.set_result(link.entry.id, {"kind": RED, "verdict": verdict.to_json()})
                cancel.set()  # the ones behind it are rebuilt without it
                return [rest.entry for rest in chain[i + 1 :]]
            return []
        except BaseException:
            cancel.set()  # stop the verifications still running
            raise


def speculate_or_defer(
    repo: Path,
    queue: Queue,
    batch: list[Entry],
    *,
    verify: Callable[[Entry, str, str, threading.Event], Any],
    parallel: int,
    say: Optional[Callable[[str], None]] = None,
    leader: Optional[Entry] = None,
) -> None:
    """:func:`speculate`; if it fails midway, every entry it did not settle goes
    back to its own merge (deferred), which then runs alone as without a queue."""
    try:
        speculate(repo, queue, batch, verify=verify, parallel=parallel, say=say, leader=leader)
    except (AutorunError, OSError) as exc:
        if say is not None:
            say(f"autorun: merge queue: {exc}; the remaining stages merge one by one")
        for e in batch:
            mine = queue.get(e.id)
            if mine is not None and mine.result is None:
                queue.set_result(e.id, {"kind": DEFERRED})


def _journal_of(e: Entry) -> Callable[[dict[str, Any]], None]:
    """The merge intent journal of the entry's stage (in its own run's status):
    if the leader is killed while moving the base for it, the stage's next merge,
    resume or monitor check finishes or rolls back exactly that step."""
    from autorun_py.merge_intent import intent_journal
    from autorun_py.state import StatusStore

    return intent_journal(StatusStore(Path(e.orch_dir)), e.stage, "merge")


def _verify_unless_cancelled(
    verify: Callable[[Entry, str, str, threading.Event], Any],
    link: _Link,
    cancel: threading.Event,
) -> Any:
    if cancel.is_set():
        return None
    verdict = verify(link.entry, link.candidate, link.parent, cancel)
    if cancel.is_set() and not verdict.passed:
        return None
    return verdict
