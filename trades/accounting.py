"""A bot's paper account, derived from its trades: never stored, so it cannot drift from them."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Q, Sum
from django.db.models.functions import Coalesce

from core.values import Outcome

from .models import Trade

ZERO = Decimal(0)


@dataclass(frozen=True)
class Account:
    equity: Decimal  # starting balance plus realised P&L (open positions at their entry value)
    cash: Decimal  # equity minus what open positions hold (notional and entry fee)
    open_trades: int  # with the live entries still PENDING


# A live entry written ahead of its order (trades.entries) holds its position as an open one does: the
# exchange may have filled it already, and a risk limit that did not count it would let a second one through.
HELD = (Trade.Status.OPEN, Trade.Status.PENDING)
HOLDING = Q(status__in=HELD)


# The losing streak is counted among this many latest closed trades.
STREAK_WINDOW = 20


def account_of(starting_balance: Decimal, realised: Decimal, holding) -> Account:
    """The account from its figures, wherever they are kept (the database, a replay's books): the closed
    trades' realised P&L and the (price, amount, fees) of the positions held."""
    equity = starting_balance + realised
    held = sum((price * amount + fees for price, amount, fees in holding), ZERO)
    return Account(equity=equity, cash=equity - held, open_trades=len(holding))


def loss_of(pnls) -> Decimal:
    """The realised losses among `pnls`, as a positive amount."""
    return -sum((pnl for pnl in pnls if pnl < 0), ZERO)


def streak_of(outcomes) -> int:
    """Losses in a row at the head of `outcomes`, the latest closed trades' outcomes, newest first."""
    streak = 0
    for outcome in outcomes:
        if outcome != Outcome.LOSS:
            break
        streak += 1
    return streak


def realised(bot) -> Decimal:
    return Trade.objects.filter(bot=bot, status=Trade.Status.CLOSED).aggregate(
        total=Coalesce(Sum("pnl"), ZERO)
    )["total"]


def holding(bot) -> list[tuple[Decimal, Decimal, Decimal]]:
    return list(Trade.objects.filter(HOLDING, bot=bot).values_list("price", "amount", "fees"))


def account(bot) -> Account:
    return account_of(bot.starting_balance, realised(bot), holding(bot))


def closed_pnls(bot, since: datetime) -> list[Decimal]:
    return list(
        Trade.objects.filter(bot=bot, status=Trade.Status.CLOSED, closed_at__gte=since).values_list(
            "pnl", flat=True
        )
    )


def latest_outcomes(bot) -> list[str]:
    return list(
        Trade.objects.filter(bot=bot, status=Trade.Status.CLOSED)
        .order_by("-closed_at")
        .values_list("outcome", flat=True)[:STREAK_WINDOW]
    )
