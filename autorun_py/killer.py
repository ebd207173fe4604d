"""Kill a tmux pane or session after a delay, detached from the caller (which
usually lives in it)::

    python -m autorun_py.killer TARGET DELAY [--session] [--then-clean REPO WORKTREE BRANCH BASE]

TARGET ``-`` kills nothing.

``--then-clean``: afterwards remove the stage's WORKTREE from REPO and delete
BRANCH if BASE holds it. Used when ``autorun merge`` ran inside that worktree
from a Claude Code shell, which checks its working directory after every
command: removing it at once would turn the successful merge into a failed
command (``pwd: error retrieving current directory``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from autorun_py.tmux import Tmux


def main(argv: list[str]) -> int:
    target, delay = argv[0], float(argv[1])
    time.sleep(delay)
    tmux = Tmux.from_env()
    if target != "-":
        if "--session" in argv[2:]:
            tmux.kill_session(target)
        else:
            tmux.kill_pane(target)
    if "--then-clean" in argv[2:]:
        from autorun_py import gitmerge

        i = argv.index("--then-clean")
        repo, worktree, branch, base = argv[i + 1 : i + 5]
        time.sleep(0.5)  # let the killed session's processes leave the worktree
        gitmerge.remove_stage_worktree(Path(repo), Path(worktree))
        if branch:
            gitmerge.delete_branch_if_merged(Path(repo), branch, base)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
