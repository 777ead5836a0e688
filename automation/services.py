"""State changes of bots. Each one is a compare-and-swap on the status, so two callers racing on the
same bot cannot both act: only the one whose update matched a row goes on."""

from django.db import transaction
from django.utils import timezone

from .models import AutomationSession, Bot


def session_close(bot: Bot, reason: str) -> None:
    AutomationSession.objects.filter(bot=bot, stopped_at__isnull=True).update(
        stopped_at=timezone.now(), stop_reason=reason[:255]
    )


@transaction.atomic
def bot_pause(bot: Bot, reason: str) -> bool:
    """Pause a running bot and close its session. False if it was not running."""
    if not Bot.objects.filter(pk=bot.pk, status=Bot.Status.RUNNING).update(status=Bot.Status.PAUSED):
        return False
    session_close(bot, reason)
    bot.status = Bot.Status.PAUSED
    return True
