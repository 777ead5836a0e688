"""Real orders: market orders through ccxt with the owner's exchange account.

Idempotency is the broker's own. Binance keeps a client order id unique among open orders only, and a market
order fills at once: the same id sent twice fills twice. So the order is looked up by its client order id
before it is placed, and again whenever placing it ended without an answer (a timeout, a lost connection),
when it may have gone through all the same. A found order's fill is returned instead of placing another;
when the exchange cannot tell, the caller gets BrokerTemporaryError and retries with the same id later.

Stop-loss and take-profit go on the exchange where it takes a one-cancels-the-other pair for the market
(Binance spot: an OCO order list, a LIMIT_MAKER target and a STOP_LOSS stop that turns into a market order
when touched), placed once the entry has filled, under a list client id derived from the entry's, found
again the same way. Elsewhere, or when the exchange refuses the pair, the monitor watches the levels.

ccxt itself stays in market.exchanges: this module calls the client only inside its error boundary."""

import contextlib
import dataclasses
import logging
from dataclasses import astuple
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings

from accounts.models import ExchangeAccount
from core.values import Side
from market import exchanges
from market.errors import MarketDataError, OrderNotFoundError, TemporaryMarketDataError

from .base import BrokerError, BrokerTemporaryError, Fill, OrderRequest

logger = logging.getLogger(__name__)


def protection_id(client_order_id: str) -> str:
    """The client id of the order list protecting the position an order opened."""
    return f"{client_order_id}-oco"


@dataclasses.dataclass(frozen=True)
class Protection:
    """Where a position's order list on the exchange stands: a leg filled (its exit reason and fill),
    both legs resting, or neither (cancelled on the exchange, say): then nothing protects the position."""

    resting: bool
    exit_reason: str = ""
    fill: Fill | None = None


class LiveBroker:
    """Places orders for one ExchangeAccount, and the stop-loss and take-profit with them where the
    exchange can hold them (see the module's note)."""

    def __init__(self, account: ExchangeAccount, *, client=None):
        self.exchange_id = account.exchange
        self.client = client or exchanges.account_client(account)
        self._secrets = tuple(value for value in astuple(account.credentials()) if value)

    def place(self, order: OrderRequest) -> Fill:
        if not settings.LIVE_TRADING_ENABLED:
            raise BrokerError("live trading is switched off on this platform (TRADINGAI_LIVE_TRADING)")
        with self._broker_errors():
            return self._protected(order, self._place(order))

    def settle(self, order: OrderRequest) -> Fill | None:
        """The fill of an order sent before under its client order id, protected as `place` leaves it; None
        if the exchange does not have it. Never places the order: a decision whose cycle ended is stale."""
        with self._broker_errors():
            placed = self._find(order)
            if placed is None:
                return None
            if not _decimal(placed["filled"]):
                if placed["status"] == "open":
                    raise BrokerTemporaryError(f"order {order.client_order_id} is not filled yet")
                return None  # it ended unfilled (expired, cancelled, rejected): no position came of it
            return self._protected(order, self._fill(placed, self._market(order.symbol)))

    def _protected(self, order: OrderRequest, fill: Fill) -> Fill:
        if order.stop_loss is None or order.take_profit is None:
            return fill
        return self._protect(order, fill)

    def protection(self, symbol: str, client_order_id: str) -> Protection:
        """The state of the order list protecting the position opened by `client_order_id`."""
        with self._broker_errors():
            market = self._market(symbol)
            listed = self._find_list(protection_id(client_order_id))
            if listed is None:
                return Protection(resting=False)
            with self._boundary():
                legs = [self.client.fetch_order(str(leg["orderId"]), symbol) for leg in listed["orders"]]
            for leg in legs:
                if leg["status"] == "closed":  # ccxt's name for FILLED
                    reason = "TAKE_PROFIT" if leg["clientOrderId"].endswith("-tp") else "STOP_LOSS"
                    return Protection(resting=False, exit_reason=reason, fill=self._fill(leg, market))
            return Protection(resting=any(leg["status"] == "open" for leg in legs))

    def cancel_protection(self, symbol: str, client_order_id: str) -> None:
        """Cancel the order list protecting the position, before closing it another way."""
        with self._broker_errors(), self._boundary():
            self.client.private_delete_orderlist(
                {"symbol": self._market(symbol)["id"], "listClientOrderId": protection_id(client_order_id)}
            )

    @contextlib.contextmanager
    def _broker_errors(self):
        try:
            yield
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

    def _protect(self, order: OrderRequest, fill: Fill) -> Fill:
        """The filled position's stop-loss and take-profit placed on the exchange as an OCO list, if the
        market takes one; `fill` as it is (watched by the monitor) if not, or if the exchange refuses it."""
        market = self._market(order.symbol)
        if not (
            hasattr(self.client, "private_post_orderlist_oco")
            and market.get("spot")
            and market["info"].get("ocoAllowed")
        ):
            return fill
        list_id = protection_id(order.client_order_id)
        if self._find_list(list_id) is None:
            try:
                with self._boundary():
                    self.client.private_post_orderlist_oco(self._oco(order, fill, market, list_id))
            except TemporaryMarketDataError as e:
                # As with the entry: the list may have reached the exchange; only a lookup can tell.
                if self._find_list(list_id) is None:
                    raise BrokerTemporaryError(
                        f"whether the stop-loss and take-profit of {order.client_order_id} were placed is "
                        f"unknown: {e}"
                    ) from e
            except MarketDataError as e:
                # Refused (binance answers some of its OCO rules as a bad request, not an invalid order).
                # The position is open either way; the monitor closes it at the levels instead.
                logger.warning("%s refused protecting %s: %s", self.exchange_id, order.client_order_id, e)
                return fill
        return dataclasses.replace(fill, protection_id=list_id)

    def _oco(self, order: OrderRequest, fill: Fill, market: dict[str, Any], list_id: str) -> dict[str, str]:
        """Binance's OCO parameters closing the position: the opposite side, what the account holds, the
        target as a LIMIT_MAKER and the stop as a STOP_LOSS, each above or below the price as it falls."""
        symbol = order.symbol
        with self._boundary():
            quantity = self.client.amount_to_precision(symbol, str(fill.amount - fill.base_fee))
            target = self.client.price_to_precision(symbol, str(order.take_profit))
            stop = self.client.price_to_precision(symbol, str(order.stop_loss))
        legs = {
            "tp": {"Type": "LIMIT_MAKER", "Price": target},
            "sl": {"Type": "STOP_LOSS", "StopPrice": stop},
        }
        # A long's target is above the price and its stop below; a short's the other way round.
        above, below = ("tp", "sl") if order.side == Side.BUY else ("sl", "tp")
        params = {
            "symbol": market["id"],
            "side": "SELL" if order.side == "BUY" else "BUY",
            "quantity": quantity,
            "listClientOrderId": list_id,
            "aboveClientOrderId": f"{order.client_order_id}-{above}",
            "belowClientOrderId": f"{order.client_order_id}-{below}",
        }
        for position, leg in (("above", above), ("below", below)):
            params.update({f"{position}{key}": value for key, value in legs[leg].items()})
        return params

    def _find_list(self, list_id: str) -> dict[str, Any] | None:
        try:
            with self._boundary():
                return self.client.private_get_orderlist({"origClientOrderId": list_id})
        except OrderNotFoundError:
            return None

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
        fee, base_fee = self._fee(placed, market, price)
        return Fill(
            price=price,
            amount=amount,
            fee=fee,
            base_fee=base_fee,
            exchange_order_id=str(placed["id"]),
            # When it filled: a resting order's last change, else when it was placed.
            filled_at=datetime.fromtimestamp(
                (placed.get("lastUpdateTimestamp") or placed["timestamp"]) / 1000, tz=UTC
            ),
        )

    def _fee(self, placed: dict[str, Any], market: dict[str, Any], price: Decimal) -> tuple[Decimal, Decimal]:
        """The fees charged for the order in the quote currency, and the part of them paid in the base."""
        fees = placed.get("fees")
        if not fees and self.client.has.get("fetchOrderTrades"):
            # A looked-up order comes without its fees: binance reports them with each trade only.
            with self._boundary():
                trades = self.client.fetch_order_trades(placed["id"], market["symbol"])
            fees = [trade["fee"] for trade in trades if trade.get("fee")]
        total = base = Decimal(0)
        for fee in fees or ():
            cost = _decimal(fee["cost"]) or Decimal(0)
            if fee["currency"] == market["quote"]:
                total += cost
            elif fee["currency"] == market["base"]:
                # At the average price: a fee proportional to each trade's amount sums to the same.
                total += cost * price
                base += cost
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
        return total, base


def _decimal(number: float | str | None) -> Decimal | None:
    # Through str: Decimal(0.1) would carry the float's binary error.
    return None if number is None else Decimal(str(number))
