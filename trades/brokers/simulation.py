"""Paper trading: fills at the market price moved against the order by the slippage, with the taker fee, at
the market's costs (`paper_costs`). The balance is not stored anywhere: it is derived from the bot's trades
(trades.accounting)."""

import time
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.utils import timezone

from market.costs import MarketCosts, costs_of

from ..outcomes import Costs
from .base import BrokerError, Fill, OrderRequest

if TYPE_CHECKING:
    from accounts.models import ExchangeAccount

# A replay reads a market's costs some thousand times a second, a live cycle a few times an hour: read once a
# minute per process, so that costs changed in the admin or by an import apply within that minute.
COSTS_CACHE_SECONDS = 60
_cached: dict[tuple, tuple[float, MarketCosts]] = {}


def market_costs(exchange: str, symbol: str, account: "ExchangeAccount | None" = None) -> MarketCosts:
    """The market's costs as market.costs says (with the account's fee tier, for an account's bot), read at
    most once a minute per process."""
    key = (exchange, symbol, account.pk if account else None)
    now = time.monotonic()
    found = _cached.get(key)
    if found is None or now - found[0] > COSTS_CACHE_SECONDS:
        found = _cached[key] = (now, costs_of(exchange, symbol, account=account))
    return found[1]


def paper_costs(exchange: str, symbol: str, account: "ExchangeAccount | None" = None) -> Costs:
    """What paper fills on the market cost: the paper broker's, the monitor's exits and the scoring of
    untraded calls (learning.resolution) all read them here."""
    costs = market_costs(exchange, symbol, account)
    return Costs(fee_pct=costs.fee_pct, slippage_pct=costs.slippage_pct)


class SimulationBroker:
    def __init__(self, cash: Decimal, costs: Costs, *, at: datetime | None = None):
        self.cash = cash
        self.costs = costs
        self.at = at  # the market clock: a replay fills at the slot's time, not the wall clock's

    def place(self, order: OrderRequest) -> Fill:
        price = self.costs.fill_price(order.side, order.price)
        notional = price * order.amount
        fee = self.costs.fee(price, order.amount)
        # A paper short reserves its notional like a purchase would: the balance can never go negative.
        if notional + fee > self.cash:
            raise BrokerError(
                f"the order needs {notional + fee:.2f} and the paper balance has {self.cash:.2f}"
            )
        return Fill(
            price=price,
            amount=order.amount,
            fee=fee,
            exchange_order_id=f"paper-{order.client_order_id}",
            filled_at=self.at or timezone.now(),
        )
