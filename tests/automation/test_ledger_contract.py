"""The contract of the cycle's steps (automation.steps), run against both ledgers with the same inputs: the
database's (`run_cycle`, a slot at a time) and the replay's books (`replay_book.Book`, loaded from the
database, its cycles written in bulk). What the equivalence test in test_replay.py does not reach over its
one paper bot: a user's several bots with pooled learning, the kill switches, pins, the daily loss pause,
the cooldown after losses, the outcome model's gate switching on and off, a trade held to its time limit."""

from datetime import timedelta
from decimal import Decimal

import pytest

from automation.analysts.base import AnalystTemporaryError
from automation.cycle import Outside, run_cycle
from automation.models import AutomationSession, Bot, CycleRun, KillSwitch
from automation.replay_book import Book
from learning import ml
from learning.models import AILearningData, LearnedPolicy
from learning.policy import pin
from market.sources import StoredCandles
from tests.automation.test_cycle import HOUR, SLOT, FakeAnalyst, _candles  # noqa: F401 (a fixture)
from tests.automation.test_replay import everything
from tests.factories import BotFactory, UserFactory
from tests.learning.test_ml import T0, calls, confidence_wins, informative, sells_win
from trades.models import Trade
from trades.policy import COOLDOWN_CYCLES

# The stored EUR/USD hours, imported once for the module.
pytestmark = pytest.mark.usefixtures("_candles")


@pytest.fixture(params=["database", "memory"])
def ledger(request) -> str:
    return request.param


def cycles(ledger: str, bot: Bot, slots: list, analyst=None) -> list[CycleRun]:
    """The bot's cycles of `slots` on the ledger: each through `run_cycle`, or all on one set of books loaded
    from the database now and written back at the end, as a replay's chunk is."""
    analyst = analyst or FakeAnalyst()
    if ledger == "database":
        outside = Outside(source=StoredCandles(), analyst=analyst, draw_chart=False)
        return [run_cycle(bot.pk, slot, outside, on_schedule=False) for slot in slots]
    book = Book(bot, StoredCandles(), analyst)
    runs = [book.cycle(slot) for slot in slots]
    book.flush()
    return runs


def hours(first, n: int) -> list:
    return [first + i * HOUR for i in range(n)]


def make_bot(owner, **fields) -> Bot:
    bot = BotFactory(
        owner=owner, exchange="sample", symbol="EUR/USD", timeframe="1h", status=Bot.Status.RUNNING, **fields
    )
    AutomationSession.objects.create(bot=bot)
    bot.refresh_from_db()  # its figures as the cycle reads them (2.00, not 2)
    return bot


def decision_of(run: CycleRun) -> dict:
    assert run.status == CycleRun.Status.SUCCEEDED, run.error
    return AILearningData.objects.get(cycle_run__bot=run.bot, cycle_run__slot=run.slot).feedback_data[
        "decision"
    ]


def closed_trade(bot: Bot, pnl: str, closed_at, outcome: str) -> Trade:
    return Trade.objects.create(
        owner=bot.owner, bot=bot, symbol=bot.symbol, side="BUY", amount=Decimal(1), price=Decimal("1.1"),
        status=Trade.Status.CLOSED, exit_price=Decimal("1.1"), pnl=Decimal(pnl), outcome=outcome,
        execution_time=closed_at - HOUR, closed_at=closed_at,
    )  # fmt: skip


def test_the_kill_switches_stop_new_trades_and_lift(ledger, alice):
    bot = make_bot(alice)
    switch = KillSwitch.objects.create(engaged=True, reason="incident")
    [run] = cycles(ledger, bot, [SLOT])
    assert decision_of(run) == {"trade": False, "reason": "trading halted by the global kill switch"}

    switch.engaged = False
    switch.save()
    alice.trading_halted = True
    alice.save(update_fields=["trading_halted"])
    [run] = cycles(ledger, bot, [SLOT + HOUR])
    assert decision_of(run) == {"trade": False, "reason": "trading halted by the user kill switch"}
    assert not Trade.objects.exists()

    alice.trading_halted = False
    alice.save(update_fields=["trading_halted"])
    [run] = cycles(ledger, bot, [SLOT + 2 * HOUR])
    assert decision_of(run)["trade"] is True
    assert Trade.objects.get().analysis.cycle_run.slot == SLOT + 2 * HOUR


def test_pins_override_the_policy(ledger, alice):
    bot = make_bot(alice)
    pin(bot, min_confidence=90)
    [run] = cycles(ledger, bot, [SLOT])
    assert decision_of(run) == {"trade": False, "reason": "confidence 80 below the minimum 90"}
    record = AILearningData.objects.get(cycle_run__slot=SLOT)
    assert record.feedback_data["policy"]["min_confidence"] == 90

    pin(bot, min_confidence=None, avoid_conditions=[{"field": "market_sentiment", "value": "BULLISH"}])
    [run] = cycles(ledger, bot, [SLOT + HOUR])  # the fake analyst is bullish
    assert decision_of(run) == {"trade": False, "reason": "pinned to avoid market_sentiment BULLISH"}
    assert not Trade.objects.exists()


def test_the_daily_loss_limit_pauses_the_bot(ledger, alice):
    bot = make_bot(alice, daily_loss_limit_pct=Decimal(2))
    closed_trade(bot, "-150", SLOT - 2 * HOUR, "LOSS")
    closed_trade(bot, "-60", SLOT - HOUR, "LOSS")
    closed_trade(bot, "-500", SLOT - 11 * HOUR, "LOSS")  # yesterday: not today's loss
    [run] = cycles(ledger, bot, [SLOT])
    # 210 lost today, more than 2 % of the equity left (10,000 - 710).
    assert decision_of(run) == {
        "trade": False,
        "reason": f"daily loss 210.00 reached the {bot.daily_loss_limit_pct}% limit",
    }
    bot.refresh_from_db()
    assert bot.status == Bot.Status.PAUSED
    assert not AutomationSession.objects.filter(bot=bot, stopped_at__isnull=True).exists()


def test_losses_in_a_row_cool_the_bot_down_counted_over_the_last_twenty_trades(ledger, alice):
    bot = make_bot(alice)
    yesterday = SLOT - timedelta(days=1)
    for i in range(25):  # 25 losses in a row: the streak is counted among the latest 20 closed trades
        closed_trade(bot, "-1", yesterday - (25 - i) * HOUR, "LOSS")
    closed_trade(bot, "5", yesterday - 30 * HOUR, "WIN")
    runs = cycles(ledger, bot, hours(SLOT, COOLDOWN_CYCLES + 1))
    for waited, run in enumerate(runs[:COOLDOWN_CYCLES]):
        assert decision_of(run) == {
            "trade": False,
            "reason": f"cooling down after 20 losses in a row ({waited} of {COOLDOWN_CYCLES} cycles waited)",
        }
    assert decision_of(runs[-1])["trade"] is True
    assert Trade.objects.filter(status=Trade.Status.OPEN).get().analysis.cycle_run == runs[-1]


def test_the_outcome_models_gate_switches_on_and_off(ledger, alice):
    bot = make_bot(alice)
    calls(alice, 240, win=sells_win)  # SELL calls win, BUY calls lose; the confidence says nothing
    model = ml.train(alice, until=T0 + 1000 * HOUR)
    assert model.is_active
    [run] = cycles(ledger, bot, [SLOT])  # the fake analyst buys
    gated = AILearningData.objects.get(cycle_run__slot=SLOT).feedback_data
    assert (gated["ml_gate"]["model"], gated["ml_gate"]["pass"]) == (model.version, False)
    assert gated["decision"]["trade"] is False and "the outcome model" in gated["decision"]["reason"]
    assert not Trade.objects.exists()

    # Fresh calls on which the stated confidence is right: the model no longer beats it and is switched off.
    calls(alice, 60, hour=300, seed=5, win=confidence_wins, confidence=informative)
    assert not ml.still_beats_baseline(model, until=T0 + 1000 * HOUR)
    [run] = cycles(ledger, bot, [SLOT + HOUR])
    taken = AILearningData.objects.get(cycle_run__slot=SLOT + HOUR).feedback_data
    assert "ml_gate" not in taken and taken["decision"]["trade"] is True
    assert Trade.objects.get().analysis.cycle_run == run


def test_a_trade_is_held_to_its_time_limit(ledger, alice, settings):
    settings.MAX_HOLDING_CANDLES = 3
    bot = make_bot(alice, max_open_trades=1)
    # A stop and a target far beyond what an hour of EUR/USD moves: only the time limit closes the trade.
    runs = cycles(ledger, bot, hours(SLOT, 6), FakeAnalyst(band=0.2))
    first = Trade.objects.get(analysis__cycle_run__slot=SLOT)
    assert first.status == Trade.Status.CLOSED
    assert first.learning_data["exit_reason"] == "TIME_EXIT"
    assert first.closed_at == first.execution_time + 3 * HOUR
    analysis = first.analysis
    assert (analysis.outcome, analysis.untraded, analysis.resolved_at) == (
        first.outcome,
        False,
        first.closed_at,
    )
    # Held to the limit, it blocked the next calls (one open trade at most); the slot after it closed trades.
    reasons = [decision_of(run)["reason"] for run in runs]
    assert reasons[1:3] == ["1 open trade(s), the most allowed is 1"] * 2
    assert Trade.objects.filter(bot=bot).count() >= 2


def test_a_users_bots_learn_pooled(ledger, alice, settings):
    settings.LEARNING_MIN_SAMPLES = 5
    settings.POLICY_RELEARN_CALLS = 1  # learned again on every resolved call: the latest saw them all
    veteran, newcomer = make_bot(alice, max_open_trades=1), make_bot(alice, max_open_trades=1)
    cycles(ledger, veteran, hours(SLOT, 30))
    cycles(ledger, newcomer, hours(SLOT + 30 * HOUR, 12))

    own = AILearningData.objects.filter(bot=newcomer, recommendation="BUY").exclude(outcome_r=None).count()
    theirs = AILearningData.objects.filter(bot=veteran, recommendation="BUY").exclude(outcome_r=None).count()
    assert 0 < own < settings.LEARNING_MIN_SAMPLES <= theirs
    policy = LearnedPolicy.objects.filter(bot=newcomer).latest("created_at", "pk")
    pooling = policy.sample_sizes["pooling"]
    assert pooling["source"] == "pooled" and pooling["why"] == "fewer than 5 calls of its own"
    assert (pooling["own"]["n"], pooling["others"]["n"]) == (own, theirs)
    assert policy.sample_sizes["resolved"] == own + theirs


@pytest.mark.parametrize(
    ("error", "traceback"),
    [(AnalystTemporaryError("the model is overloaded"), False), (ZeroDivisionError("a fault of ours"), True)],
)
def test_an_unexpected_error_keeps_its_traceback_in_the_log(ledger, alice, caplog, error, traceback):
    bot = make_bot(alice)
    [run] = cycles(ledger, bot, [SLOT], FakeAnalyst(fail=error))
    run.refresh_from_db()
    assert (run.status, run.failed_step, run.error) == (
        "FAILED",
        "analysis",
        f"{type(error).__name__}: {error}",
    )
    [logged] = [r for r in caplog.records if r.name == "automation.steps"]
    assert f"failed in analysis: {error}" in logged.getMessage()
    # The analyst's, the market's, the exchange's errors are expected now and then: a line each. Anything
    # else is a fault to find, with where it happened.
    assert (logged.exc_info is not None) is traceback
    assert logged.levelname == ("ERROR" if traceback else "WARNING")


def test_both_ledgers_write_the_same_rows_for_a_users_pooled_bots(db, settings):
    """The pooled scenario above, once on each ledger, for two owners: every run, analysis, trade, policy,
    snapshot and counter of both bots the same."""
    settings.LEARNING_MIN_SAMPLES = 5
    written = {}
    for ledger in ("database", "memory"):
        owner = UserFactory()
        veteran, newcomer = make_bot(owner, max_open_trades=1), make_bot(owner, max_open_trades=1)
        cycles(ledger, veteran, hours(SLOT, 30))
        cycles(ledger, newcomer, hours(SLOT + 30 * HOUR, 12))
        written[ledger] = [everything(veteran), everything(newcomer)]
    assert LearnedPolicy.objects.count() >= 4, "no policy learned: a weak test"
    for rows in written.values():
        assert rows[1]["policies"][-1][5]["pooling"]["source"] == "pooled"
    assert written["memory"] == written["database"]
