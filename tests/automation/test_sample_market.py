"""A bot on the demo's `sample` market, run on the wall clock: a new candle every hour, with that hour's time,
and calls that resolve, by the cycle's learning and by the monitor between cycles."""

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from automation import shared_reads
from automation.cycle import run_cycle
from automation.models import AutomationSession, Bot, CycleRun
from automation.monitoring import monitor_running_bots
from automation.replay import REPLAY_DOMAIN
from automation.schedule import slot_of
from learning.models import AILearningData
from market.sources import SampleCandles
from tests.factories import BotFactory, import_eurusd
from trades.models import Trade

from .test_cycle import FakeAnalyst, fakes

HOUR = timedelta(hours=1)


@pytest.fixture
def bot(db, alice):
    import_eurusd()
    bot = BotFactory(
        owner=alice, exchange="sample", symbol="EUR/USD", timeframe="1h", status=Bot.Status.RUNNING
    )
    AutomationSession.objects.create(bot=bot)
    return bot


@pytest.fixture
def seen(monkeypatch):
    """The candles each cycle read, through the source the cycle chose itself."""
    frames = []

    def spying(market):
        source = cycle_source_for(market)
        read = source.candles

        def candles(*args, **kwargs):
            frames.append((source, read(*args, **kwargs)))
            return frames[-1][1]

        source.candles = candles
        return source

    cycle_source_for = shared_reads.source_for
    monkeypatch.setattr(shared_reads, "source_for", spying)
    return frames


def test_a_bot_on_sample_gets_a_new_candle_every_wall_clock_hour(bot, seen):
    now = slot_of(bot, timezone.now())  # the hour that is starting: its slot analyses the hour just closed
    for slot in (now - HOUR, now):
        assert run_cycle(bot.pk, slot, fakes(analyst=FakeAnalyst("HOLD"))).status == CycleRun.Status.SUCCEEDED

    [(source, before), (_, after)] = seen
    assert isinstance(source, SampleCandles)
    # Each cycle's last candle is the hour that closed at its slot, and the later window moved on by one.
    assert (before.index[-1], after.index[-1]) == (now - 2 * HOUR, now - HOUR)
    assert after.index[-2] == before.index[-1]
    assert (after.iloc[-2] == before.iloc[-1]).all()
    assert not (after.iloc[-1] == before.iloc[-1]).all()
    # The analyses, their charts and the runs tell the same hours.
    analyses = AILearningData.objects.order_by("cycle_run__slot")
    assert [a.market_conditions["as_of"] for a in analyses] == [(now - HOUR).isoformat(), now.isoformat()]
    assert [a.cycle_run.slot for a in analyses] == [now - HOUR, now]
    assert f"EURUSD_1h_{now:%Y%m%d_%H%M%S}" in analyses[1].screenshot.name


def test_a_call_on_sample_resolves_after_its_horizon(bot):
    start = slot_of(bot, timezone.now()) - 10 * HOUR
    hold = fakes(analyst=FakeAnalyst("HOLD"))  # horizon 10: scored over the 10 hours after its slot
    run_cycle(bot.pk, start, hold)
    first = AILearningData.objects.get()

    run_cycle(bot.pk, start + 9 * HOUR, hold)
    first.refresh_from_db()
    assert first.outcome == ""

    run_cycle(bot.pk, start + 10 * HOUR, hold)
    first.refresh_from_db()
    assert first.outcome in {"WIN", "LOSS"} and first.untraded
    assert first.resolved_at == start + 10 * HOUR


def test_the_monitor_closes_a_sample_trade_on_the_hours_since_it_opened(bot):
    start = slot_of(bot, timezone.now()) - 12 * HOUR
    run_cycle(bot.pk, start, fakes())  # a BUY with a stop and a target, held 10 hours at most
    trade = Trade.objects.get()
    assert (trade.status, trade.execution_time) == ("OPEN", start)

    assert monitor_running_bots() == 1

    trade.refresh_from_db()
    assert trade.status == "CLOSED" and start < trade.closed_at <= start + 10 * HOUR
    analysis = AILearningData.objects.get()
    assert (analysis.outcome, analysis.resolved_at) == (trade.outcome, trade.closed_at)
    assert analysis.untraded is False


def test_the_monitor_leaves_a_replays_trades_to_the_replay(bot):
    """A replay's or a backtest's account (under replay.invalid) keeps the trades left open at its end as the
    replay left them: the same trade that the monitor closes for alice (above) stays open there."""
    start = slot_of(bot, timezone.now()) - 12 * HOUR
    run_cycle(bot.pk, start, fakes())
    owner = bot.owner
    owner.email = f"backtest-1@{REPLAY_DOMAIN}"
    owner.save(update_fields=["email"])

    assert monitor_running_bots() == 0

    assert Trade.objects.get().status == "OPEN"


def test_analyze_on_sample_analyses_the_hour_just_closed(bot, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    before = slot_of(bot, timezone.now())
    out = io.StringIO()
    args = ["--exchange", "sample", "--symbol", "EUR/USD", "--timeframe", "1h", "--analyst", "technical"]
    call_command("analyze", *args, "--json", stdout=out)
    after = slot_of(bot, timezone.now())
    chart = Path(json.loads(out.getvalue())["chart"]).name
    assert any(chart.startswith(f"EURUSD_1h_{slot:%Y%m%d_%H%M%S}_") for slot in (before, after)), chart
