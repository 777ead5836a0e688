"""Paper trading: fills at the market price moved against the order by the slippage, with the taker fee.
The balance is not stored anywhere: it is derived from the bot's trades (trades.accounting)."""

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from core.values import Side

from .base import BrokerError, Fill, OrderRequest

PRICE_STEP = Decimal("0.000000000001")


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
        self.slippage = (settings.SIMULATION_SLIPPAGE_PCT if slippage_pct is None else slippage_pct) / 100
        self.fee_rate = (settings.SIMULATION_FEE_PCT if fee_pct is None else fee_pct) / 100

    def place(self, order: OrderRequest) -> Fill:
        direction = 1 if order.side == Side.BUY else -1
        price = (order.price * (1 + direction * self.slippage)).quantize(PRICE_STEP)
        notional = price * order.amount
        fee = (notional * self.fee_rate).quantize(PRICE_STEP)
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
