"""A bot's paper account, derived from its trades: never stored, so it cannot drift from them."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import F, Q, Sum
from django.db.models.functions import Coalesce

from .models import Trade

ZERO = Decimal(0)


@dataclass(frozen=True)
class Account:
    equity: Decimal  # starting balance plus realised P&L (open positions at their entry value)
    cash: Decimal  # equity minus what open positions hold (notional and entry fee)
    open_trades: int  # with the live entries still PENDING


# A live entry written ahead of its order (trades.entries) holds its position as an open one does: the
# exchange may have filled it already, and a risk limit that did not count it would let a second one through.
HOLDING = Q(status__in=(Trade.Status.OPEN, Trade.Status.PENDING))


def account(bot) -> Account:
    totals = Trade.objects.filter(bot=bot).aggregate(
        realised=Coalesce(Sum("pnl", filter=Q(status=Trade.Status.CLOSED)), ZERO),
        held=Coalesce(Sum(F("price") * F("amount") + F("fees"), filter=HOLDING), ZERO),
        open_count=Coalesce(Sum(1, filter=HOLDING), 0),
    )
    equity = bot.starting_balance + totals["realised"]
    return Account(equity=equity, cash=equity - totals["held"], open_trades=totals["open_count"])


def day_loss(bot, since: datetime) -> Decimal:
    lost = Trade.objects.filter(
        bot=bot, status=Trade.Status.CLOSED, closed_at__gte=since, pnl__lt=0
    ).aggregate(total=Coalesce(Sum("pnl"), ZERO))["total"]
    return -lost


def losing_streak(bot) -> int:
    """Losses in a row among the bot's latest closed trades."""
    streak = 0
    for outcome in (
        Trade.objects.filter(bot=bot, status=Trade.Status.CLOSED)
        .order_by("-closed_at")
        .values_list("outcome", flat=True)[:20]
    ):
        if outcome != "LOSS":
            break
        streak += 1
    return streak
