"""What a broker is: it fills an order and says at what price, amount and fee. The simulation broker fills
on paper; the live broker sends the order to the exchange through ccxt. Both take the same OrderRequest,
whose client order id is derived from the cycle run, so a retry can find an order already placed."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

Side = Literal["BUY", "SELL"]


@dataclass(frozen=True)
class OrderRequest:
    symbol: str
    side: Side
    amount: Decimal  # base currency
    price: Decimal  # the market price the decision was made at (a reference: market orders fill near it)
    client_order_id: str  # stable per cycle run and purpose ("open" / "close"): the idempotency key
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None


@dataclass(frozen=True)
class Fill:
    price: Decimal  # average fill price
    amount: Decimal  # base currency actually filled
    fee: Decimal  # in the quote currency
    exchange_order_id: str
    filled_at: datetime
    # Of `fee`, what the exchange took from the bought base currency (Binance's commission on a buy): the
    # account holds `amount - base_fee`, and only that can be sold again.
    base_fee: Decimal = Decimal(0)
    # The client id of the one-cancels-the-other pair holding the stop-loss and take-profit on the exchange,
    # or "" when the monitor watches them.
    protection_id: str = ""

    @property
    def protected_on_exchange(self) -> bool:
        return bool(self.protection_id)


class Broker(Protocol):
    def place(self, order: OrderRequest) -> Fill:
        """Fill `order` as a market order. Placing the same client_order_id twice fills it once."""
        ...


class SettlingBroker(Broker, Protocol):
    """A broker whose orders live elsewhere (an exchange), so that one sent before can be looked up."""

    def settle(self, order: OrderRequest) -> Fill | None:
        """The fill of an order placed before under `order.client_order_id`, or None if it never was or it
        ended unfilled."""
        ...


class BrokerError(Exception):
    """The order was not filled and will not be by trying again: rejected, too small, no funds."""


class BrokerTemporaryError(BrokerError):
    """The exchange could not be reached or answered late; whether the order exists is unknown until the
    same client order id is looked up again."""
