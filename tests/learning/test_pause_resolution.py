"""Issue 15, finding 10: an untraded call whose whole horizon falls in a market pause (EUR/USD has no candle
from Friday 21:00 to Sunday 22:00 UTC) had no candle to be scored on and stayed pending for ever. It now
resolves on the candles after the pause, through the live cycle and the replay's books alike."""

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from automation.cycle import Outside, run_cycle
from automation.models import AutomationSession, Bot
from automation.replay import REPLAY_DOMAIN, ReplaySpec, replay, replay_bot
from learning.models import AILearningData
from tests.automation.test_cycle import FakeAnalyst
from tests.automation.test_replay import everything, through_run_cycle
from tests.factories import BotFactory, import_eurusd

HOUR = timedelta(hours=1)
# fixtures/EURUSD_1h.csv: Friday 2017-12-08's last candle opens at 21:00; the next at Sunday 22:00.
FRIDAY_CLOSE = datetime(2017, 12, 8, 22, tzinfo=UTC)
REOPENED = datetime(2017, 12, 10, 22, tzinfo=UTC)


class HoldFor(FakeAnalyst):
    """A HOLD for `horizon` candles."""

    def __init__(self, horizon):
        super().__init__(recommendation="HOLD")
        self.horizon = horizon

    def analyse(self, request):
        result = super().analyse(request)
        return dataclasses.replace(
            result, analysis=result.analysis.model_copy(update={"horizon": self.horizon})
        )


@pytest.fixture
def eurusd(db):
    import_eurusd()


def test_a_friday_evening_call_resolves_on_the_candles_after_the_weekend(eurusd, alice):
    bot = BotFactory(
        owner=alice, exchange="sample", symbol="EUR/USD", timeframe="1h", status=Bot.Status.RUNNING
    )
    AutomationSession.objects.create(bot=bot)
    outside = Outside(analyst=HoldFor(3), chart=lambda *a: b"\x89PNG fake")

    def cycle(slot):
        run = run_cycle(bot.pk, slot, outside, on_schedule=False)
        assert run.status == "SUCCEEDED", run.error

    cycle(FRIDAY_CLOSE)  # due Saturday 01:00, in the pause
    call = AILearningData.objects.get(cycle_run__slot=FRIDAY_CLOSE)
    assert call.market_conditions["as_of"] == FRIDAY_CLOSE.isoformat()

    cycle(FRIDAY_CLOSE + 12 * HOUR)  # Saturday: no candle since
    cycle(REOPENED + HOUR)  # one candle after the pause of the three its horizon counts
    call.refresh_from_db()
    assert call.outcome == ""

    cycle(REOPENED + 3 * HOUR)  # Sunday 22:00, 23:00 and Monday 00:00 have closed
    call.refresh_from_db()
    assert (call.outcome, call.untraded, call.resolved_at) == ("WIN", True, REOPENED + 3 * HOUR)
    assert call.actual_price == Decimal("1.17714")  # Monday 00:00's close, within an ATR of Friday's


def test_the_replays_books_resolve_it_as_the_cycle_does(eurusd, settings):
    settings.LEARNING_MIN_SAMPLES = 20
    # Friday morning to Monday noon: the technical analyst's 10-candle calls of Friday evening fall in the
    # pause.
    spec = ReplaySpec("sample", "EUR/USD", "1h", start=FRIDAY_CLOSE - 12 * HOUR, end=REOPENED + 14 * HOUR)
    reference = replay_bot(spec)
    reference.owner.email = f"reference@{REPLAY_DOMAIN}"
    reference.owner.save(update_fields=["email"])
    through_run_cycle(spec, reference)
    booked = replay(spec)

    for bot in (reference, booked):
        friday = AILearningData.objects.get(bot=bot, cycle_run__slot=FRIDAY_CLOSE)
        assert friday.outcome, "the Friday-evening call is still pending"
        assert friday.resolved_at > REOPENED
    expected, got = everything(reference), everything(booked)
    for name in expected:
        assert got[name] == expected[name], name
