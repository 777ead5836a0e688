"""Where each event is raised: real cycles over the shipped EUR/USD hours open and close trades, fail and
pause; the spending cap is told once a month, the weekly summary once a week."""

from datetime import UTC, datetime
from decimal import Decimal

from automation.analysts.base import AnalystTemporaryError
from automation.cycle import run_cycle
from automation.models import Bot, CycleRun
from automation.quotas import cycle_refusal
from automation.services import bot_pause
from learning.models import AILearningData
from notifications.events import Event
from notifications.models import Notification
from notifications.services import switches_set
from notifications.summary import send_weekly_summaries
from tests.automation.test_cycle import HOUR, SLOT, FakeAnalyst, _candles, bot, fakes
from trades.models import Trade

from .conftest import add_channel

__all__ = ["_candles", "bot"]


def events_of(user) -> list[str]:
    return list(Notification.objects.filter(user=user).order_by("pk").values_list("event", flat=True))


def test_cycles_tell_of_trades_opened_and_closed(bot, alice, django_capture_on_commit_callbacks):
    add_channel(alice, kind="EMAIL")
    with django_capture_on_commit_callbacks() as sent:
        for i in range(30):
            run_cycle(bot.pk, SLOT + i * HOUR, fakes())
    opened = Trade.objects.filter(owner=alice).count()
    closed = Trade.objects.filter(owner=alice, status="CLOSED").count()
    assert opened and closed
    assert events_of(alice).count(Event.TRADE_OPENED) == opened
    assert events_of(alice).count(Event.TRADE_CLOSED) == closed
    assert len(sent) == opened + closed  # one delivery task per channel, sent once each commits

    trade = Trade.objects.filter(status="CLOSED").order_by("closed_at").first()
    told = Notification.objects.get(event=Event.TRADE_CLOSED, data__trade=trade.pk)
    assert told.title == f"BUY EUR/USD closed: {trade.outcome}"
    assert f"P&L {trade.pnl:+.2f} USD" in told.text
    assert trade.learning_data["exit_reason"].replace("_", " ").lower() in told.text


def test_a_failed_cycle_and_a_paused_bot_are_told(bot, alice):
    add_channel(alice, kind="EMAIL")
    run = run_cycle(
        bot.pk, SLOT, fakes(analyst=FakeAnalyst(fail=AnalystTemporaryError("OpenAI did not answer")))
    )
    assert run.status == CycleRun.Status.FAILED
    failed = Notification.objects.get(user=alice, event=Event.RUN_FAILED)
    assert "failed at its analysis step" in failed.text and "OpenAI did not answer" in failed.text

    Trade.objects.create(
        owner=alice, bot=bot, symbol="EUR/USD", side="BUY", amount=1, price=1, status="CLOSED", pnl=-600,
        outcome="LOSS", closed_at=SLOT,
    )  # fmt: skip
    run_cycle(bot.pk, SLOT + HOUR, fakes())
    bot.refresh_from_db()
    assert bot.status == Bot.Status.PAUSED
    paused = Notification.objects.get(user=alice, event=Event.BOT_PAUSED)
    assert paused.text.startswith(f"“{bot.name}” (EUR/USD) was paused: daily loss")
    assert not bot_pause(bot, "again")  # not running: nothing paused, nothing told
    assert Notification.objects.filter(event=Event.BOT_PAUSED).count() == 1


def test_an_event_switched_off_is_not_told(bot, alice):
    add_channel(alice, kind="EMAIL")
    switches_set(alice, {Event.TRADE_OPENED: False, Event.TRADE_CLOSED: True})
    run_cycle(bot.pk, SLOT, fakes())
    assert Trade.objects.exists()
    assert Event.TRADE_OPENED not in events_of(alice)


def test_the_spending_cap_is_told_once_a_month(bot, alice, settings):
    settings.DEFAULT_MONTHLY_LLM_USD = Decimal("1")
    add_channel(alice, kind="EMAIL")
    AILearningData.objects.create(
        user=alice, bot=bot, symbol="EUR/USD", timeframe="1h", analysis_data={}, cost_usd=Decimal("2")
    )
    december = datetime(2026, 12, 6, 9, tzinfo=UTC)
    runs = [CycleRun.objects.create(bot=bot, slot=SLOT + i * HOUR) for i in range(3)]
    assert cycle_refusal(runs[0], True, december).startswith("skipped: LLM spend")
    assert cycle_refusal(runs[1], True, december)
    assert cycle_refusal(runs[2], False, december) == ""  # what the operator does not pay for is not capped
    (told,) = Notification.objects.filter(user=alice, event=Event.SPEND_CAP)
    assert told.key == "2026-12"
    assert "reached the plan's cap of US$ 1.00" in told.text

    AILearningData.objects.filter(user=alice).update(created_at=datetime(2027, 1, 2, tzinfo=UTC))
    assert cycle_refusal(runs[0], True, datetime(2027, 1, 3, tzinfo=UTC))
    assert Notification.objects.filter(user=alice, event=Event.SPEND_CAP).count() == 2


def test_the_weekly_summary_says_what_learning_measured_once_a_week(bot, alice, charlie):
    add_channel(alice, kind="EMAIL")
    for i in range(30):
        run_cycle(bot.pk, SLOT + i * HOUR, fakes())
    now = datetime(2017, 12, 7, 12, tzinfo=UTC)
    Trade.objects.filter(status="CLOSED").update(closed_at=datetime(2017, 12, 5, tzinfo=UTC))
    assert send_weekly_summaries(now) == 1  # charlie has no channel
    assert send_weekly_summaries(now) == 0  # the same ISO week
    told = Notification.objects.get(user=alice, event=Event.WEEKLY_SUMMARY)
    closed = Trade.objects.filter(status="CLOSED")
    won = closed.filter(outcome="WIN").count()
    lost = closed.filter(outcome="LOSS").count()
    assert f"{closed.count()} trades closed ({won} won, {lost} lost)" in told.text
    assert told.data["trades_closed"] == closed.count()
    insights = bot.insight_snapshots.order_by("-computed_at", "-pk").first().data["accuracy"]
    assert f"over {insights['n']} resolved calls" in told.text
    assert f"accuracy {insights['rate'] * 100:.0f} %" in told.text

    switches_set(alice, {Event.WEEKLY_SUMMARY: False})
    assert send_weekly_summaries(datetime(2017, 12, 14, 12, tzinfo=UTC)) == 0
