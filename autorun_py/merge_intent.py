"""A merge's intent journal: each step of a merge that touches a checkout or a
ref is first recorded as the stage's ``merge_intent`` in its run's
``status.json`` (one status transaction, before the step acts; see
:mod:`autorun_py.gitmerge`), so the next merge, resume or monitor check finishes
or rolls back exactly that step. Below :mod:`autorun_py.merge` and
:mod:`autorun_py.merge_queue`, which both journal through it."""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

from autorun_py import gitmerge
from autorun_py.eventlog import utc_now
from autorun_py.state import StatusStore, Transaction


def intent_journal(
    store: StatusStore,
    number: int,
    action: str,
    *,
    first: Optional[Callable[[Transaction], None]] = None,
) -> gitmerge.Journal:
    """Record a merge's intent in the stage's ``merge_intent`` (one status
    transaction, before the step acts; see :mod:`autorun_py.gitmerge`).
    ``first``: a change made in the first intent's transaction (the merge
    phase's start: one transaction fewer per merge, issue 16)."""
    carried: dict[str, Any] = {}
    pending = [first] if first is not None else []

    def record(intent: dict[str, Any]) -> None:
        if intent.get("summary"):
            carried["summary"] = intent["summary"]
        full = {"action": action, "pid": os.getpid(), "at": utc_now(), **carried, **intent}
        with store.transaction() as txn:
            for change in pending:
                change(txn)
            txn.state.stage(number).merge_intent = full
        pending.clear()

    return record
