"""Real orders: market orders through ccxt with the owner's exchange account.

Idempotency is the broker's own. Binance keeps a client order id unique among open orders only, and a market
order fills at once: the same id sent twice fills twice. So the order is looked up by its client order id
before it is placed, and again whenever placing it ended without an answer (a timeout, a lost connection),
when it may have gone through all the same. A found order's fill is returned instead of placing another;
when the exchange cannot tell, the caller gets BrokerTemporaryError and retries with the same id later.

ccxt itself stays in market.exchanges: this module calls the client only inside its error boundary."""

import logging
from dataclasses import astuple
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings

from accounts.models import ExchangeAccount
from market import exchanges
from market.errors import MarketDataError, OrderNotFoundError, TemporaryMarketDataError

from .base import BrokerError, BrokerTemporaryError, Fill, OrderRequest

logger = logging.getLogger(__name__)


class LiveBroker:
    """Places orders for one ExchangeAccount. Stop-loss and take-profit are not placed on the exchange
    (every Fill says protected_on_exchange=False): the monitor watches them."""

    def __init__(self, account: ExchangeAccount, *, client=None):
        self.exchange_id = account.exchange
        self.client = client or exchanges.account_client(account)
        self._secrets = tuple(value for value in astuple(account.credentials()) if value)

    def place(self, order: OrderRequest) -> Fill:
        if not settings.LIVE_TRADING_ENABLED:
            raise BrokerError("live trading is switched off on this platform (TRADINGAI_LIVE_TRADING)")
        try:
            return self._place(order)
        except TemporaryMarketDataError as e:
            raise BrokerTemporaryError(str(e)) from e
        except MarketDataError as e:
            raise BrokerError(str(e)) from e

    def _place(self, order: OrderRequest) -> Fill:
        market = self._market(order.symbol)
        amount = self._amount(order, market)
        placed = self._find(order)
        if placed:
            logger.info("%s order %s was placed before: not placing it again", self.exchange_id, placed["id"])
            return self._fill(placed, market)
        try:
            with self._boundary():
                placed = self.client.create_order(
                    order.symbol,
                    "market",
                    order.side.lower(),
                    float(amount),
                    None,
                    # binance sends it as newClientOrderId
                    {"clientOrderId": order.client_order_id},
                )
        except TemporaryMarketDataError as e:
            # The order may have reached the exchange before the answer was lost.
            try:
                placed = self._find(order)
            except TemporaryMarketDataError as lookup_error:
                raise BrokerTemporaryError(
                    f"whether order {order.client_order_id} was placed is unknown: {e}; "
                    f"looking it up failed too: {lookup_error}"
                ) from e
            if placed is None:
                # Not visible yet is not proof of absence: placing again now could fill it twice.
                raise BrokerTemporaryError(
                    f"order {order.client_order_id} is not on {self.exchange_id} after placing it failed: {e}"
                ) from e
        return self._fill(placed, market)

    def _boundary(self):
        return exchanges.ccxt_errors(self.exchange_id, secrets=self._secrets)

    def _market(self, symbol: str) -> dict[str, Any]:
        with self._boundary():
            markets = self.client.load_markets()  # cached on the client after the first call
        if symbol not in markets:
            raise BrokerError(f"{self.exchange_id} has no market '{symbol}'")
        return markets[symbol]

    def _amount(self, order: OrderRequest, market: dict[str, Any]) -> Decimal:
        """The amount rounded down to the market's precision, if the exchange's minimums allow the order."""
        limits = market["limits"]
        base, quote = market["base"], market["quote"]
        least = _decimal(limits["amount"]["min"])
        # Checked before rounding, which truncates to the amount step: exchanges set the minimum on a step
        # (Binance's LOT_SIZE filter requires it), so an amount at the minimum stays at it.
        if least is not None and order.amount < least:
            raise BrokerError(
                f"{order.amount:f} {base} is below the minimum order amount on {order.symbol}, "
                f"{least.normalize():f} {base}"
            )
        with self._boundary():
            amount = Decimal(self.client.amount_to_precision(order.symbol, str(order.amount)))
        least_value = _decimal(limits["cost"]["min"])
        value = amount * order.price
        if least_value is not None and value < least_value:
            raise BrokerError(
                f"{amount:f} {base} at {order.price:f} is worth {value:f} {quote}, below the minimum order "
                f"value on {order.symbol}, {least_value.normalize():f} {quote}"
            )
        return amount

    def _find(self, order: OrderRequest) -> dict[str, Any] | None:
        """The order placed with this client order id, if any."""
        try:
            with self._boundary():
                # binance asks for it as origClientOrderId; the order id is not needed then.
                return self.client.fetch_order(None, order.symbol, {"clientOrderId": order.client_order_id})
        except OrderNotFoundError:
            return None

    def _fill(self, placed: dict[str, Any], market: dict[str, Any]) -> Fill:
        amount = _decimal(placed["filled"])
        if not amount:
            raise BrokerError(f"{self.exchange_id} order {placed['id']} did not fill: {placed['status']}")
        price = _decimal(placed["average"])
        return Fill(
            price=price,
            amount=amount,
            fee=self._fee(placed, market, price),
            exchange_order_id=str(placed["id"]),
            filled_at=datetime.fromtimestamp(placed["timestamp"] / 1000, tz=UTC),
        )

    def _fee(self, placed: dict[str, Any], market: dict[str, Any], price: Decimal) -> Decimal:
        """The fees charged for the order, in the quote currency."""
        fees = placed.get("fees")
        if not fees and self.client.has.get("fetchOrderTrades"):
            # A looked-up order comes without its fees: binance reports them with each trade only.
            with self._boundary():
                trades = self.client.fetch_order_trades(placed["id"], market["symbol"])
            fees = [trade["fee"] for trade in trades if trade.get("fee")]
        total = Decimal(0)
        for fee in fees or ():
            cost = _decimal(fee["cost"]) or Decimal(0)
            if fee["currency"] == market["quote"]:
                total += cost
            elif fee["currency"] == market["base"]:
                # At the average price: a fee proportional to each trade's amount sums to the same.
                total += cost * price
            else:
                logger.warning(
                    "%s order %s: a fee of %s %s is not counted (paid in neither %s nor %s)",
                    self.exchange_id,
                    placed["id"],
                    cost,
                    fee["currency"],
                    market["base"],
                    market["quote"],
                )
        return total


def _decimal(number: float | str | None) -> Decimal | None:
    # Through str: Decimal(0.1) would carry the float's binary error.
    return None if number is None else Decimal(str(number))
