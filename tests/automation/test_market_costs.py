"""Issue 18, costs per market: the costs recorded with a market reach the paper fill, the monitor's exit, the
replay (its books) and the score of an untraded call; and a replay enters at the next candle's open."""

from datetime import timedelta
from decimal import Decimal

import pytest

from learning.models import AILearningData
from market.importers import store_bars
from market.models import StoredMarket
from market.sources import Market
from tests.automation.test_ledger_contract import cycles, hours, make_bot
from tests.factories import UserFactory
from tests.learning.test_one_scoring_rule import START, WARM_UP, RandomCalls, random_candles
from trades.models import Trade
from trades.outcomes import PRICE_STEP

D = Decimal
HOUR = timedelta(hours=1)
FEE, SLIPPAGE = D("0.3"), D("0.2")  # recorded: a 0.3 % fee and a 0.4 % spread, half of it a fill


def bot_on(market: Market, **fields):
    bot = make_bot(UserFactory(), **fields)
    bot.exchange, bot.symbol = market.exchange, market.symbol
    bot.save(update_fields=["exchange", "symbol"])
    return bot


def slipped(price: Decimal, side: str) -> Decimal:
    """A market order's fill at `price` for `side`, at the recorded slippage."""
    return (price * (1 + (1 if side == "BUY" else -1) * SLIPPAGE / 100)).quantize(PRICE_STEP)


@pytest.mark.parametrize("ledger", ["database", "memory"])  # run_cycle, and the replay's books
def test_the_costs_recorded_with_a_market_reach_every_fill_exit_and_score(db, settings, ledger):
    settings.MAX_HOLDING_CANDLES = 24
    settings.LEARNING_MIN_SAMPLES = 10**6  # no learned policy: every call is decided alike
    market = Market("costly", "RND/USD", "1h")  # of no known asset class: the global costs, unless recorded
    bars = random_candles(3, WARM_UP + 120)
    store_bars(market.exchange, market.symbol, market.timeframe, bars)
    StoredMarket.objects.create(
        exchange=market.exchange, symbol=market.symbol, fee_pct=FEE, spread_pct=2 * SLIPPAGE
    )
    opens = {bar.open_time: D(str(bar.open)) for bar in bars}
    trader = bot_on(
        market, max_open_trades=60, max_position_pct=1, risk_per_trade_pct=0.1, daily_loss_limit_pct=100
    )
    watcher = bot_on(market, min_confidence=95)  # trades nothing: its calls are scored untraded
    slots = hours(START + WARM_UP * HOUR, 80)
    cycles(ledger, trader, slots, RandomCalls(3))
    cycles(ledger, watcher, slots, RandomCalls(3))

    trades = list(Trade.objects.filter(bot=trader).select_related("analysis__cycle_run"))
    assert len(trades) >= 20
    for trade in trades:
        # Entered at the open of the candle after the one analysed, plus the slippage, with the fee.
        slot = trade.analysis.cycle_run.slot
        assert trade.price == slipped(opens[slot], trade.side).quantize(trade.price)
        entry_fee = trade.price * trade.amount * FEE / 100
        if trade.status == Trade.Status.OPEN:
            assert trade.fees == pytest.approx(entry_fee, abs=D("1e-8"))
    closed = [t for t in trades if t.status == Trade.Status.CLOSED]
    reasons = {t.learning_data["exit_reason"] for t in closed}
    assert {"STOP_LOSS", "TIME_EXIT"} <= reasons
    for trade in closed:
        # The monitor's exit: a stop or a time exit slipped against the position, the fee on the exit too.
        reason = trade.learning_data["exit_reason"]
        leaving = "SELL" if trade.side == "BUY" else "BUY"
        exit_fee = trade.exit_price * trade.amount * FEE / 100
        assert trade.fees == pytest.approx(trade.price * trade.amount * FEE / 100 + exit_fee, abs=D("1e-8"))
        if reason == "TAKE_PROFIT":
            assert trade.exit_price == trade.take_profit
        elif reason == "STOP_LOSS":
            # At the stop, or at the open of the candle that gapped through it.
            opened = opens[trade.closed_at - HOUR]
            level = min(trade.stop_loss, opened) if trade.side == "BUY" else max(trade.stop_loss, opened)
            assert trade.exit_price == slipped(level, leaving).quantize(trade.exit_price)
        # Its costs, in money and in R: the fees and the slippage of both fills.
        risk = abs(trade.price - trade.stop_loss) * trade.amount
        assert float(trade.learning_data["costs"]) / float(risk) == pytest.approx(
            trade.learning_data["cost_r"], abs=2e-4
        )
        assert trade.analysis.feedback_data["cost_r"] == trade.learning_data["cost_r"]

    # An untraded call: its paper trade at the same costs, entered at the next open.
    scored = [
        a
        for a in AILearningData.objects.filter(bot=watcher).exclude(outcome="").select_related("cycle_run")
        if a.outcome_r is not None and a.feedback_data["exit_reason"] == "TIME_EXIT"
    ]
    assert len(scored) >= 5
    for call in scored:
        side, stop = call.recommendation, D(str(call.analysis_data["stop_loss"]))
        entry = slipped(opens[call.cycle_run.slot], side)
        exit = call.actual_price
        fees = (entry + exit) * FEE / 100
        direction = 1 if side == "BUY" else -1
        level = exit / (1 - direction * SLIPPAGE / 100)  # the close, before the exit's slippage
        cost = fees + direction * (entry - opens[call.cycle_run.slot]) + direction * (level - exit)
        assert call.feedback_data["cost_r"] == pytest.approx(float(cost / abs(entry - stop)), abs=2e-4)
        net = (direction * (exit - entry) - fees) / abs(entry - stop)
        assert call.outcome_r == pytest.approx(float(net), abs=1e-4)
