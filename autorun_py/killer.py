"""``python -m autorun_py.killer TARGET DELAY [--session]``: kill a tmux pane or
session after a delay, detached from the caller (which usually lives in it)."""

from __future__ import annotations

import sys
import time

from autorun_py.tmux import Tmux


def main(argv: list[str]) -> int:
    target, delay = argv[0], float(argv[1])
    time.sleep(delay)
    tmux = Tmux.from_env()
    if "--session" in argv[2:]:
        tmux.kill_session(target)
    else:
        tmux.kill_pane(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
