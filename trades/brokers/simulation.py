"""Paper trading: fills at the market price moved against the order by the slippage, with the taker fee.
The balance is not stored anywhere: it is derived from the bot's trades (trades.accounting)."""

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from ..outcomes import Costs
from .base import BrokerError, Fill, OrderRequest


def paper_costs() -> Costs:
    """What paper fills cost: the paper broker's, the monitor's exit fee and the scoring of untraded calls
    (learning.resolution) all read them here."""
    return Costs(fee_pct=settings.SIMULATION_FEE_PCT, slippage_pct=settings.SIMULATION_SLIPPAGE_PCT)


class SimulationBroker:
    def __init__(
        self,
        cash: Decimal,
        *,
        at: datetime | None = None,
        slippage_pct: Decimal | None = None,
        fee_pct: Decimal | None = None,
    ):
        self.cash = cash
        self.at = at  # the market clock: a replay fills at the slot's time, not the wall clock's
        costs = paper_costs()
        self.costs = Costs(
            fee_pct=costs.fee_pct if fee_pct is None else fee_pct,
            slippage_pct=costs.slippage_pct if slippage_pct is None else slippage_pct,
        )

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
