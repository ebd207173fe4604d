"""What a merge returns and what it is given: :class:`MergeKind`, :class:`MergeOutcome`,
the ``Journal`` that records a merge's intent and the merge gate's ``Verify``
(see :mod:`autorun_py.gitmerge`)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autorun_py import worktrees
from autorun_py.errors import ExitCode

# Our own git operations in the merge worktree never run the user's hooks (a
# post-checkout hook that installs dependencies would run on every merge).
_NO_HOOKS = ["-c", "core.hooksPath=/dev/null"]

# Conflict markers with the merge base section help the model resolve.
_MERGE_CONFIG = [*_NO_HOOKS, "-c", "merge.conflictStyle=diff3", "-c", "rerere.enabled=false"]

_MAX_ATTEMPTS = 5

# Records a merge's intent before it acts (see the module doc); merge.py writes
# it into status.json.
Journal = Callable[[dict[str, Any]], None]


def _no_journal(intent: dict[str, Any]) -> None:
    return None


class MergeKind(str, enum.Enum):
    MERGED = "merged"
    ALREADY_MERGED = "already_merged"
    CONFLICT = "conflict"
    BLOCKED = "blocked"
    VERIFY_FAILED = "verify_failed"  # the candidate failed the merge gate; the base did not move


# The merge gate (autorun_py/gate/): called with the exact candidate commit and
# the base tip it was built on; True lets the base move to that commit.
Verify = Callable[[str, str], bool]


@dataclass(frozen=True)
class ConflictFile:
    """A conflicted file and the commits on each side that touched it."""
    path: str
    # "sha subject" of the commits on each side since the merge base that touched the file
    base_commits: list[str] = field(default_factory=list)
    stage_commits: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MergeOutcome:
    """What a merge came to (:class:`MergeKind`) and what it did on the way."""
    kind: MergeKind
    base_branch: str
    stage_branch: str
    merge_commit: str | None = None  # new base tip (MERGED / ALREADY_MERGED)
    previous_tip: str | None = None
    conflicts: tuple[ConflictFile, ...] = ()  # CONFLICT
    merge_worktree: Path | None = None  # CONFLICT: where the model resolves
    blocked_files: tuple[str, ...] = ()  # BLOCKED: the user's dirty files the merge would change
    blocked_checkout: Path | None = None
    updated_checkouts: tuple[Path, ...] = ()  # work trees that moved to the new tip
    blocked_reason: str = ""  # BLOCKED: one line for people
    resolution_summary: str = ""  # continue_merge: Markdown for conflicts.md
    candidate: str | None = None  # VERIFY_FAILED: the commit that failed
    # MERGED / ALREADY_MERGED: the stage tip the base now holds (the branch may be
    # deleted while it still points there) and the worktrees as this merge read them
    stage_tip: str | None = None
    worktrees: worktrees.Listing | None = field(default=None, compare=False, repr=False)

    @property
    def exit_code(self) -> ExitCode:
        if self.kind is MergeKind.CONFLICT:
            return ExitCode.MERGE_CONFLICT
        if self.kind is MergeKind.BLOCKED:
            return ExitCode.MERGE_BLOCKED
        if self.kind is MergeKind.VERIFY_FAILED:
            return ExitCode.VERIFY_FAILED
        return ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (for ``--json``)."""
        return {
            "kind": self.kind.value,
            "base_branch": self.base_branch,
            "stage_branch": self.stage_branch,
            "merge_commit": self.merge_commit,
            "previous_tip": self.previous_tip,
            "conflicts": [
                {"path": c.path, "base_commits": c.base_commits, "stage_commits": c.stage_commits}
                for c in self.conflicts
            ],
            "merge_worktree": None if self.merge_worktree is None else str(self.merge_worktree),
            "blocked_files": list(self.blocked_files),
            "blocked_checkout": (
                None if self.blocked_checkout is None else str(self.blocked_checkout)
            ),
            "blocked_reason": self.blocked_reason,
            "updated_checkouts": [str(p) for p in self.updated_checkouts],
            "candidate": self.candidate,
        }


def _verify_failed(base_branch: str, stage_branch: str, base_tip: str, new: str) -> MergeOutcome:
    return MergeOutcome(
        MergeKind.VERIFY_FAILED,
        base_branch,
        stage_branch,
        previous_tip=base_tip,
        candidate=new,
    )


def _with_summary(outcome: MergeOutcome, summary: str) -> MergeOutcome:
    if not summary:
        return outcome
    import dataclasses

    return dataclasses.replace(outcome, resolution_summary=summary)
