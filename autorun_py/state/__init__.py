"""The run's state: ``<orch_dir>/status.json``, one file lock, atomic writes.

Every read-modify-write goes through :meth:`StatusStore.transaction`, which
holds one lock file beside it (:class:`autorun_py.flock.FlockLock`, a blocking
flock), re-reads the file, lets the caller change the typed model, writes a
temp file in the same directory (flushed and fsynced) and ``os.replace``-s it
over ``status.json``, then appends the transaction's events to ``events.jsonl``
while still holding the lock.
Readers never lock: ``os.replace`` means they see the old or the new file,
never a part of one.

The JSON keeps every field of the seed's schema; autorun adds its own
(``schema_version``, ``revision``, per-stage ``worktree``/``session``/...).
Unknown fields are carried through untouched, so a newer writer's additions
survive an older reader's write.

One job per module:

- :mod:`~autorun_py.state.schema`: the kinds of value a field holds (check on
  read, load, dump);
- :mod:`~autorun_py.state.side`: the side channels (the monitor's record, a
  stage's counters) typed;
- :mod:`~autorun_py.state.stage`: a stage and its phases as dataclasses (each
  JSON key declared once, as a field) and the checks of a stage on read;
- :mod:`~autorun_py.state.run`: the run as a dataclass, its stages (a map that
  converts a stage when it is first used), the checks of the top level, migration;
- :mod:`~autorun_py.state.codec`: the readable layout, and the reader that
  leaves the stages a transaction does not use as text;
- :mod:`~autorun_py.state.store`: the store and its transaction (lock, re-read,
  atomic write, events);
- :mod:`~autorun_py.state.transitions`: a stage's legal moves and what each
  records.

Everything is importable from ``autorun_py.state``.
"""

from __future__ import annotations

from autorun_py.state.codec import dumps_readable, read_state, render_state
from autorun_py.state.run import (
    RUN_FIELDS,
    RUN_KEYS,
    RunState,
    StageMap,
    migrate,
    validate_raw,
)
from autorun_py.state.schema import (
    MAX_INT,
    RUN_CANCELLED,
    RUN_COMPLETED,
    RUN_FINISHED_WITH_FAILURES,
    RUN_RUNNING,
    RUN_STATUSES,
)
from autorun_py.state.schema import Bad as _Bad
from autorun_py.state.stage import (
    BLOCKED,
    CANCELLED,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    PENDING,
    PHASES,
    SCHEMA_VERSION,
    SEED_PHASES,
    STAGE_FIELDS,
    STAGE_KEYS,
    STAGE_STATUSES,
    STATUS_FILE,
    TERMINAL,
    Phase,
    StageState,
)
from autorun_py.state.store import (
    JOURNAL_KEY,
    MAX_STATUS_BYTES,
    PendingEvent,
    StatusStore,
    Transaction,
    _kill_point,
    write_json_atomic,
)
from autorun_py.state.transitions import (
    TRANSITIONS,
    block_descendants,
    end_run,
    fail_stage,
    finish_if_done,
    transition,
    update_phase,
)

__all__ = [
    "BLOCKED",
    "CANCELLED",
    "COMPLETED",
    "FAILED",
    "IN_PROGRESS",
    "JOURNAL_KEY",
    "MAX_INT",
    "MAX_STATUS_BYTES",
    "PENDING",
    "PHASES",
    "RUN_CANCELLED",
    "RUN_COMPLETED",
    "RUN_FIELDS",
    "RUN_FINISHED_WITH_FAILURES",
    "RUN_KEYS",
    "RUN_RUNNING",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "SEED_PHASES",
    "STAGE_FIELDS",
    "STAGE_KEYS",
    "STAGE_STATUSES",
    "STATUS_FILE",
    "TERMINAL",
    "TRANSITIONS",
    "PendingEvent",
    "Phase",
    "RunState",
    "StageMap",
    "StageState",
    "StatusStore",
    "Transaction",
    "_Bad",
    "_kill_point",
    "block_descendants",
    "dumps_readable",
    "end_run",
    "fail_stage",
    "finish_if_done",
    "migrate",
    "read_state",
    "render_state",
    "transition",
    "update_phase",
    "validate_raw",
    "write_json_atomic",
]
