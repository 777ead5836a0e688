"""Telling a user about an event: `notify` records it and sends it on each of their channels, once the
transaction that raised it commits (a rolled-back trade close tells nobody), one Celery task per channel
(tasks.deliver_task). The apps above call it directly (automation: a cycle failed, a bot paused, the
spending cap); trades' events arrive as signals (receivers.py), since trades sits below this app."""

import logging
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from .events import SWITCHABLE, Event
from .models import Channel, Delivery, EventSwitch, Notification
from .tasks import deliver_task

logger = logging.getLogger(__name__)

# A delivery still QUEUED this long after it was written never reached the broker (it was down when the
# event committed: _send sends robustly, so as not to fail the cycle). Long enough that a task merely waiting
# behind a busy io queue is rarely sent twice; a receiver may still see a repeat (docs/notifications.md).
STUCK_AFTER = timedelta(minutes=30)


def is_on(user, event: str) -> bool:
    return not EventSwitch.objects.filter(user=user, event=event, enabled=False).exists()


def switches_of(user) -> dict[str, bool]:
    off = set(EventSwitch.objects.filter(user=user, enabled=False).values_list("event", flat=True))
    return {event: event not in off for event in SWITCHABLE}


def switches_set(user, enabled: dict[str, bool]) -> None:
    for event, on in enabled.items():
        EventSwitch.objects.update_or_create(user=user, event=event, defaults={"enabled": on})


def notify(user, event: str, title: str, text: str, data: dict | None = None, *, key: str = ""):
    """Tell `user` about `event` on every channel they have, if its switch is on; with `key`, at most once
    per (user, event, key). Returns the Notification, or None when nothing is sent. Never raises: a
    notification that cannot be recorded is logged, and must not undo the trade or the run it is about,
    so its rows are written in a savepoint."""
    try:
        with transaction.atomic():
            return _notify(user, event, title, text, data or {}, key)
    except Exception:
        logger.exception("notification %s for user %s not recorded", event, user.pk)
        return None


def _notify(user, event, title, text, data, key):
    # Channels first: most users have none, and each trade would otherwise cost them two queries.
    channels = list(Channel.objects.filter(owner=user))
    if not channels or not is_on(user, event):
        return None
    if key and Notification.objects.filter(user=user, event=event, key=key).exists():
        return None
    try:
        with transaction.atomic():
            notification = Notification.objects.create(
                user=user, event=event, title=title[:200], text=text, data=data, key=key
            )
    except IntegrityError:
        return None  # told already, by a cycle that found the same cap at the same moment
    _send(notification, channels)
    return notification


def send_test_message(channel: Channel) -> Notification:
    """A test message to one channel, whatever the switches say."""
    with transaction.atomic():
        notification = Notification.objects.create(
            user=channel.owner,
            event=Event.TEST,
            title="TradingAI test message",
            text=f"This is a test of your channel “{channel.label}”. Notifications will arrive here.",
        )
        _send(notification, [channel])
    return notification


def _send(notification: Notification, channels: list[Channel]) -> None:
    ids = [
        Delivery.objects.create(
            user=notification.user,
            notification=notification,
            channel=channel,
            channel_label=channel.label,
            kind=channel.kind,
        ).pk
        for channel in channels
    ]
    # robust: a broker that is down must not fail the cycle that committed the trade; the delivery stays
    # QUEUED in the log, which says so.
    for pk in ids:
        transaction.on_commit(lambda pk=pk: deliver_task.delay(pk), robust=True)


def requeue_stuck(now=None) -> int:
    """Send again the task of each delivery left QUEUED past STUCK_AFTER; returns how many. Each is claimed
    by a compare-and-swap on its `updated_at`, so two sweeps at once send it once."""
    now = now or timezone.now()
    cutoff = now - STUCK_AFTER
    stuck = Delivery.objects.filter(status=Delivery.Status.QUEUED, updated_at__lt=cutoff)
    sent = 0
    for pk in stuck.order_by("pk").values_list("pk", flat=True)[:1000]:
        if Delivery.objects.filter(pk=pk, status=Delivery.Status.QUEUED, updated_at__lt=cutoff).update(
            updated_at=now
        ):
            transaction.on_commit(lambda pk=pk: deliver_task.delay(pk), robust=True)
            sent += 1
    return sent
