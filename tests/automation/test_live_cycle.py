"""A LIVE bot's cycle with the real ccxt client against the Binance stand-in: candles from the exchange,
the entry as a market order, the stop-loss and take-profit as an OCO list the exchange holds, and the
monitor closing the trade by what the exchange filled."""

from datetime import timedelta
from decimal import ROUND_DOWN, Decimal

import pytest
from django.utils import timezone

from automation.cycle import Outside, run_cycle
from automation.models import AutomationSession, Bot
from automation.monitoring import monitor_running_bots
from automation.schedule import slot_of
from tests.factories import BotFactory, ExchangeAccountFactory
from trades.models import Trade

from .test_cycle import FakeAnalyst


@pytest.fixture
def live_bot(alice, settings, exchange_stand_in):
    settings.LIVE_TRADING_ENABLED = True
    bot = BotFactory(
        owner=alice,
        mode=Bot.Mode.LIVE,
        live_confirmed=True,
        exchange_account=ExchangeAccountFactory(owner=alice, exchange="binance"),
        status=Bot.Status.RUNNING,
    )
    AutomationSession.objects.create(bot=bot)
    return bot


def run_live(bot):
    # A stop and target 5% away: far outside an hour's move of the stand-in's prices, so the exchange
    # accepts both legs whatever the hour.
    outside = Outside(analyst=FakeAnalyst(band=0.05), chart=lambda *a: b"\x89PNG fake")
    return run_cycle(bot.pk, slot_of(bot, timezone.now()), outside, on_schedule=False)


def test_a_live_cycle_buys_and_the_exchange_holds_the_stop_and_target(live_bot, exchange_stand_in):
    run = run_live(live_bot)

    assert run.status == "SUCCEEDED", run.error
    trade = Trade.objects.get()
    [entry, target, stop] = exchange_stand_in.orders
    assert (trade.client_order_id, trade.exchange_order_id) == (f"tai-{run.pk}-open", str(entry.order_id))
    assert (trade.amount, trade.is_simulated) == (entry.quantity, False)
    assert trade.learning_data["protected_on_exchange"] is True
    assert trade.learning_data["protection_id"] == f"tai-{run.pk}-open-oco"
    assert Decimal(trade.learning_data["base_fee"]) == entry.commission
    tick = Decimal("0.000001")  # the market's price step: the levels are rounded to it
    assert target.price == pytest.approx(trade.take_profit, abs=tick)
    assert stop.price == pytest.approx(trade.stop_loss, abs=tick)

    assert monitor_running_bots() == 0  # both legs rest: nothing to close
    trade.refresh_from_db()
    assert trade.status == "OPEN"


def test_the_monitor_closes_a_live_trade_at_the_leg_the_exchange_filled(live_bot, exchange_stand_in):
    run_live(live_bot)
    trade = Trade.objects.get()
    filled = exchange_stand_in.trigger(trade.learning_data["protection_id"], "below")  # the stop

    assert monitor_running_bots() == 1

    trade.refresh_from_db()
    [entry, *_] = exchange_stand_in.orders
    entry_fee = entry.commission * entry.price  # paid in BTC, counted in USDT
    assert (trade.status, trade.learning_data["exit_reason"], trade.outcome) == (
        "CLOSED",
        "STOP_LOSS",
        "LOSS",
    )
    assert trade.exit_price == pytest.approx(filled.price, rel=Decimal("1e-9"))  # as average of the fills
    # ccxt hands the exchange's figures over as floats, so the sum agrees to float precision, not to the
    # 12 places the fees are stored with.
    assert trade.fees == pytest.approx(entry_fee + filled.commission, rel=Decimal("1e-9"))
    assert len(exchange_stand_in.orders) == 3  # no market order of the platform's own


def test_at_the_time_limit_the_protection_is_cancelled_then_the_position_sold(
    live_bot, exchange_stand_in, settings
):
    run_live(live_bot)
    trade = Trade.objects.get()
    # Entered three hours ago and allowed one candle: the candles since say it is time to leave.
    Trade.objects.filter(pk=trade.pk).update(execution_time=trade.execution_time - timedelta(hours=3))
    settings.MAX_HOLDING_CANDLES = 1

    assert monitor_running_bots() == 1

    [listed] = exchange_stand_in.order_lists
    assert [leg.status for leg in listed.legs] == ["CANCELED", "CANCELED"]
    [entry, _, _, close] = exchange_stand_in.orders
    held = (entry.quantity - entry.commission).quantize(Decimal("0.00001"), rounding=ROUND_DOWN)
    assert (close.side, close.type, close.quantity) == ("SELL", "MARKET", held)
    assert close.client_order_id == f"tai-trade-{trade.pk}-close"
    trade.refresh_from_db()
    assert (trade.status, trade.learning_data["exit_reason"]) == ("CLOSED", "TIME_EXIT")
    assert trade.exit_price == pytest.approx(close.price, rel=Decimal("1e-9"))  # as average of the fills
