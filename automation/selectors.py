from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .models import Bot, Heartbeat


def worker_alive() -> bool | None:
    """True if beat and a worker ran the heartbeat lately, False if not, None if never seen."""
    beat = Heartbeat.objects.filter(name="worker").first()
    if beat is None:
        return None
    return timezone.now() - beat.seen_at < timedelta(seconds=3 * settings.WORKER_HEARTBEAT_SECONDS)


def own_bots(request):
    """The requesting user's bots: what an API filter may name (another user's bot is an invalid choice)."""
    if request is None or not request.user.is_authenticated:
        return Bot.objects.none()
    return Bot.objects.filter(owner=request.user)
