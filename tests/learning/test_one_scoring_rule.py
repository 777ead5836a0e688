"""Issue 17, "One scoring rule": a call is scored by what its paper trade earns, traded or not. The same
entry (the next candle's open as the paper broker fills it), the same exit rule (stop, target, time limit;
a stop gapped through at the open), the same time limit and the same costs; so the learner learns from what
trading earns. Before, untraded calls were scored over the analyst's horizon with no slippage and trades
held up to MAX_HOLDING_CANDLES: 19 of 83 trades of one replay flipped between WIN and LOSS when scored the
untraded way."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from automation.analysts.base import AnalystResult
from automation.analysts.schema import Analysis
from automation.replay import PreloadedCandles, ReplaySpec, replay, replay_bot
from learning.models import AILearningData
from learning.resolution import due_window, untraded_fields
from market.importers import Bar, store_bars
from market.sources import Market
from tests.automation.test_ledger_contract import cycles, hours, make_bot
from tests.factories import UserFactory, import_eurusd
from trades.brokers.simulation import paper_costs
from trades.models import Trade
from trades.outcomes import Bars

HOUR = timedelta(hours=1)


def scored_untraded(analysis: AILearningData, candles: pd.DataFrame) -> dict:
    """The outcome fields the call would have had had it not been traded, from every candle there is."""
    bars = Bars(candles)
    window = due_window(
        analysis, bars, candles.index[0].to_pydatetime(), HOUR, datetime.max.replace(tzinfo=UTC)
    )
    assert window is not None, "the candles end before the call's time limit"
    bot = analysis.bot
    return untraded_fields(analysis, bars, window, HOUR, paper_costs(bot.exchange, bot.symbol))


def disagreements(trades, candles: pd.DataFrame) -> list[tuple]:
    """The closed trades whose call, scored as untraded, has another outcome or R."""
    out = []
    for trade in trades:
        fields = scored_untraded(trade.analysis, candles)
        if fields["outcome"] != trade.outcome or fields["outcome_r"] != pytest.approx(
            float(trade.actual_rr), abs=1e-4
        ):
            out.append(
                (trade.pk, trade.outcome, float(trade.actual_rr), fields["outcome"], fields["outcome_r"])
            )
    return out


# --- random calls on random candles, traded by one bot and watched by another ---------------------------
START = datetime(2024, 1, 1, tzinfo=UTC)
WARM_UP = 60  # candles before the first slot: the indicators need MIN_CANDLES


def random_candles(seed: int, n: int) -> list[Bar]:
    """An hourly random walk with fat-tailed moves, wicks, and now and then a gap between a close and the
    next open."""
    rng = np.random.default_rng(seed)
    bars, close = [], 100.0
    for i in range(n):
        open_ = close * (1 + rng.normal(0, 0.001)) if rng.random() < 0.2 else close
        close = open_ * (1 + 0.003 * rng.standard_t(3))
        high = max(open_, close) * (1 + abs(rng.normal(0, 0.002)))
        low = min(open_, close) * (1 - abs(rng.normal(0, 0.002)))
        bars.append(Bar(START + i * HOUR, open_, high, low, close, 1.0))
    return bars


class RandomCalls:
    """BUY or SELL at random, with a stop 0.2-3 % away, a target 0.5-3 times as far on the other side (or
    none) and a horizon of 1-40 candles: the same calls, in the same order, for every instance of a seed."""

    name = "random"

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def analyse(self, request):
        rng, close = self.rng, request.indicators.close
        side = "BUY" if rng.random() < 0.5 else "SELL"
        direction = 1 if side == "BUY" else -1
        risk = close * rng.uniform(0.002, 0.03)
        target = close + direction * risk * rng.uniform(0.5, 3) if rng.random() < 0.8 else None
        return AnalystResult(
            analysis=Analysis(
                summary="random",
                market_sentiment="NEUTRAL",
                key_levels={"support": [], "resistance": []},
                recommendation=side,
                confidence=80,
                reasoning="random",
                entry=close,
                stop_loss=close - direction * risk,
                take_profit=target if target and target > 0 else None,
                predicted_price=close + direction * risk,
                horizon=int(rng.integers(1, 41)),
            ),
            analyst="random",
        )


@pytest.mark.parametrize(
    ("seed", "ledger"),
    [(1, "database"), *((seed, "memory") for seed in range(1, 7))],  # the books are ten times faster
)
def test_a_call_traded_and_the_same_call_untraded_are_scored_alike(db, settings, ledger, seed):
    # A time limit below some of the horizons and above others: both sides of min(horizon, limit).
    settings.MAX_HOLDING_CANDLES = 24
    settings.LEARNING_MIN_SAMPLES = 10**6  # no learned policy: every call is decided alike
    market = Market(f"random-{seed}", "RND/USD", "1h")
    bars = random_candles(seed, WARM_UP + 150)
    store_bars(market.exchange, market.symbol, market.timeframe, bars)
    slots = hours(START + WARM_UP * HOUR, 100)

    def bot(**fields):
        b = make_bot(UserFactory(), **fields)
        b.exchange, b.symbol = market.exchange, market.symbol
        b.save(update_fields=["exchange", "symbol"])
        return b

    # Small positions, many at once, no loss limits: it trades most calls. The watcher trades none.
    trader = bot(max_open_trades=60, max_position_pct=1, risk_per_trade_pct=0.1, daily_loss_limit_pct=100)
    watcher = bot(min_confidence=95)
    cycles(ledger, trader, slots, RandomCalls(seed))
    cycles(ledger, watcher, slots, RandomCalls(seed))

    watched = {
        a.cycle_run.slot: a for a in AILearningData.objects.filter(bot=watcher).select_related("cycle_run")
    }
    closed = Trade.objects.filter(bot=trader, status=Trade.Status.CLOSED).select_related(
        "analysis__cycle_run"
    )
    compared, differ, reasons, horizons = 0, [], set(), set()
    for trade in closed:
        same_call = watched[trade.analysis.cycle_run.slot]
        assert same_call.recommendation == trade.side and not hasattr(same_call, "trade")
        if not same_call.outcome:
            continue  # stopped or at its target before the slots ended; its time limit had not passed
        compared += 1
        reasons.add(trade.learning_data["exit_reason"])
        horizons.add(trade.analysis.analysis_data["horizon"])
        traded = (trade.outcome, float(trade.actual_rr), trade.closed_at)
        untraded = (same_call.outcome, same_call.outcome_r, same_call.resolved_at)
        if traded != (untraded[0], pytest.approx(untraded[1], abs=1e-4), untraded[2]):
            differ.append((trade.analysis.cycle_run.slot, traded, untraded))
    assert compared >= 20, f"only {compared} calls both traded and resolved untraded: a weak test"
    assert differ == [], f"{len(differ)} of {compared} calls scored differently"
    # Every exit of the rule, and horizons under and over the time limit, were compared.
    assert reasons == {"STOP_LOSS", "TAKE_PROFIT", "TIME_EXIT"}
    assert min(horizons) < settings.MAX_HOLDING_CANDLES < max(horizons)

    candles = PreloadedCandles.load(market).frame
    assert disagreements(closed, candles) == []


# --- a replay of the shipped EUR/USD hours with the technical analyst -----------------------------------
REPLAY_START = datetime(2017, 10, 2, tzinfo=UTC)  # a Monday


def test_every_trade_of_a_replay_is_what_its_call_scores_untraded(db, settings):
    # The static policy: a learned one soon stops trading these hours, leaving too few trades to check.
    settings.LEARNING_MIN_SAMPLES = 10**6
    import_eurusd()
    spec = ReplaySpec("sample", "EUR/USD", "1h", start=REPLAY_START, end=REPLAY_START + 600 * HOUR)
    bot = replay_bot(spec)
    bot.max_open_trades = 3  # more trades from the same hours, each paid for in cash
    bot.save(update_fields=["max_open_trades"])
    replay(spec, bot=bot)
    closed = list(Trade.objects.filter(bot=bot, status=Trade.Status.CLOSED).select_related("analysis"))
    assert len(closed) >= 20, f"only {len(closed)} trades closed: a weak test"
    flips = disagreements(closed, PreloadedCandles.load(spec.market).frame)
    assert flips == [], f"{len(flips)} of {len(closed)} trades scored otherwise untraded"
