"""Review files: how a headless session asks the user questions and waits.

A review file is Markdown under ``$AUTORUN_HOME/review/``, named
``YYYY-MM-DD-HHMMSS-<slug>.md`` (the seed's pattern). Its format, in which
nothing a user types inside an answer is taken for structure, is described in
:mod:`autorun_py.review.format`.

- :mod:`~autorun_py.review.model`: answers, metadata, a parsed file.
- :mod:`~autorun_py.review.format`: render and parse (pure);
  :mod:`~autorun_py.review.legacy` reads files of the first format.
- :mod:`~autorun_py.review.store`: creating and reading files, the records and
  locks under ``review/`` (the one place with atomic writes and locks).
- :mod:`~autorun_py.review.notify`: telling the user (tmux, bell, desktop, events).
- :mod:`~autorun_py.review.wait`, :mod:`~autorun_py.review.watch`: ``review
  wait`` and the file watcher it sleeps on.
- :mod:`~autorun_py.review.inbox`: who waits on what; the inbox and the
  status view's list.
"""

from __future__ import annotations

from autorun_py.review.format import (
    parse_answers,
    parse_review,
    read_meta,
    render_review,
)
from autorun_py.review.inbox import (
    ReviewInfo,
    is_stage_waiting,
    list_reviews,
    live_waiters,
    review_info,
    waiting_reviews_for,
)
from autorun_py.review.model import Answer, ReviewDoc, ReviewMeta
from autorun_py.review.notify import has_desktop, how_to_answer, notify_user, open_for_user
from autorun_py.review.store import (
    new_review,
    parse_stage_ref,
    read_answers,
    read_review,
    run_name,
)
from autorun_py.review.wait import DEFAULT_SETTLE, wait_for_answers
from autorun_py.timeutil import format_duration

__all__ = [
    "DEFAULT_SETTLE",
    "Answer",
    "ReviewDoc",
    "ReviewInfo",
    "ReviewMeta",
    "format_duration",
    "has_desktop",
    "how_to_answer",
    "is_stage_waiting",
    "list_reviews",
    "live_waiters",
    "new_review",
    "notify_user",
    "open_for_user",
    "parse_answers",
    "parse_review",
    "parse_stage_ref",
    "read_answers",
    "read_meta",
    "read_review",
    "render_review",
    "review_info",
    "run_name",
    "wait_for_answers",
    "waiting_reviews_for",
]
