"""Beat's scheduler: django-celery-beat's, recording its own ticks (automation.health) and running the
dispatcher of the bots' cycles itself (automation.dispatch)."""

import logging
import platform
import threading
import time

from django.conf import settings
from django.db import DatabaseError, connections
from django_celery_beat.schedulers import DatabaseScheduler

from .dispatch import dispatch_due
from .health import BEAT, record

logger = logging.getLogger(__name__)

DISPATCH_TASK = "automation.tasks.dispatch_cycles_task"


class HeartbeatDatabaseScheduler(DatabaseScheduler):
    """Writes the `beat` heartbeat at most once a heartbeat period: beat ticks every few seconds."""

    _recorded_at = None
    _dispatching: threading.Thread | None = None

    def tick(self, *args, **kwargs):
        now = time.monotonic()
        if self._recorded_at is None or now - self._recorded_at >= settings.WORKER_HEARTBEAT_SECONDS:
            try:
                record(BEAT, platform.node())
                self._recorded_at = now
            except DatabaseError:
                # Beat goes on sending what is due; its stale heartbeat tells the operator (/healthz).
                logger.exception("beat could not record its heartbeat")
        return super().tick(*args, **kwargs)

    def apply_entry(self, entry, producer=None):
        """The dispatcher's entry is run here rather than sent: sent, it would wait for a free worker of the
        default queue (the trade monitor and retraining take minutes), and the cycles with it. It runs on a
        thread of its own, with a connection to the broker of its own: beat times an entry's next run from
        the moment it returns, so a dispatch of seconds run in line would make each minute's start later
        by as much (seen: 7 s)."""
        if entry.task != DISPATCH_TASK:
            return super().apply_entry(entry, producer=producer)
        if self._dispatching is not None and self._dispatching.is_alive():
            # Still sending the last minute's (a slow database): the next minute sends what is due by then.
            logger.warning(
                "the dispatch of the last minute is still running; this minute's waits for the next"
            )
            return None
        self._dispatching = threading.Thread(target=_dispatch, name="dispatch", daemon=True)
        self._dispatching.start()
        return None


def _dispatch() -> None:
    try:
        dispatch_due()
    except Exception:  # beat must go on: a broker or database down now may be back next minute
        logger.exception("the dispatch of the cycles due failed; the next minute sends them")
    finally:
        connections.close_all()  # this thread's: a thread a minute would otherwise leave one each
