"""The outcome math with known answers: the seed's example trade first."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest

from learning.models import AILearningData
from learning.resolution import resolve_traded
from tests.factories import BotFactory
from trades.models import Trade
from trades.monitor import close_trade
from trades.outcomes import (
    Bars,
    Costs,
    Exit,
    accuracy_score,
    first_exit,
    outcome_of,
    paper_trade,
    time_limit,
    trade_result,
)

HOUR = timedelta(hours=1)
T0 = datetime(2024, 3, 1, 10, tzinfo=UTC)
NO_COSTS = Costs(fee_pct=Decimal(0), slippage_pct=Decimal(0))

# The seed: BUY at 146.50, stop 143.57, target 152.43, closed at 151.20.
SEED = {"side": "BUY", "entry": Decimal("146.50"), "stop": Decimal("143.57"), "exit": Decimal("151.20")}


def test_the_seed_trade_is_a_win_of_3_2_percent_at_1_6_r():
    result = trade_result(**SEED, amount=Decimal(1), fees=Decimal(0), exit_reason="TAKE_PROFIT")
    # 4.70 / 146.50 = 3.2082 %; 4.70 / (146.50 - 143.57 = 2.93) = 1.6041 R
    assert (result.outcome, result.pnl_percent, result.actual_rr) == (
        "WIN",
        Decimal("3.2082"),
        Decimal("1.6041"),
    )
    assert result.market_behavior == "AS_EXPECTED"


def test_fees_come_off_the_result():
    # 0.1 % in and out: 0.1465 + 0.1512 = 0.2977; (4.70 - 0.2977) / 146.50 = 3.0050 %, / 2.93 = 1.5025 R
    result = trade_result(**SEED, amount=Decimal(1), fees=Decimal("0.2977"), exit_reason="TAKE_PROFIT")
    assert (result.pnl_percent, result.actual_rr) == (Decimal("3.0050"), Decimal("1.5025"))


def test_a_short_and_the_breakeven_band():
    short = trade_result(
        side="SELL", entry=Decimal(100), exit=Decimal(102), stop=Decimal(104), amount=Decimal(2),
        fees=Decimal(0), exit_reason="TIME_EXIT",
    )  # fmt: skip
    assert (short.outcome, short.pnl_percent, short.actual_rr) == (
        "LOSS",
        Decimal("-2.0000"),
        Decimal("-0.5000"),
    )
    assert short.market_behavior == "AGAINST"
    assert outcome_of(Decimal("0.05"), Decimal("0.1")) == "BREAKEVEN"
    assert outcome_of(Decimal("-0.1"), Decimal("0.1")) == "BREAKEVEN"
    assert outcome_of(Decimal("0.11"), Decimal("0.1")) == "WIN"


@pytest.mark.parametrize(("worst", "expected"), [("145.60", "GOOD"), ("145.00", "FAIR"), ("144.00", "POOR")])
def test_entry_accuracy_is_how_far_the_price_went_against_the_entry_first(worst, expected):
    # The stop is 2.93 away: a third is 0.977, two thirds 1.953.
    result = trade_result(
        **SEED, amount=Decimal(1), fees=Decimal(0), exit_reason="TAKE_PROFIT", worst=Decimal(worst)
    )
    assert result.entry_accuracy == expected


def test_the_seed_analysis_scores_0_896():
    # Direction right: 0.5; distance: 1 - |151.20 - 152.43| / |152.43 - 146.50| = 1 - 1.23 / 5.93 = 0.7926
    assert accuracy_score("BUY", 146.50, 152.43, 151.20, 0.0) == pytest.approx(0.8963, abs=1e-4)
    # The wrong way: no half for the direction, and farther from the target than the start was.
    assert accuracy_score("BUY", 146.50, 152.43, 140.00, 0.0) == 0.0
    # HOLD with an ATR of 2: full marks unmoved, half at 2 away, none at 4.
    assert accuracy_score("HOLD", 100.0, None, 100.0, 2.0) == 1.0
    assert accuracy_score("HOLD", 100.0, None, 102.0, 2.0) == 0.5
    assert accuracy_score("HOLD", 100.0, None, 96.0, 2.0) == 0.0


def candles(*bars) -> pd.DataFrame:
    index = pd.DatetimeIndex([T0 + i * HOUR for i in range(len(bars))])
    return pd.DataFrame(bars, columns=["open", "high", "low", "close"], index=index).assign(volume=1.0)


def test_a_candle_touching_stop_and_target_counts_the_stop():
    bars = candles((146.5, 147.0, 146.0, 146.8), (146.8, 153.0, 143.0, 150.0))
    exit = first_exit("BUY", Decimal("143.57"), Decimal("152.43"), T0, bars, HOUR, 48, NO_COSTS)
    assert (exit.reason, exit.price, exit.at) == ("STOP_LOSS", Decimal("143.57"), T0 + 2 * HOUR)
    assert exit.worst == Decimal("143.0")


def test_the_seed_calls_paper_trade_with_the_paper_costs():
    # The seed's call, acted on at the open of the next candle, 146.50; the target reached in the second.
    bars = Bars(
        candles((146.5, 148.0, 146.0, 147.8), (147.8, 152.5, 147.5, 152.0), (152.0, 153.0, 151.0, 151.2))
    )
    call = ("BUY", Decimal("143.57"), Decimal("152.43"), T0, bars, HOUR, 10)
    band = Decimal("0.1")
    # Without slippage: 5.93 to the target less 0.1465 + 0.15243 of fees, over 2.93 of risk.
    exit, result = paper_trade(*call, Costs(fee_pct=Decimal("0.1"), slippage_pct=Decimal(0)), band)
    assert (exit.reason, exit.price, exit.at) == ("TAKE_PROFIT", Decimal("152.43"), T0 + 2 * HOUR)
    assert (result.outcome, result.pnl_percent, result.actual_rr) == (
        "WIN",
        Decimal("3.8437"),
        Decimal("1.9219"),
    )
    # Its costs: the fees, 0.29893 of them over 2.93 of risk.
    assert (result.costs, result.cost_r) == (Decimal("0.29893"), Decimal("0.1020"))
    # Filled 0.05 % higher, at 146.57325: 5.85675 to the target, less 0.14657325 + 0.15243 of fees, over
    # 3.00325 of risk. Its costs, 0.07325 of slippage and the fees, 0.37225325 over the risk: 0.1240 R,
    # which is what the result without costs, 5.93 / 3.00325 = 1.9745 R, loses.
    _, slipped = paper_trade(*call, Costs(fee_pct=Decimal("0.1"), slippage_pct=Decimal("0.05")), band)
    assert (slipped.pnl_percent, slipped.actual_rr) == (Decimal("3.7918"), Decimal("1.8506"))
    assert (slipped.costs, slipped.cost_r) == (Decimal("0.37225325"), Decimal("0.1240"))
    # Without a target, without costs, held to the time limit: the seed trade, out at the third close.
    _, held = paper_trade(*call[:2], None, *call[3:6], 3, NO_COSTS, band)
    assert (held.actual_rr, held.market_behavior, held.cost_r) == (Decimal("1.6041"), "PARTIAL", 0)
    assert paper_trade(*call[:2], None, T0, bars, HOUR, 4, NO_COSTS, band) is None


def test_a_paper_trade_enters_at_the_next_open_and_a_stop_gapped_through_fills_at_that_candles_open():
    # The call saw a close of 146.50; the next candle opened at 146.80 (its entry), the one after that at
    # 143.00, already below the stop at 143.57: stopped out at that open, not at the stop.
    bars = Bars(
        candles((146.8, 147.0, 146.0, 146.2), (143.0, 144.0, 142.5, 143.8), (143.8, 145.0, 143.5, 144.0))
    )
    exit, result = paper_trade("BUY", Decimal("143.57"), None, T0, bars, HOUR, 10, NO_COSTS, Decimal("0.1"))
    assert (exit.reason, exit.price, exit.at) == ("STOP_LOSS", Decimal("143.0"), T0 + 2 * HOUR)
    # -3.80 over the 3.23 of risk from 146.80: worse than the -1 R the stop promised.
    assert result.actual_rr == Decimal("-1.1765")
    # With 0.05 % slippage each way the entry is 146.8734 and the exit 142.9285.
    costs = Costs(fee_pct=Decimal(0), slippage_pct=Decimal("0.05"))
    exit, result = paper_trade("BUY", Decimal("143.57"), None, T0, bars, HOUR, 10, costs, Decimal("0.1"))
    assert (exit.price, exit.level) == (Decimal("142.9285"), Decimal("143.0"))
    assert result.costs == Decimal("0.1449")  # 0.0734 on the way in, 0.0715 on the way out


def test_the_time_limit_is_the_calls_horizon_at_most_the_holding_limit():
    assert (time_limit(10, 48), time_limit(60, 48), time_limit(None, 48)) == (10, 48, 48)


def test_closing_the_seed_trade_resolves_its_analysis(alice):
    bot = BotFactory(owner=alice, symbol="SOL/USDT")
    analysis = AILearningData.objects.create(
        user=alice, bot=bot, symbol="SOL/USDT", timeframe="1h", recommendation="BUY", confidence_score=80,
        predicted_price=Decimal("152.43"), analysis_data={}, market_conditions={"close": 146.50, "atr": 1.5},
    )  # fmt: skip
    trade = Trade.objects.create(
        owner=alice, bot=bot, analysis=analysis, symbol="SOL/USDT", side="BUY", amount=Decimal(1),
        price=Decimal("146.50"), stop_loss=Decimal("143.57"), take_profit=Decimal("152.43"),
        execution_time=T0, status="OPEN",
    )  # fmt: skip

    assert close_trade(
        trade,
        Exit(Decimal("151.20"), T0 + 5 * HOUR, "TAKE_PROFIT", Decimal("146.00")),
        Decimal(0),
        resolve_traded,
    )

    trade.refresh_from_db()
    assert (trade.outcome, trade.pnl_percent, trade.actual_rr) == (
        "WIN",
        Decimal("3.2082"),
        Decimal("1.6041"),
    )
    assert trade.learning_data == {
        "exit_reason": "TAKE_PROFIT",
        "entry_accuracy": "GOOD",
        "market_behavior": "AS_EXPECTED",
        "costs": "0",  # no fees, and a target fills at its level
        "cost_r": 0.0,
    }
    analysis.refresh_from_db()
    assert (analysis.outcome, analysis.actual_price, analysis.untraded) == ("WIN", Decimal("151.2"), False)
    assert analysis.accuracy_score == pytest.approx(0.8963, abs=1e-4)
    assert analysis.outcome_r == pytest.approx(1.6041)
    assert analysis.resolved_at == T0 + 5 * HOUR
    # Closed once: a second close changes nothing.
    assert not close_trade(trade, Exit(Decimal(140), T0 + 6 * HOUR, "STOP_LOSS"), Decimal(0), resolve_traded)
