"""State changes of bots, as Zulip does them: validation first, then the change under a row lock that
re-checks the state, so two callers racing on the same bot cannot both act."""

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import audit
from accounts.quotas import lock_user, room_for
from market.errors import MarketDataError, TemporaryMarketDataError, UnknownMarketError
from market.exchanges import CcxtCandles, has_stored_candles, is_ccxt_exchange
from market.sources import Market

from .models import AutomationSession, Bot, KillSwitch
from .notices import bot_paused
from .schedule import next_due_after

logger = logging.getLogger(__name__)


class BotActionError(Exception):
    """Why a bot cannot be started, stopped or run; the message is for the user."""


class QueueUnavailableError(BotActionError):
    """The task queue (the Celery broker) cannot be reached: nothing was sent, nothing changed."""


class RunNowLimitError(BotActionError):
    """The plan's run-now requests of the hour are used up; `retry_after`: seconds until one is free again."""

    def __init__(self, message: str, retry_after: int | None):
        super().__init__(message)
        self.retry_after = retry_after


def session_close(bot: Bot, reason: str) -> None:
    AutomationSession.objects.filter(bot=bot, stopped_at__isnull=True).update(
        stopped_at=timezone.now(), stop_reason=reason[:255]
    )


def bot_save(bot: Bot, before: tuple[str, bool] | None, *, actor) -> None:
    """Save the bot's settings, recording what changed about its live trading: its mode, and the owner's
    confirmation that it may place real orders. `before` is (mode, live_confirmed) as they were; None for a
    new bot."""
    mode, confirmed = before or (None, False)
    with transaction.atomic():
        if before is None:
            with room_for(bot.owner, "max_bots", Bot.objects.filter(owner=bot.owner)):
                bot.save()
        else:
            # Not the status it was read with: a pause (the daily loss limit) or a stop landing while the form
            # was filled in would be undone, leaving a RUNNING bot with no session and no schedule; nor the
            # next due moment, which the dispatcher moves on meanwhile.
            unchanged = ("id", "status", "next_due")
            bot.save(update_fields=[f.name for f in Bot._meta.concrete_fields if f.name not in unchanged])
        if bot.mode != mode and Bot.Mode.LIVE in (mode, bot.mode):
            was = f"switched from {Bot.Mode(mode).label} to" if mode else "created in"
            summary = f"Bot “{bot.name}” {was} {bot.get_mode_display()} on {bot.exchange}."
            _record_bot(bot, audit.Action.BOT_MODE_CHANGED, summary, actor, mode_before=mode, mode=bot.mode)
        if bot.live_confirmed and not confirmed:
            summary = f"Confirmed that bot “{bot.name}” may place real orders on {bot.exchange}."
            _record_bot(
                bot, audit.Action.LIVE_CONFIRMED, summary, actor, exchange_account_id=bot.exchange_account_id
            )
        elif confirmed and not bot.live_confirmed:
            summary = f"Withdrew the confirmation that bot “{bot.name}” may place real orders."
            _record_bot(bot, audit.Action.LIVE_CONFIRMATION_WITHDRAWN, summary, actor)


def _record_bot(bot: Bot, action: audit.Action, summary: str, actor, **details) -> None:
    audit.record(
        bot.owner, action, summary, actor=actor, bot_id=bot.pk, bot=bot.name, symbol=bot.symbol, **details
    )


def _record_live(bot: Bot, action: audit.Action, summary: str, actor, **details) -> None:
    """An audit event about a live bot; paper bots risk no money and are not recorded."""
    if bot.mode == Bot.Mode.LIVE:
        _record_bot(bot, action, summary, actor, **details)


def check_startable(bot: Bot) -> None:
    if bot.mode == Bot.Mode.LIVE:
        if not settings.LIVE_TRADING_ENABLED:
            raise BotActionError("Live trading is disabled on this server.")
        if bot.exchange_account is None or bot.exchange_account.owner_id != bot.owner_id:
            raise BotActionError("A live bot needs an exchange account of yours; add one and edit the bot.")
        if not bot.live_confirmed:
            raise BotActionError("Confirm on the bot's form that it may place real orders.")
    market = Market(bot.exchange, bot.symbol, bot.timeframe)
    if not (bot.mode == Bot.Mode.SIMULATION and has_stored_candles(bot.exchange, bot.symbol, bot.timeframe)):
        if not is_ccxt_exchange(bot.exchange):
            raise BotActionError(f"'{bot.exchange}' is not an exchange TradingAI can connect to.")
        try:
            # One candle: proves the exchange answers and lists the symbol.
            CcxtCandles(bot.exchange).candles(market, limit=1)
        except MarketDataError as e:
            # The user is told in words; the exchange's own message (a URL, an exception name) is for the log.
            logger.warning("bot %s not started: %s", bot.pk, e)
            raise BotActionError(_unstartable(bot, e)) from None
    _check_running_room(bot)


def _unstartable(bot: Bot, error: MarketDataError) -> str:
    if isinstance(error, TemporaryMarketDataError):
        return (
            f"{bot.exchange} did not answer just now: it may be down or busy, or this server cannot reach "
            f"it. The bot was not started; try again in a few minutes."
        )
    if isinstance(error, UnknownMarketError):
        return (
            f"{bot.symbol} cannot be traded on {bot.exchange}: the exchange does not list it. Check how the "
            f"exchange writes the pair (BASE/QUOTE, e.g. BTC/USDT)."
        )
    return f"{bot.symbol} cannot be traded on {bot.exchange}: the exchange refused to give its prices."


def _check_running_room(bot: Bot) -> None:
    running = Bot.objects.filter(owner=bot.owner, status=Bot.Status.RUNNING).exclude(pk=bot.pk).count()
    if running >= bot.owner.max_running_bots:
        raise BotActionError(
            f"Your plan runs at most {bot.owner.max_running_bots} bot(s) at once; stop one first."
        )


def bot_start(bot: Bot, *, actor=None) -> AutomationSession:
    """Open a session and set when the bot's first cycle is due: the dispatcher (automation.dispatch) sends
    it then, and each one after it. `actor`: who started it (the audit log's
    "who"), None for the platform."""
    check_startable(bot)
    with transaction.atomic():
        # Counted again under the owner's row lock: two bots started at once cannot both take the last place.
        lock_user(bot.owner)
        _check_running_room(bot)
        locked = Bot.objects.select_for_update().get(pk=bot.pk)
        if locked.status == Bot.Status.RUNNING:
            raise BotActionError(f"“{bot.name}” is already running.")
        locked.status = Bot.Status.RUNNING
        locked.next_due = next_due_after(locked, timezone.now())
        locked.save(update_fields=["status", "next_due", "updated_at"])
        session = AutomationSession.objects.create(bot=locked)
        _record_live(
            locked,
            audit.Action.LIVE_BOT_STARTED,
            f"Live bot “{bot.name}” started: it may place real orders on {bot.exchange}.",
            actor,
            session_id=session.pk,
            exchange_account_id=locked.exchange_account_id,
        )
    bot.status, bot.next_due = Bot.Status.RUNNING, locked.next_due
    return session


def bot_stop(bot: Bot, reason: str = "stopped by its owner", *, actor=None) -> None:
    with transaction.atomic():
        if (
            not Bot.objects.filter(pk=bot.pk)
            .exclude(status=Bot.Status.STOPPED)
            .update(status=Bot.Status.STOPPED, next_due=None)
        ):
            raise BotActionError(f"“{bot.name}” is not running.")
        session_close(bot, reason)
        _record_live(
            bot, audit.Action.LIVE_BOT_STOPPED, f"Live bot “{bot.name}” {reason}.", actor, reason=reason
        )
    bot.status, bot.next_due = Bot.Status.STOPPED, None


@transaction.atomic
def bot_pause(bot: Bot, reason: str, *, actor=None) -> bool:
    """Pause a running bot and close its session. False if it was not running. `actor`: None when the
    platform paused it (the daily loss limit), else the operator."""
    if not Bot.objects.filter(pk=bot.pk, status=Bot.Status.RUNNING).update(
        status=Bot.Status.PAUSED, next_due=None
    ):
        return False
    session_close(bot, reason)
    summary = f"Live bot “{bot.name}” paused: {reason}."
    _record_live(bot, audit.Action.LIVE_BOT_PAUSED, summary, actor, reason=reason)
    bot.status, bot.next_due = Bot.Status.PAUSED, None
    bot_paused(bot, reason)
    return True


def kill_switch_set(engaged: bool, reason: str, *, actor=None) -> KillSwitch:
    """Engage or disengage the platform's kill switch (one row, created when first set); `actor` is the
    operator, recorded in the audit log with an event of no one account (the switch concerns all)."""
    with transaction.atomic():
        switch = KillSwitch.objects.select_for_update().order_by("pk").first() or KillSwitch()
        switch.engaged = engaged
        switch.reason = reason
        switch.save()
        if not engaged:
            # KillSwitch.is_engaged() looks at every row, so a stray second row must not keep trading halted.
            KillSwitch.objects.exclude(pk=switch.pk).update(engaged=False)
        audit.record(
            None,
            audit.Action.KILL_SWITCH_ENGAGED if engaged else audit.Action.KILL_SWITCH_RELEASED,
            f"Platform kill switch {'engaged' if engaged else 'released'}: {reason}",
            actor=actor,
            reason=reason,
        )
    return switch
