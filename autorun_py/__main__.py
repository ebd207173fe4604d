import sys

_FAST_HOOKS = ("Stop", "StopFailure", "PermissionRequest", "Notification", "SessionStart",
               "SessionEnd", "tmux-closed", "act")  # fmt: skip


def _run() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "hook" and sys.argv[2] in _FAST_HOOKS:
        # Claude Code runs these hooks on every turn: no click, no CLI modules,
        # and outside an autorun stage nothing at all.
        import os

        if sys.argv[2] not in ("act", "tmux-closed") and not (
            os.environ.get("AUTORUN_ORCH_DIR") and os.environ.get("AUTORUN_STAGE")
        ):
            sys.exit(0)
        from autorun_py.hooks import main as hook_main

        sys.exit(hook_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] in ("phase", "context"):
        # The bookkeeping calls of every stage step: no click when the call is
        # plainly well formed (anything else falls through, nothing done).
        from autorun_py.fastcli import try_run

        code = try_run(sys.argv[1:])
        if code is not None:
            sys.exit(code)
    from autorun_py.cli import main

    main()


_run()
