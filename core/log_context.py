"""What a log line was written in: a cycle's user, bot, run and slot, set once by the cycle and added to
every line logged inside it, by any module, by a filter on the log handler (settings.LOGGING)."""

import contextvars
import logging
from contextlib import contextmanager

import sentry_sdk

FIELDS = ("user", "bot", "run", "slot")
# Per thread and per task: the io worker runs many cycles at once on its threads.
_context: contextvars.ContextVar[dict | None] = contextvars.ContextVar("log_context", default=None)


def current() -> dict:
    return dict(_context.get() or {})


@contextmanager
def log_context(*, user=None, bot=None, run=None, slot=None):
    """Every line logged inside carries the fields given (ids, and the slot's time), and any outer ones."""
    given = {"user": user, "bot": bot, "run": run, "slot": slot}
    fields = {key: value for key, value in given.items() if value is not None}
    token = _context.set({**current(), **fields})
    try:
        # The same fields as tags of an error sent to Sentry (settings.SENTRY_DSN; a no-op without it).
        with sentry_sdk.new_scope() as scope:
            scope.set_tags(fields)
            yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Adds the fields of the current `log_context` to each record, as attributes: a JSON formatter writes
    them as keys, `TextFormatter` after the message. A field the caller passed in `extra` stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in current().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class TextFormatter(logging.Formatter):
    """The plain format, with the record's context fields after the message (and before a traceback)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = " ".join(f"{key}={getattr(record, key)}" for key in FIELDS if hasattr(record, key))
        return f"{line} [{fields}]" if fields else line
