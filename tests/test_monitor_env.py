"""The AUTORUN_MONITOR_* variables, read at the edges into MonitorOptions
(autorun_py/cli/monitor_env.py): the same values and the same leniency as when
MonitorOptions read them itself. That `autorun monitor` and the hook entry take
them is what the monitor and hook tests rely on (AUTORUN_MONITOR_INTERVAL=0.2,
AUTORUN_MONITOR_EARLY_DEATH=0 in test_monitor, test_resume, test_hooks)."""

from __future__ import annotations

from autorun_py.cli.monitor_env import ENV_NAMES, monitor_options
from autorun_py.supervisor import MonitorOptions


def test_defaults_without_the_variables() -> None:
    assert monitor_options({}) == MonitorOptions()


def test_every_variable_sets_its_option() -> None:
    env = {
        "AUTORUN_MONITOR_INTERVAL": "0.2",
        "AUTORUN_MONITOR_GAP": "0.1",
        "AUTORUN_MONITOR_MAX_NUDGES": "2",
        "AUTORUN_MONITOR_MAX_RESTARTS": "7.9",  # an int option takes the whole part
        "AUTORUN_MONITOR_LIMIT_MARGIN": "5",
        "AUTORUN_MONITOR_LIMIT_BACKOFF": "3",
        "AUTORUN_MONITOR_DEAD_GRACE": "30",
        "AUTORUN_MONITOR_EARLY_DEATH": "0",
    }
    opts = monitor_options(env)
    assert (opts.interval, opts.gap, opts.max_nudges, opts.max_restarts) == (0.2, 0.1, 2, 7)
    assert (opts.limit_margin, opts.limit_backoff, opts.dead_grace) == (5.0, 3.0, 30.0)
    assert opts.early_death == 0.0
    assert isinstance(opts.max_nudges, int) and isinstance(opts.max_restarts, int)
    assert sorted(ENV_NAMES.values()) == sorted(env)


def test_empty_or_bad_values_are_the_defaults_and_options_given_win() -> None:
    env = {"AUTORUN_MONITOR_INTERVAL": "", "AUTORUN_MONITOR_GAP": "soon"}
    opts = monitor_options(env, max_nudges=9, gap=None)
    assert (opts.interval, opts.gap, opts.max_nudges) == (60.0, 60.0, 9)
    given = monitor_options({"AUTORUN_MONITOR_INTERVAL": "5"}, interval=0.5, once=True)
    assert given.interval == 0.5 and given.once
