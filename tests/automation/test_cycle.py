"""The whole cycle on the database, with fakes for the outside world (analyst, chart, broker)."""

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from automation.analysts.base import AnalystResult, AnalystTemporaryError
from automation.analysts.schema import Analysis
from automation.cycle import Outside, run_cycle
from automation.models import AutomationSession, Bot, CycleRun, KillSwitch
from automation.schedule import STALE_RUN, slot_of
from learning.models import AILearningData
from market.sources import Market, StoredCandles
from tests.factories import BotFactory, import_eurusd
from trades.brokers.base import BrokerTemporaryError, Fill
from trades.models import Trade

SLOT = datetime(2017, 12, 4, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def _candles(django_db_setup, django_db_blocker):
    # Unblocked only to write and delete: held open across the yield, it let a test without the db marker
    # write outside any transaction, rows that outlived it.
    with django_db_blocker.unblock():
        import_eurusd()
    yield
    from market.models import Candle

    with django_db_blocker.unblock():
        Candle.objects.all().delete()


@pytest.fixture
def bot(_candles, alice):
    bot = BotFactory(
        owner=alice, exchange="sample", symbol="EUR/USD", timeframe="1h", status=Bot.Status.RUNNING
    )
    AutomationSession.objects.create(bot=bot)
    return bot


class FakeAnalyst:
    """Buys at the last close with a stop `band` below (0.2%) and a target twice as far above; counts its
    calls."""

    name = "fake"

    def __init__(self, recommendation="BUY", confidence=80, fail=None, band=0.002):
        self.recommendation, self.confidence, self.fail, self.calls = recommendation, confidence, fail, 0
        self.band = band

    def analyse(self, request):
        self.calls += 1
        if self.fail:
            raise self.fail
        close = request.indicators.close
        direction = 1 if self.recommendation == "BUY" else -1
        trade = self.recommendation != "HOLD"
        return AnalystResult(
            analysis=Analysis(
                summary="fake",
                market_sentiment="BULLISH",
                key_levels={"support": [], "resistance": []},
                recommendation=self.recommendation,
                confidence=self.confidence,
                reasoning="fake",
                entry=close if trade else None,
                stop_loss=close * (1 - self.band * direction) if trade else None,
                take_profit=close * (1 + 2 * self.band * direction) if trade else None,
                predicted_price=close,
                horizon=10,
            ),
            analyst="fake",
        )


class SeeingAnalyst(FakeAnalyst):
    """Keeps the chart it was shown."""

    def analyse(self, request):
        self.seen = request.chart_png
        return super().analyse(request)


class FailingBroker:
    """Cannot tell whether it placed the order, `times` times (always, by default), then fills it."""

    def __init__(self, times=None):
        self.times, self.calls = times, 0

    def place(self, order):
        self.calls += 1
        if self.times is None or self.calls <= self.times:
            raise BrokerTemporaryError("exchange timed out")
        return Fill(order.price, order.amount, Decimal("0.1"), "x-7", SLOT)


@pytest.fixture
def no_retry_waits(monkeypatch):
    monkeypatch.setattr("automation.cycle.PLACE_RETRY_WAITS", (0, 0, 0))


def fakes(**kwargs):
    return Outside(analyst=kwargs.pop("analyst", FakeAnalyst()), chart=lambda *a: b"\x89PNG fake", **kwargs)


def test_a_cycle_records_the_analysis_then_trades(bot):
    run = run_cycle(bot.pk, SLOT, fakes())
    assert run.status == CycleRun.Status.SUCCEEDED
    steps = ["prompt", "market_data", "indicators", "chart", "chart_store", "analysis", "record", "monitor"]
    steps += ["learn", "decide"]
    assert set(run.timings) == {*steps, "execute"}
    analysis = AILearningData.objects.get()
    assert (analysis.user, analysis.bot, analysis.cycle_run, analysis.recommendation) == (
        bot.owner,
        bot,
        run,
        "BUY",
    )
    assert analysis.market_conditions["as_of"] == SLOT.isoformat()
    # A chart the bot was given (as a TradingView capture is) is stored as its own.
    assert analysis.screenshot.name.startswith(f"charts/bots/bot{bot.pk}/EURUSD_1h_20171204_100000")
    trade = Trade.objects.get()
    assert (trade.analysis, trade.side, trade.status, trade.client_order_id) == (
        analysis,
        "BUY",
        "OPEN",
        f"tai-{run.pk}-open",
    )
    assert trade.execution_time == SLOT  # stored candles: the market clock is the slot
    assert trade.price > trade.stop_loss
    assert analysis.feedback_data["decision"]["trade"] is True


def test_the_cycle_sees_no_candle_after_its_slot(bot):
    seen = []

    class Spy(StoredCandles):
        def candles(self, market, *, limit, until=None):
            df = super().candles(market, limit=limit, until=until)
            seen.append(df.index[-1])
            return df

    run_cycle(bot.pk, SLOT, fakes(source=Spy()))
    assert seen == [SLOT - HOUR]  # the last candle closed at the slot


def test_duplicate_dispatch_runs_once(bot):
    analyst = FakeAnalyst()
    first = run_cycle(bot.pk, SLOT, fakes(analyst=analyst))
    again = run_cycle(bot.pk, SLOT, fakes(analyst=analyst))
    assert again.pk == first.pk
    assert analyst.calls == 1
    assert (CycleRun.objects.count(), AILearningData.objects.count(), Trade.objects.count()) == (1, 1, 1)


def test_a_redelivered_task_does_not_touch_a_running_slot_but_takes_over_a_dead_one(bot):
    running = CycleRun.objects.create(bot=bot, slot=SLOT, status="RUNNING", started_at=timezone.now())
    analyst = FakeAnalyst()
    assert run_cycle(bot.pk, SLOT, fakes(analyst=analyst)).status == "RUNNING"
    assert analyst.calls == 0

    CycleRun.objects.filter(pk=running.pk).update(started_at=timezone.now() - STALE_RUN - HOUR)
    assert run_cycle(bot.pk, SLOT, fakes(analyst=analyst)).status == "SUCCEEDED"
    assert analyst.calls == 1


def test_a_run_left_claimed_by_a_dead_worker_is_taken_over_once(bot):
    left = CycleRun.objects.create(bot=bot, slot=SLOT)
    CycleRun.objects.filter(pk=left.pk).update(created_at=timezone.now() - STALE_RUN - HOUR)
    analyst = FakeAnalyst()
    assert run_cycle(bot.pk, SLOT, fakes(analyst=analyst)).status == "SUCCEEDED"
    assert run_cycle(bot.pk, SLOT, fakes(analyst=analyst)).status == "SUCCEEDED"
    assert analyst.calls == 1


def test_a_crash_after_the_analysis_keeps_it_fails_the_run_and_the_next_slot_runs(bot, no_retry_waits):
    broker = FailingBroker()
    run = run_cycle(bot.pk, SLOT, fakes(broker=broker))
    assert broker.calls == 4  # asked again three times, with the same order
    assert (run.status, run.failed_step) == ("FAILED", "execute")
    assert "BrokerTemporaryError: exchange timed out" in run.error
    assert AILearningData.objects.filter(cycle_run=run).exists()
    assert not Trade.objects.exists()
    assert "analysis" in run.timings

    following = run_cycle(bot.pk, SLOT + HOUR, fakes())
    assert following.status == "SUCCEEDED"
    assert Trade.objects.count() == 1


def test_an_order_whose_fate_was_unknown_is_asked_about_again_and_recorded_once(bot, no_retry_waits):
    broker = FailingBroker(times=2)
    run = run_cycle(bot.pk, SLOT, fakes(broker=broker))
    assert (run.status, broker.calls) == ("SUCCEEDED", 3)
    [trade] = Trade.objects.all()
    assert (trade.client_order_id, trade.exchange_order_id) == (f"tai-{run.pk}-open", "x-7")


def test_an_analyst_failure_is_recorded_and_nothing_is_written(bot):
    run = run_cycle(
        bot.pk, SLOT, fakes(analyst=FakeAnalyst(fail=AnalystTemporaryError("OpenAI did not answer")))
    )
    assert (run.status, run.failed_step) == ("FAILED", "analysis")
    assert not AILearningData.objects.exists()


def test_a_live_market_slot_that_has_long_passed_is_skipped(bot):
    class LiveLike:
        def candles(self, market, *, limit, until=None):
            raise AssertionError("a skipped slot must not fetch candles")

    old_slot = slot_of(bot, timezone.now()) - 3 * HOUR
    run = run_cycle(bot.pk, old_slot, fakes(source=LiveLike()))
    assert run.status == "SKIPPED"
    assert "skipped rather than run late" in run.error


@pytest.mark.parametrize("switch", ["global", "user"])
def test_kill_switches_stop_new_trades(bot, switch):
    if switch == "global":
        KillSwitch.objects.create(engaged=True, reason="incident")
    else:
        type(bot.owner).objects.filter(pk=bot.owner.pk).update(trading_halted=True)
    run = run_cycle(bot.pk, SLOT, fakes())
    assert run.status == "SUCCEEDED"
    assert not Trade.objects.exists()
    assert (
        f"halted by the {switch} kill switch"
        in AILearningData.objects.get().feedback_data["decision"]["reason"]
    )


def test_daily_loss_limit_pauses_the_bot(bot):
    Trade.objects.create(
        owner=bot.owner, bot=bot, symbol="EUR/USD", side="BUY", amount=1, price=1, status="CLOSED", pnl=-600,
        outcome="LOSS", closed_at=SLOT - HOUR,
    )  # fmt: skip
    run_cycle(bot.pk, SLOT, fakes())
    bot.refresh_from_db()
    assert bot.status == Bot.Status.PAUSED
    assert Trade.objects.filter(status="OPEN").count() == 0
    assert bot.sessions.get().stop_reason.startswith("daily loss")


def test_max_open_trades_and_exits_over_the_following_slots(bot):
    for i in range(30):
        run_cycle(bot.pk, SLOT + i * HOUR, fakes())
    assert Trade.objects.filter(status="OPEN").count() <= bot.max_open_trades
    closed = Trade.objects.filter(status="CLOSED")
    assert closed.exists()
    for trade in closed:
        reason = trade.learning_data["exit_reason"]
        assert reason in {"STOP_LOSS", "TAKE_PROFIT", "TIME_EXIT"}
        if reason == "TAKE_PROFIT":
            assert trade.exit_price == trade.take_profit  # a limit order, at its level
        elif reason == "STOP_LOSS":
            # At the stop less the slippage, or at an open that gapped beyond it: never better than the stop.
            buy = trade.side == "BUY"
            assert trade.exit_price < trade.stop_loss if buy else trade.exit_price > trade.stop_loss
        assert trade.closed_at > trade.execution_time
    assert Trade.objects.count() == AILearningData.objects.filter(trade__isnull=False).count()


def test_run_cycle_command_reports_the_same_run_twice(bot, monkeypatch, settings):
    monkeypatch.setattr("automation.cycle.analyst_for", lambda bot: FakeAnalyst())
    monkeypatch.setattr("automation.analysis.render_chart", lambda *a: b"\x89PNG fake")
    reports = []
    for _ in range(2):
        out = io.StringIO()
        call_command(
            "run_cycle", "--bot", str(bot.pk), "--slot", "2017-12-04T10:30:00Z", "--json", stdout=out
        )
        reports.append(json.loads(out.getvalue()))
    assert reports[0] == reports[1]
    assert reports[0]["slot"] == SLOT.isoformat()
    assert reports[0]["status"] == "SUCCEEDED" and reports[0]["trade_id"]
    assert (CycleRun.objects.count(), Trade.objects.count()) == (1, 1)


def test_slots_follow_the_timeframe(bot):
    four_hours = BotFactory(owner=bot.owner, timeframe="4h")
    at = datetime(2024, 5, 1, 13, 37, tzinfo=UTC)
    assert slot_of(bot, at) == datetime(2024, 5, 1, 13, tzinfo=UTC)
    assert slot_of(four_hours, at) == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert Market("sample", "EUR/USD", "1h").period == HOUR


def test_a_live_trade_is_closed_by_an_order_on_the_exchange(bot):
    from learning.resolution import resolve_traded
    from trades.monitor import monitor_trades

    class RecordingBroker:
        def __init__(self):
            self.orders = []

        def place(self, order):
            self.orders.append(order)
            return Fill(Decimal("1.1"), order.amount, Decimal("0.5"), "x-1", SLOT + 3 * HOUR)

    candles = StoredCandles().candles(Market("sample", "EUR/USD", "1h"), limit=50, until=SLOT + 10 * HOUR)
    entry = Decimal(str(candles["close"].iloc[-11]))
    trade = Trade.objects.create(
        owner=bot.owner, bot=bot, symbol="EUR/USD", side="BUY", amount=Decimal(100), price=entry,
        stop_loss=entry - Decimal("0.0001"), status="OPEN", is_simulated=False, execution_time=SLOT,
    )  # fmt: skip
    broker = RecordingBroker()
    assert monitor_trades(bot, candles, HOUR, broker=broker, resolve=resolve_traded) == [trade]
    [order] = broker.orders
    assert (order.side, order.amount, order.client_order_id) == (
        "SELL",
        Decimal(100),
        f"tai-trade-{trade.pk}-close",
    )
    trade.refresh_from_db()
    assert (trade.status, trade.exit_price, trade.fees) == ("CLOSED", Decimal("1.1"), Decimal("0.5"))
    assert trade.learning_data["exit_reason"] == "STOP_LOSS"
    assert monitor_trades(bot, candles, HOUR, broker=broker, resolve=resolve_traded) == []
    assert len(broker.orders) == 1
