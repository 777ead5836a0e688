"""When a bot's cycles are due: the slot a moment falls in, the bot's offset into each period, its next due
moment, and the bounds on a slot that is late or a run that is stale. Below the cycle, the tasks, the
dispatcher and the bot actions, which all read it, so that none of them imports another for it."""

from datetime import UTC, datetime, timedelta

from django.conf import settings

from market.sources import Market

from .models import Bot

# A slot that could not start within this share of its period is skipped, not run late: a decision on
# stale candles is worse than none, and the next slot comes soon.
LATE_SHARE = 0.5
# A run RUNNING for longer than this died with its worker, so a redelivered task may take the slot over, and
# automation.recovery marks it failed. Celery's time limits do not hold on the io queue's thread pool; what
# does is the cycle's own: the analyst's and the chart's deadlines (automation.analysis.within) and the
# other steps' timeouts add up to well under it (docs/operations.md, "Deadlines").
STALE_RUN = timedelta(seconds=settings.CYCLE_STALE_RUN_SECONDS)


def slot_of(bot: Bot, moment: datetime) -> datetime:
    """Start of the timeframe period that contains `moment`."""
    period = Market(bot.exchange, bot.symbol, bot.timeframe).period
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return moment - (moment - epoch) % period


def prompt_window(moment: datetime) -> tuple[datetime, datetime]:
    """The refresh window of the prompt's learned section that `moment` (market time) falls in: PROMPT_REFRESH
    hours from the epoch on, so from midnight UTC with the default of 24 (automation.steps.prompt_section)."""
    length = timedelta(hours=settings.PROMPT_REFRESH_HOURS)
    start = moment - (moment - datetime(1970, 1, 1, tzinfo=UTC)) % length
    return start, start + length


def offset_of(bot: Bot) -> timedelta:
    """How far into each period the bot's cycle is due: whole minutes, stable per bot, spread evenly (a
    multiplicative hash of the id), so that a thousand bots do not call the analyst in the same second."""
    minutes = int(Market(bot.exchange, bot.symbol, bot.timeframe).period.total_seconds() // 60)
    return timedelta(minutes=(bot.pk * 2654435761) % 2**32 % minutes)


def next_due_after(bot: Bot, moment: datetime) -> datetime:
    """The first moment after `moment` at which one of the bot's slots is due (its start plus the offset)."""
    offset = offset_of(bot)
    return slot_of(bot, moment - offset) + offset + Market(bot.exchange, bot.symbol, bot.timeframe).period
