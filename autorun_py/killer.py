"""Kill a tmux pane or session after a delay, detached from the caller (which
usually lives in it)::

    python -m autorun_py.killer TARGET DELAY [--session] [--owner ORCH_DIR]
        [--then-clean REPO WORKTREE BRANCH BASE [--merged-tip TIP]] [--sweep]

TARGET ``-`` kills nothing; ``bg:ID[,ID...]``: Claude Code background sessions
the run recorded as its own (``claude stop``; with ``--session`` also ``claude
rm``, after the clean-up). ``--owner``: kill only when the target's tmux
session belongs to that run (its ``AUTORUN_ORCH_DIR``); a session of another
run, or of the user, is left alone.

``--then-clean`` (needs ``--owner``): afterwards remove the stage's WORKTREE
from REPO and delete BRANCH if BASE holds it, both through
:mod:`autorun_py.worktrees` (only what autorun created for that run). Used when
``autorun merge`` ran inside that worktree from a Claude Code shell, which
checks its working directory after every command: removing it at once would
turn the successful merge into a failed command (``pwd: error retrieving
current directory``). ``--sweep`` (needs ``--owner``; the run's last merge): then the run's
merged stages whose clean-up waits for their sessions to end
(:mod:`autorun_py.cleanup`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

from autorun_py.tmux import Tmux


def _opt(argv: list[str], name: str) -> Optional[str]:
    if name in argv:
        i = argv.index(name)
        if i + 1 < len(argv):
            return argv[i + 1]
    return None


def main(argv: list[str]) -> int:
    target, delay = argv[0], float(argv[1])
    rest = argv[2:]
    owner = _opt(rest, "--owner")
    time.sleep(delay)
    bg_ids = target[3:].split(",") if target.startswith("bg:") else []
    if bg_ids:
        # background sessions the run recorded as its own (autorun_py.launchers)
        from autorun_py.launchers.background import stop_ids

        stop_ids(bg_ids)
        target = "-"
    tmux = Tmux.from_env()
    if target != "-" and (owner is None or tmux.owned_by(target, owner)):
        if "--session" in rest:
            tmux.end_session(target)  # on purpose: no recovery from the session-closed hook
        else:
            tmux.kill_pane(target)
    if "--then-clean" in rest and owner:
        from autorun_py import worktrees

        i = rest.index("--then-clean")
        repo, worktree, branch, base = rest[i + 1 : i + 5]
        # the stage tip the merge put on the base: the branch goes only while it
        # still points there (compare-and-delete), nothing to read first
        tip = _opt(rest, "--merged-tip")
        time.sleep(0.5)  # let the killed session's processes leave the worktree
        known = worktrees.listing(Path(repo))  # one listing for both steps
        worktrees.try_remove(Path(repo), Path(worktree), run=owner, known=known)
        if branch:
            worktrees.try_delete_branch(
                Path(repo), branch, run=owner, merged_into=base, merged_tip=tip, known=known
            )
    if "--sweep" in rest and owner:
        from autorun_py.cleanup import sweep_until_done

        sweep_until_done(Path(owner))
    if bg_ids and "--session" in rest:
        from autorun_py.launchers.background import stop_ids

        stop_ids(bg_ids, remove=True)  # after the worktree is gone: `rm` has none to take
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
