from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest

from trades.brokers.base import BrokerError, OrderRequest
from trades.brokers.simulation import SimulationBroker
from trades.models import Trade
from trades.monitor import find_exit
from trades.outcomes import Bars, Costs
from trades.policy import COOLDOWN_AFTER_LOSSES, COOLDOWN_CYCLES, RiskLimits, Situation, decide

D = Decimal
LIMITS = RiskLimits(
    min_confidence=70,
    risk_per_trade_pct=D(1),
    max_position_pct=D(25),
    max_open_trades=1,
    daily_loss_limit_pct=D(5),
)
CALM = Situation(
    equity=D(10000), cash=D(10000), open_trades=0, day_loss=D(0), losses_in_a_row=0, cycles_since_last_loss=99
)


def buy(confidence=80, entry=100, stop=98, limits=LIMITS, now=CALM):
    return decide("BUY", confidence, D(entry), None if stop is None else D(stop), limits, now)


def test_size_loses_the_risk_share_of_equity_at_the_stop():
    decision = buy(stop=90)  # 1% of 10,000 = 100 at risk, 10 per unit: 10 units
    assert (decision.trade, decision.amount) == (True, D(10))


def test_size_is_capped_by_the_largest_position_share():
    assert buy(stop="99.9").amount == D(25)  # 1,000 units by risk, capped at 25% of equity / 100


def test_size_is_capped_by_cash_and_a_size_factor_scales_it():
    assert buy(stop=90, now=Situation(**{**CALM.__dict__, "cash": D(500)})).amount == D(5)
    half = RiskLimits(**{**LIMITS.__dict__, "size_factor": D("0.5")})
    assert buy(stop=90, limits=half).amount == D(5)


@pytest.mark.parametrize(
    ("kwargs", "situation", "reason"),
    [
        ({"confidence": 69}, {}, "confidence 69 below the minimum 70"),
        ({}, {"open_trades": 1}, "1 open trade(s), the most allowed is 1"),
        ({}, {"halted_by": "global"}, "halted by the global kill switch"),
        ({}, {"halted_by": "user"}, "halted by the user kill switch"),
        (
            {},
            {"losses_in_a_row": COOLDOWN_AFTER_LOSSES, "cycles_since_last_loss": 0},
            "cooling down after 3 losses",
        ),
        ({"stop": None}, {}, "no usable entry and stop-loss"),
        ({}, {"cash": D(0)}, "no cash left"),
    ],
)
def test_each_limit_refuses_with_its_reason(kwargs, situation, reason):
    decision = buy(**kwargs, now=Situation(**{**CALM.__dict__, **situation}))
    assert not decision.trade
    assert reason in decision.reason


def test_cooldown_ends_after_its_cycles():
    waited = Situation(**{**CALM.__dict__, "losses_in_a_row": 5, "cycles_since_last_loss": COOLDOWN_CYCLES})
    assert buy(now=waited).trade


def test_daily_loss_limit_pauses_the_bot():
    decision = buy(now=Situation(**{**CALM.__dict__, "day_loss": D(500)}))
    assert (decision.trade, decision.pause_bot) == (False, True)
    assert "5" in decision.reason
    assert buy(now=Situation(**{**CALM.__dict__, "day_loss": D("499.99")})).trade


def test_hold_is_never_traded():
    assert decide("HOLD", 99, D(100), D(98), LIMITS, CALM).reason == "the analysis says HOLD"


def test_paper_fill_moves_against_the_order_and_charges_the_fee():
    broker = SimulationBroker(D(10000), Costs(slippage_pct=D("0.1"), fee_pct=D("0.2")))
    fill = broker.place(OrderRequest("BTC/USDT", "BUY", D(2), D(100), "tai-1-open"))
    assert (fill.price, fill.amount, fill.fee) == (D("100.1"), D(2), D("0.4004"))
    sell = broker.place(OrderRequest("BTC/USDT", "SELL", D(2), D(100), "tai-2-open"))
    assert sell.price == D("99.9")


def test_paper_balance_never_goes_negative():
    with pytest.raises(BrokerError, match=r"paper balance has 100\.00"):
        SimulationBroker(D(100), Costs(slippage_pct=D(0), fee_pct=D(0))).place(
            OrderRequest("BTC/USDT", "BUY", D(2), D(51), "tai-3-open")
        )


T0 = datetime(2024, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
NO_COSTS = Costs(fee_pct=D(0), slippage_pct=D(0))  # the levels themselves


def candles(*bars):
    index = pd.DatetimeIndex([T0 + i * HOUR for i in range(len(bars))], name="time")
    return pd.DataFrame(bars, columns=["open", "high", "low", "close", "volume"], index=index, dtype=float)


def trade(side="BUY", stop=95, target=110, horizon=None):
    return Trade(
        side=side, price=D(100), amount=D(1), stop_loss=D(stop), take_profit=D(target), execution_time=T0,
        learning_data={"horizon": horizon} if horizon else {},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("side", "bars", "expected"),
    [
        ("BUY", [(100, 105, 96, 104, 1), (104, 111, 100, 110, 1)], ("TAKE_PROFIT", D(110), 2)),
        ("BUY", [(100, 101, 94, 95, 1)], ("STOP_LOSS", D(95), 1)),
        ("BUY", [(100, 112, 94, 100, 1)], ("STOP_LOSS", D(95), 1)),  # both in one candle: the stop
        ("SELL", [(100, 101, 89, 90, 1)], ("TAKE_PROFIT", D(90), 1)),
        ("SELL", [(100, 106, 89, 90, 1)], ("STOP_LOSS", D(105), 1)),
    ],
)
def test_exits_from_candle_highs_and_lows(side, bars, expected):
    t = trade(side, *((105, 90) if side == "SELL" else ()))
    found = find_exit(t, candles(*bars), HOUR, NO_COSTS)
    assert (found.reason, found.price, found.at) == (expected[0], expected[1], T0 + expected[2] * HOUR)
    assert find_exit(t, Bars(candles(*bars)), HOUR, NO_COSTS) == found  # as a cycle hands them over


def test_a_stop_fills_less_the_slippage_or_at_the_open_it_gapped_to_and_a_target_at_its_level():
    costs = Costs(fee_pct=D(0), slippage_pct=D("0.1"))
    # Touched within the candle: at the stop, 0.1 % lower for the sell that closes a long.
    touched = find_exit(trade(), candles((100, 101, 94, 95, 1)), HOUR, costs)
    assert (touched.level, touched.price) == (D(95), D("94.905"))
    # The next candle opened at 93, beyond the stop at 95: the stop's order fills at that open, less the
    # slippage.
    bars = candles((100, 101, 96, 97, 1), (93, 94, 92, 93.5, 1))
    gapped = find_exit(trade(), bars, HOUR, costs)
    assert (gapped.reason, gapped.level, gapped.price) == ("STOP_LOSS", D(93), D("92.907"))
    assert gapped.at == T0 + 2 * HOUR
    assert find_exit(trade(), bars, HOUR, NO_COSTS).price == D(93)
    # A short's stop at 105 gapped through by an open at 107: bought back at 107 plus the slippage.
    bars = candles((100, 101, 99, 100, 1), (107, 108, 106, 107, 1))
    short = find_exit(trade("SELL", 105, 90), bars, HOUR, costs)
    assert (short.level, short.price) == (D(107), D("107.107"))
    # A target gapped through (an open at 112, beyond 110) fills at the target: a limit order, not slipped.
    target = find_exit(trade(), candles((100, 101, 99, 100, 1), (112, 113, 111, 112, 1)), HOUR, costs)
    assert (target.reason, target.price) == ("TAKE_PROFIT", D(110))
    # The time exit is a market order at the close: slipped.
    held = find_exit(trade(horizon=1), candles((100, 101, 99, 100, 1)), HOUR, costs)
    assert (held.reason, held.price) == ("TIME_EXIT", D("99.9"))


def test_time_exit_at_the_calls_horizon_at_most_the_holding_limit_and_none_before(settings):
    settings.MAX_HOLDING_CANDLES = 4
    bars = [(100, 101, 99, 100 + i, 1) for i in range(3)]
    assert find_exit(trade(horizon=4), candles(*bars), HOUR, NO_COSTS) is None
    assert find_exit(trade(horizon=10), candles(*bars), HOUR, NO_COSTS) is None  # held 4 candles, the limit
    found = find_exit(trade(horizon=3), candles(*bars), HOUR, NO_COSTS)
    assert (found.reason, found.price, found.at) == ("TIME_EXIT", D(102), T0 + 3 * HOUR)
    # Opened by hand, without a horizon: the limit.
    assert find_exit(trade(), candles(*bars), HOUR, NO_COSTS) is None
    settings.MAX_HOLDING_CANDLES = 3
    assert find_exit(trade(), candles(*bars), HOUR, NO_COSTS).reason == "TIME_EXIT"
