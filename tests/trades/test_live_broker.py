"""LiveBroker with the real ccxt client, over real HTTP, against a Binance stand-in."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.factories import ExchangeAccountFactory
from tests.stand_ins.exchange_server import (
    INSUFFICIENT_BALANCE,
    INVALID_API_KEY,
    LISTINGS,
    OCO,
    ORDER,
    PRICES_OUT_OF_ORDER,
    UNAVAILABLE,
    price_now,
)
from trades.brokers.base import BrokerError, BrokerTemporaryError, OrderRequest
from trades.brokers.live import LiveBroker

from .conftest import API_KEY, SECRET

BTCUSDT = LISTINGS[0]
# Longer than the client's timeout (1 s): the exchange fills the order, the client has given up.
LATE = 1.5


def btc_order(side="BUY", amount="0.0012345", client_order_id="tai-7-open") -> OrderRequest:
    return OrderRequest(
        symbol="BTC/USDT",
        side=side,
        amount=Decimal(amount),
        price=price_now(BTCUSDT),
        client_order_id=client_order_id,
    )


def posts(stand_in):
    return [request for request in stand_in.requests_to(ORDER) if request.method == "POST"]


def average(placed) -> Decimal:
    # As the exchange reports it: the order's value, to 8 decimals, by its amount. Near the trade's price.
    return placed.quote_quantity / placed.quantity


def assert_is_fill_of(fill, placed):
    assert fill.price == pytest.approx(average(placed), rel=Decimal("1e-15"))  # ccxt hands it over as a float
    assert fill.price == pytest.approx(placed.price, rel=Decimal("1e-9"))
    assert fill.amount == placed.quantity
    assert fill.exchange_order_id == str(placed.order_id)
    assert fill.filled_at == datetime.fromtimestamp(placed.time_ms / 1000, tz=UTC)
    assert fill.protected_on_exchange is False


@pytest.mark.parametrize(
    ("side", "commission_asset", "fee_in_quote"),
    [
        # Binance charges a buy in the base currency: the fee is converted at the average price.
        ("BUY", "BTC", lambda placed: placed.commission * average(placed)),
        ("SELL", "USDT", lambda placed: placed.commission),
    ],
)
def test_a_market_order_fills_at_the_exchange(
    live_broker, exchange_stand_in, side, commission_asset, fee_in_quote
):
    fill = live_broker.place(btc_order(side))

    [placed] = exchange_stand_in.orders
    assert placed.side == side
    assert placed.quantity == Decimal("0.00123")  # rounded down to the market's amount step, 0.00001
    assert_is_fill_of(fill, placed)
    assert placed.commission_asset == commission_asset
    assert fill.fee == pytest.approx(fee_in_quote(placed), rel=Decimal("1e-15"))
    assert fill.fee > 0


def test_the_client_order_id_reaches_the_exchange(live_broker, exchange_stand_in):
    live_broker.place(btc_order(client_order_id="tai-42-open"))

    [lookup, post] = exchange_stand_in.requests_to(ORDER)
    assert (lookup.method, lookup.params["origClientOrderId"]) == ("GET", "tai-42-open")
    assert post.method == "POST"
    assert post.params["newClientOrderId"] == "tai-42-open"
    assert post.params["type"] == "MARKET"
    assert exchange_stand_in.orders[0].client_order_id == "tai-42-open"


def test_placing_the_same_order_twice_places_it_once(live_broker, exchange_stand_in, alice_on_binance):
    order = btc_order()

    first = live_broker.place(order)
    again = live_broker.place(order)
    # A retry in another worker process builds its own broker and client.
    elsewhere = LiveBroker(alice_on_binance).place(order)

    assert len(exchange_stand_in.orders) == 1
    assert len(posts(exchange_stand_in)) == 1
    assert again == first
    assert elsewhere == first


def test_a_timeout_after_the_exchange_took_the_order_returns_its_fill(live_broker, exchange_stand_in):
    exchange_stand_in.stall_next(ORDER, LATE, method="POST")

    fill = live_broker.place(btc_order())

    [placed] = exchange_stand_in.orders
    assert_is_fill_of(fill, placed)
    assert len(posts(exchange_stand_in)) == 1


def test_an_unreachable_exchange_after_it_took_the_order_is_a_temporary_error_then_one_order(
    live_broker, exchange_stand_in
):
    exchange_stand_in.pass_next(ORDER, method="GET")  # the lookup before placing: nothing yet
    exchange_stand_in.stall_next(ORDER, LATE, method="POST")
    exchange_stand_in.fail_next(ORDER, 503, UNAVAILABLE, method="GET")  # the lookup after the timeout

    with pytest.raises(BrokerTemporaryError, match=r"RequestTimeout.*ExchangeNotAvailable"):
        live_broker.place(btc_order())

    fill = live_broker.place(btc_order())  # the caller's retry, with the same client order id

    [placed] = exchange_stand_in.orders
    assert_is_fill_of(fill, placed)
    assert len(posts(exchange_stand_in)) == 1


def test_an_order_that_never_reached_the_exchange_is_placed_by_the_retry(live_broker, exchange_stand_in):
    exchange_stand_in.fail_next(ORDER, 503, UNAVAILABLE, method="POST")
    exchange_stand_in.pass_next(ORDER, method="GET")
    exchange_stand_in.fail_next(ORDER, 503, UNAVAILABLE, method="GET")

    with pytest.raises(BrokerTemporaryError):
        live_broker.place(btc_order())
    assert exchange_stand_in.orders == []

    fill = live_broker.place(btc_order())

    [placed] = exchange_stand_in.orders
    assert_is_fill_of(fill, placed)


def test_an_order_not_found_after_a_timeout_is_not_placed_again_at_once(live_broker, exchange_stand_in):
    # The exchange lost the request: not visible after the timeout, which is no proof it never will be.
    exchange_stand_in.fail_next(ORDER, 504, "<html>504 Gateway Time-out</html>", method="POST")

    with pytest.raises(BrokerTemporaryError, match="tai-7-open is not on binance"):
        live_broker.place(btc_order())

    assert len(posts(exchange_stand_in)) == 1


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (
            "0.000005",
            "0.000005 BTC is below the minimum order amount on BTC/USDT, 0.00001 BTC",
        ),
        (
            "0.00005",
            r"0.00005 BTC at [\d.]+ is worth [\d.]+ USDT, below the minimum order value on BTC/USDT, 5 USDT$",
        ),
    ],
)
def test_an_order_below_the_market_minimums_is_refused_before_sending(
    live_broker, exchange_stand_in, amount, message
):
    with pytest.raises(BrokerError, match=message) as refused:
        live_broker.place(btc_order(amount=amount))

    assert type(refused.value) is BrokerError
    assert exchange_stand_in.requests_to(ORDER) == []


def test_an_unknown_market_is_refused(live_broker, exchange_stand_in):
    order = OrderRequest("DOGE/EUR", "BUY", Decimal(100), Decimal("0.3"), client_order_id="tai-8-open")

    with pytest.raises(BrokerError, match="binance has no market 'DOGE/EUR'"):
        live_broker.place(order)
    assert exchange_stand_in.requests_to(ORDER) == []


def test_an_order_the_exchange_rejects_is_a_broker_error(live_broker, exchange_stand_in):
    exchange_stand_in.fail_next(ORDER, 400, INSUFFICIENT_BALANCE, method="POST")

    with pytest.raises(BrokerError, match="rejected the order: InsufficientFunds") as rejected:
        live_broker.place(btc_order())

    assert type(rejected.value) is BrokerError  # not worth retrying
    assert exchange_stand_in.orders == []


def test_refused_keys_are_a_broker_error_that_names_neither_key_nor_secret(
    exchange_stand_in, alice, live_trading
):
    wrong_key = "AKIAWRONGKEY0000654321"
    account = ExchangeAccountFactory(owner=alice, api_key=wrong_key, secret=SECRET)

    with pytest.raises(BrokerError, match="refused the API keys") as refused:
        LiveBroker(account).place(btc_order())

    assert type(refused.value) is BrokerError
    assert wrong_key not in str(refused.value)
    assert SECRET not in str(refused.value)
    assert posts(exchange_stand_in) == []


def test_a_key_echoed_by_the_exchange_is_masked(live_broker, exchange_stand_in):
    exchange_stand_in.fail_next(ORDER, 401, {**INVALID_API_KEY, "msg": f"API-key {API_KEY} rejected."})

    with pytest.raises(BrokerError, match=r"API-key \*\*\*\* rejected") as refused:
        live_broker.place(btc_order())

    assert API_KEY not in str(refused.value)


def test_nothing_is_sent_while_live_trading_is_switched_off(live_broker, exchange_stand_in, settings):
    settings.LIVE_TRADING_ENABLED = False

    with pytest.raises(BrokerError, match="TRADINGAI_LIVE_TRADING"):
        live_broker.place(btc_order())

    assert exchange_stand_in.requests == []


def test_a_sandbox_account_trades_on_the_test_network(exchange_stand_in, alice, live_trading):
    account = ExchangeAccountFactory(owner=alice, api_key=API_KEY, secret=SECRET, sandbox=True)
    broker = LiveBroker(account)

    fill = broker.place(btc_order())

    assert broker.client.isSandboxModeEnabled
    [placed] = exchange_stand_in.orders
    assert_is_fill_of(fill, placed)


# --- stop-loss and take-profit held by the exchange (an OCO list) ------------------------------------------
def protected_order(side="BUY", client_order_id="tai-9-open") -> OrderRequest:
    price = price_now(BTCUSDT)
    below, above = (
        (price * Decimal("0.95")).quantize(Decimal("0.01")),
        (price * Decimal("1.05")).quantize(Decimal("0.01")),
    )
    stop, target = (below, above) if side == "BUY" else (above, below)
    return OrderRequest("BTC/USDT", side, Decimal("0.0012345"), price, client_order_id, stop, target)


def oco_posts(stand_in):
    return [request for request in stand_in.requests_to(OCO) if request.method == "POST"]


def test_a_long_is_protected_by_an_oco_sell_of_what_the_account_holds(live_broker, exchange_stand_in):
    order = protected_order("BUY")

    fill = live_broker.place(order)

    [entry, target, stop] = exchange_stand_in.orders
    [listed] = exchange_stand_in.order_lists
    assert (fill.protected_on_exchange, fill.protection_id) == (True, "tai-9-open-oco")
    assert listed.list_client_order_id == "tai-9-open-oco"
    # The buy's commission was taken in BTC: what is left, rounded down to the amount step, is sold.
    assert fill.base_fee == entry.commission
    held = entry.quantity - entry.commission
    assert target.quantity == stop.quantity == held.quantize(Decimal("0.00001"), rounding="ROUND_DOWN")
    assert (target.side, target.type, target.price, target.client_order_id) == (
        "SELL",
        "LIMIT_MAKER",
        order.take_profit,
        "tai-9-open-tp",
    )
    assert (stop.side, stop.type, stop.price, stop.client_order_id) == (
        "SELL",
        "STOP_LOSS",
        order.stop_loss,
        "tai-9-open-sl",
    )
    assert (listed.above, listed.below) == (target, stop)


def test_a_short_is_protected_by_an_oco_buy_with_the_stop_above(live_broker, exchange_stand_in):
    order = protected_order("SELL")

    fill = live_broker.place(order)

    [listed] = exchange_stand_in.order_lists
    assert fill.base_fee == 0  # a sell pays its commission in USDT
    assert (listed.above.type, listed.above.price, listed.above.side) == ("STOP_LOSS", order.stop_loss, "BUY")
    assert (listed.below.type, listed.below.price) == ("LIMIT_MAKER", order.take_profit)
    assert listed.above.quantity == Decimal("0.00123")


def test_placing_a_protected_order_again_places_neither_order_again(
    live_broker, exchange_stand_in, alice_on_binance
):
    order = protected_order()

    first = live_broker.place(order)
    again = LiveBroker(alice_on_binance).place(order)

    assert again == first
    assert (len(posts(exchange_stand_in)), len(oco_posts(exchange_stand_in))) == (1, 1)


def test_an_oco_the_exchange_took_before_timing_out_is_found_not_placed_again(live_broker, exchange_stand_in):
    exchange_stand_in.stall_next(OCO, LATE, method="POST")

    fill = live_broker.place(protected_order())

    assert fill.protection_id == "tai-9-open-oco"
    assert len(exchange_stand_in.order_lists) == 1


def test_an_oco_the_exchange_refuses_leaves_the_position_to_the_monitor(live_broker, exchange_stand_in):
    exchange_stand_in.fail_next(OCO, 400, PRICES_OUT_OF_ORDER, method="POST")

    fill = live_broker.place(protected_order())

    assert fill.protected_on_exchange is False
    assert len(exchange_stand_in.orders) == 1  # the entry, filled and kept
    assert exchange_stand_in.order_lists == []


def test_an_exchange_without_oco_for_the_market_is_watched(live_broker, exchange_stand_in):
    live_broker.client.load_markets()["BTC/USDT"]["info"]["ocoAllowed"] = False

    fill = live_broker.place(protected_order())

    assert fill.protected_on_exchange is False
    assert exchange_stand_in.requests_to(OCO) == []


@pytest.mark.parametrize(("leg", "reason"), [("above", "TAKE_PROFIT"), ("below", "STOP_LOSS")])
def test_protection_reports_the_leg_that_filled(live_broker, exchange_stand_in, leg, reason):
    order = protected_order()
    live_broker.place(order)
    assert live_broker.protection("BTC/USDT", order.client_order_id).resting is True

    filled = exchange_stand_in.trigger("tai-9-open-oco", leg)
    state = live_broker.protection("BTC/USDT", order.client_order_id)

    assert (state.resting, state.exit_reason) == (False, reason)
    assert state.fill.price == filled.price
    assert state.fill.amount == filled.quantity
    assert state.fill.fee == pytest.approx(filled.commission, rel=Decimal("1e-15"))  # a sell: in USDT
    assert state.fill.filled_at == datetime.fromtimestamp(filled.update_ms / 1000, tz=UTC)


def test_a_cancelled_protection_rests_no_more(live_broker, exchange_stand_in):
    order = protected_order()
    live_broker.place(order)

    live_broker.cancel_protection("BTC/USDT", order.client_order_id)

    [listed] = exchange_stand_in.order_lists
    assert [leg.status for leg in listed.legs] == ["CANCELED", "CANCELED"]
    state = live_broker.protection("BTC/USDT", order.client_order_id)
    assert (state.resting, state.fill) == (False, None)
