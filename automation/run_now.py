"""Run-now: the cycle of the current period queued at once, counted against the owner's plan. Above the
tasks it sends, apart from the other bot actions (services), which the cycle itself uses."""

import logging
import math
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnreachableError

from accounts.quotas import lock_user, quotas_of

from .models import Bot, CycleRun, RunNowRequest
from .schedule import slot_of
from .services import BotActionError, QueueUnavailableError, RunNowLimitError
from .tasks import run_cycle_task

logger = logging.getLogger(__name__)

# Run-now requests are counted over the last hour, not per clock hour, so a burst cannot straddle the hour.
RUN_NOW_WINDOW = timedelta(hours=1)


def bot_run_now(bot: Bot) -> str:
    """Queue the cycle of the current period at once; returns the slot's ISO time."""
    if bot.status != Bot.Status.RUNNING:
        raise BotActionError(f"Start “{bot.name}” first; run-now runs a running bot's cycle at once.")
    slot = slot_of(bot, timezone.now())
    if CycleRun.objects.filter(bot=bot, slot=slot).exists():
        raise BotActionError(
            f"The cycle for {slot:%Y-%m-%d %H:%M} UTC has already run; the next one is due soon."
        )
    asked = _count_run_now(bot)

    def send():
        try:
            run_cycle_task.delay(bot.pk, slot.isoformat())
        except BrokerUnreachableError as e:
            # Nothing was claimed or written, so the owner may simply press again, and it does not count.
            RunNowRequest.objects.filter(pk=asked.pk).delete()
            logger.warning("run-now of bot %s: the broker is unreachable: %s", bot.pk, e)
            raise QueueUnavailableError(
                "The task queue cannot be reached just now, so the cycle was not started; nothing was "
                "changed. Try again in a minute."
            ) from e

    transaction.on_commit(send)
    return slot.isoformat()


def _count_run_now(bot: Bot) -> RunNowRequest:
    """Count a run-now against the owner's plan: by user, whatever the bot's state, so that starting,
    running now and stopping bot after bot runs no more cycles an hour than the plan allows."""
    now = timezone.now()
    with transaction.atomic():
        cap = quotas_of(lock_user(bot.owner)).run_now_per_hour
        if cap == 0:
            raise RunNowLimitError("Your plan has no run-now; the bot's cycles run on its schedule.", None)
        recent = RunNowRequest.objects.filter(user_id=bot.owner_id, at__gt=now - RUN_NOW_WINDOW)
        times = list(recent.order_by("-at").values_list("at", flat=True)[:cap])
        if len(times) >= cap:
            # A place is free again once the oldest of the last `cap` requests is an hour old.
            wait = max(1, math.ceil((times[-1] + RUN_NOW_WINDOW - now).total_seconds()))
            raise RunNowLimitError(
                f"Your plan allows {cap} run-now request(s) an hour and they are used up; the next is "
                f"possible in {math.ceil(wait / 60)} minute(s). The bot's scheduled cycles run as usual.",
                wait,
            )
        return RunNowRequest.objects.create(user_id=bot.owner_id, bot=bot, at=now)
