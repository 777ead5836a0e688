"""Beat's scheduler: django-celery-beat's, recording its own ticks (automation.health)."""

import logging
import platform
import time

from django.conf import settings
from django.db import DatabaseError
from django_celery_beat.schedulers import DatabaseScheduler

from .health import BEAT, record

logger = logging.getLogger(__name__)


class HeartbeatDatabaseScheduler(DatabaseScheduler):
    """Writes the `beat` heartbeat at most once a heartbeat period: beat ticks every few seconds."""

    _recorded_at = None

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
