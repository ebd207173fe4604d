import sys

_FAST_HOOKS = ("Stop", "StopFailure", "PermissionRequest", "Notification", "SessionStart",
               "SessionEnd", "tmux-closed", "act")  # fmt: skip
_FAST_COMMANDS = ("phase", "context", "stage", "chain", "merge")


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
    args = sys.argv[1:]
    if args[:1] == ["--args-of"] and len(args) > 2 and args[2] == "stage":
        # start.md's `!` line: its arguments from the prompt hook (taken once here;
        # the full CLI below gets them expanded).
        import os

        from autorun_py.prompt_args import expand_argv

        args = expand_argv(args, os.environ)
    if args[:1] and args[0] in _FAST_COMMANDS:
        # The calls of every stage step: no click when the call is plainly well
        # formed (anything else falls through, nothing done).
        from autorun_py.fastcli import try_run

        code = try_run(args)
        if code is not None:
            sys.exit(code)
    from autorun_py.cli import main

    main(args)


_run()
