"""Whether the product is up: the database, the broker, a worker on each queue and beat.

Beat sends a heartbeat task on every queue the product uses (settings.HEARTBEAT_QUEUES) and the worker that
takes it records the time in a `Heartbeat` row named after the queue; beat records its own ticks in the row
`beat` (automation.beat). A row older than HEARTBEAT_STALE_SECONDS (three heartbeats) means that queue's
workers, or beat, are down. `/healthz` (tradingai.middleware) and the dashboard read them here."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from .models import Heartbeat

logger = logging.getLogger(__name__)

BEAT = "beat"


def queue_heartbeat(queue: str) -> str:
    """The name of the `Heartbeat` row of a queue's workers."""
    return f"queue:{queue}"


def heartbeat_names() -> list[str]:
    return [*(queue_heartbeat(queue) for queue in settings.HEARTBEAT_QUEUES), BEAT]


@dataclass(frozen=True)
class Beat:
    name: str
    seen_at: datetime | None  # None: never reported

    @property
    def label(self) -> str:
        """What the dashboard calls it."""
        if self.name == BEAT:
            return "beat (the scheduler)"
        return f"the {self.name.removeprefix('queue:')} queue's workers"

    def fresh(self, now: datetime) -> bool:
        bound = timedelta(seconds=settings.HEARTBEAT_STALE_SECONDS)
        return self.seen_at is not None and now - self.seen_at < bound


def heartbeats() -> list[Beat]:
    """Beat's and each queue's last heartbeat, in the order of `heartbeat_names`."""
    names = heartbeat_names()
    seen = dict(Heartbeat.objects.filter(name__in=names).values_list("name", "seen_at"))
    return [Beat(name, seen.get(name)) for name in names]


def record(name: str, detail: str = "") -> None:
    Heartbeat.objects.update_or_create(name=name, defaults={"seen_at": timezone.now(), "detail": detail})


def broker_reachable() -> bool:
    """One attempt to connect to the broker, bounded by the transport's connect timeout."""
    try:
        with current_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=0)
    except Exception as e:  # whatever the transport raises, the broker is not there
        logger.warning("the broker is unreachable: %s", e)
        return False
    return True


def health() -> tuple[bool, dict]:
    """Whether everything is up, and what `/healthz` answers: each part `ok` or `down`, the age of each
    heartbeat in seconds, and `down` naming what is down. Nothing about users."""
    now = timezone.now()
    body: dict = {"database": "ok", "broker": "ok" if broker_reachable() else "down", "heartbeats": {}}
    try:
        beats = heartbeats()
    except DatabaseError as e:
        logger.warning("the database is unreachable: %s", e)
        body["database"] = "down"
        beats = []
    for beat in beats:
        age = None if beat.seen_at is None else round((now - beat.seen_at).total_seconds())
        body["heartbeats"][beat.name] = {"ok": beat.fresh(now), "age_seconds": age}
    down = [part for part in ("database", "broker") if body[part] == "down"]
    down += [beat.name for beat in beats if not beat.fresh(now)]
    body["status"], body["down"] = ("down" if down else "ok"), down
    return not down, body


def background_down() -> list[str]:
    """What the dashboard names as down: the labels of the heartbeats gone stale; none before any was ever
    recorded (the background was never started, as in a fresh checkout before `make run`)."""
    beats = heartbeats()
    if all(beat.seen_at is None for beat in beats):
        return []
    now = timezone.now()
    return [beat.label for beat in beats if not beat.fresh(now)]
