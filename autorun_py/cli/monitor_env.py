"""The ``AUTORUN_MONITOR_*`` environment as :class:`~autorun_py.supervisor.MonitorOptions`.

The one reader of those names, for the two edges that apply the monitor's policy:
``autorun monitor`` (:mod:`autorun_py.cli.monitor_cmd`) and the hook entry
(:func:`autorun_py.hooks.main`: a session's end is recovered with the monitor's
restart limit and early-death rule; a ``StopFailure`` waits the monitor's backoff).
A value that is empty or not a number is the default (as it always was); a
command-line option given wins over the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autorun_py.supervisor import MonitorOptions

# option field -> environment variable
ENV_NAMES = {
    "interval": "AUTORUN_MONITOR_INTERVAL",
    "gap": "AUTORUN_MONITOR_GAP",
    "max_nudges": "AUTORUN_MONITOR_MAX_NUDGES",
    "max_restarts": "AUTORUN_MONITOR_MAX_RESTARTS",
    "limit_margin": "AUTORUN_MONITOR_LIMIT_MARGIN",
    "limit_backoff": "AUTORUN_MONITOR_LIMIT_BACKOFF",
    "dead_grace": "AUTORUN_MONITOR_DEAD_GRACE",
    "early_death": "AUTORUN_MONITOR_EARLY_DEATH",
}
_INTS = ("max_nudges", "max_restarts")


def _number(environ: Mapping[str, str], name: str, default: float) -> float:
    try:
        return float(environ.get(name, "") or default)
    except ValueError:
        return default


def monitor_options(environ: Mapping[str, str], **overrides: Any) -> MonitorOptions:
    """The options from ``environ`` (``AUTORUN_MONITOR_INTERVAL``, ``_GAP``,
    ``_MAX_NUDGES``, ``_MAX_RESTARTS``, ``_LIMIT_MARGIN``, ``_LIMIT_BACKOFF``,
    ``_DEAD_GRACE``, ``_EARLY_DEATH``), then ``overrides`` that are not None."""
    defaults = MonitorOptions()
    values: dict[str, Any] = {}
    for field, name in ENV_NAMES.items():
        value = _number(environ, name, getattr(defaults, field))
        values[field] = int(value) if field in _INTS else value
    values.update({k: v for k, v in overrides.items() if v is not None})
    return MonitorOptions(**values)
