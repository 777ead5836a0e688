"""Backtests from the browser (issue 19): the form's market, range and policy settings, the plan's caps, the
replay run by its task into an account of its own with its progress and report on the backtest's row, a
failure in words, a lost one failed by the sweep, and another user's backtest a 404 everywhere."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import Plan
from automation.backtest_start import UNREACHABLE
from automation.backtests import STALE_BACKTEST, fail_lost_backtests
from automation.models import Backtest, Bot, CycleRun
from automation.replay import REPLAY_DOMAIN
from learning.models import AILearningData
from tests.automation.test_health import closed_port
from tests.factories import import_eurusd
from tradingai.celery import app

MARKET = "sample|EUR/USD|1h"
# Two weeks of the shipped EUR/USD hours, from a Monday: 239 slots (the pair rests at weekends), seconds.
FORM = {
    "market": MARKET, "start_day": "2017-10-02", "end_day": "2017-10-14", "starting_balance": "5000",
    "risk_per_trade_pct": "2", "max_open_trades": "3", "daily_loss_limit_pct": "5", "min_confidence": "60",
}  # fmt: skip


@pytest.fixture
def candles(db):
    import_eurusd()


def start(client, capture, **changes):
    with capture(execute=True):
        return client.post("/backtests/new/", {**FORM, **changes})


def test_a_backtest_replays_its_range_into_its_own_account_and_keeps_its_report(
    alice, alice_client, candles, eager_tasks, django_capture_on_commit_callbacks
):
    form = alice_client.get("/backtests/new/")
    assert [key for key, _ in form.context["form"].fields["market"].choices] == [MARKET]
    assert "sample EUR/USD 1h: 2017-04-19 to 2018-02-07 (5,000 candles)" in form.content.decode()

    response = start(alice_client, django_capture_on_commit_callbacks)

    backtest = Backtest.objects.get(owner=alice)
    assert response.status_code == 302 and response["Location"] == f"/backtests/{backtest.pk}/"
    assert backtest.status == Backtest.Status.DONE, backtest.error
    assert (backtest.start, backtest.end) == (
        datetime(2017, 10, 2, tzinfo=UTC),
        datetime(2017, 10, 15, tzinfo=UTC),
    )
    # Every slot of the range ran, and the progress says so.
    runs = CycleRun.objects.filter(bot=backtest.bot)
    assert backtest.cycles_total == backtest.cycles_done == runs.count() == 239
    assert runs.filter(slot__lt=backtest.start).count() == runs.filter(slot__gt=backtest.end).count() == 0
    assert backtest.report["runs"]["succeeded"] + backtest.report["runs"]["failed"] == backtest.cycles_total
    # In an account of its own, with the settings chosen; nothing of it is alice's.
    bot = backtest.bot
    assert bot.owner.email == f"backtest-{backtest.pk}@{REPLAY_DOMAIN}" and not bot.owner.is_active
    assert (bot.risk_per_trade_pct, bot.max_open_trades, bot.min_confidence, bot.starting_balance) == (
        2,
        3,
        60,
        5000,
    )
    assert bot.status == Bot.Status.STOPPED
    assert not Bot.objects.filter(owner=alice).exists()
    assert not AILearningData.objects.filter(user=alice).exists()
    assert backtest.report["market"] == "sample EUR/USD 1h" and backtest.report["analyses"] == 239

    page = alice_client.get(f"/backtests/{backtest.pk}/").content.decode()
    assert "What the figures say" in page and backtest.report["claims"][0]["text"] in page
    for plot in ("plot-equity", "plot-accuracy", "plot-calibration", "plot-policy"):
        assert f'data-plot="{plot}"' in page
    assert "backtest.js" not in page  # over: nothing to poll
    assert alice_client.get(f"/backtests/{backtest.pk}/status.json").json() == {
        "status": "DONE", "status_display": "Done", "cycles_done": backtest.cycles_done,
        "cycles_total": backtest.cycles_total, "cycles_failed": backtest.cycles_failed, "error": "",
    }  # fmt: skip
    assert alice_client.get(f"/backtests/{backtest.pk}/report.json").json() == backtest.report
    listing = alice_client.get("/backtests/").content.decode()
    assert f'href="/backtests/{backtest.pk}/"' in listing and "Done" in listing


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"market": "binance|BTC/USDT|1h"}, "market", "Select a valid choice"),
        ({"market": "sample|EUR/USD|4h"}, "market", "Select a valid choice"),
        ({"start_day": "2017-10-14", "end_day": "2017-10-02"}, "end_day", "The range ends before it starts."),
        (
            {"start_day": "2019-01-01", "end_day": "2019-01-31"},
            "start_day",
            "The stored candles end at 2018-02-07",
        ),
        ({"start_day": "2017-04-01", "end_day": "2017-04-19"}, "end_day", "the first slot is 2017-04-"),
        ({"start_day": "someday"}, "start_day", "Enter a valid date."),
        ({"risk_per_trade_pct": "50"}, "risk_per_trade_pct", "less than or equal to 10"),
        ({"max_open_trades": "0"}, "max_open_trades", "greater than or equal to 1"),
        ({"min_confidence": "-5"}, "min_confidence", "greater than or equal to 0"),
        ({"starting_balance": ""}, "starting_balance", "This field is required."),
    ],
)
def test_a_bad_choice_is_a_form_error_and_starts_nothing(
    alice_client, candles, django_capture_on_commit_callbacks, changes, field, words
):
    response = start(alice_client, django_capture_on_commit_callbacks, **changes)

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert any(words in error for error in errors[field]), errors
    assert not Backtest.objects.exists()


def test_the_plans_caps_a_backtests_candles_and_how_many_run_at_once(
    alice, alice_client, candles, settings, django_capture_on_commit_callbacks
):
    settings.DEFAULT_BACKTEST_MAX_CANDLES = 200
    too_long = start(alice_client, django_capture_on_commit_callbacks)
    assert too_long.context["form"].non_field_errors() == [
        "This range holds 239 candles and your plan allows 200 a backtest: shorten it."
    ]
    assert not Backtest.objects.exists()

    # Without a worker here, the first stays queued, and a second is refused in words while it is.
    assert start(alice_client, django_capture_on_commit_callbacks, end_day="2017-10-06").status_code == 302
    second = start(alice_client, django_capture_on_commit_callbacks, end_day="2017-10-06")
    assert second.context["form"].non_field_errors() == [
        "Your backtest of sample EUR/USD, 1 hour is still queued and your plan runs 1 at a time: wait for it "
        "to finish, then start this one."
    ]
    assert Backtest.objects.count() == 1

    # A plan's own caps apply over the defaults.
    alice.plan = Plan.objects.create(name="Research", backtests_at_once=2, backtest_max_candles=300)
    alice.save(update_fields=["plan"])
    assert start(alice_client, django_capture_on_commit_callbacks).status_code == 302
    assert Backtest.objects.filter(owner=alice, status=Backtest.Status.QUEUED).count() == 2


def test_a_failed_backtest_says_why(
    alice, alice_client, candles, eager_tasks, monkeypatch, django_capture_on_commit_callbacks
):
    def broken(bot, **window):
        raise ValueError("the evaluation met a market with no prices")

    monkeypatch.setattr("automation.backtests.evaluate", broken)  # a fault injected after the replay ran
    start(alice_client, django_capture_on_commit_callbacks, end_day="2017-10-03")

    backtest = Backtest.objects.get(owner=alice)
    assert backtest.status == Backtest.Status.FAILED and backtest.finished_at
    assert (
        backtest.error
        == "The replay stopped on an error: ValueError: the evaluation met a market with no prices"
    )
    assert backtest.report is None
    page = alice_client.get(f"/backtests/{backtest.pk}/").content.decode()
    assert backtest.error in page and "Failed" in page
    assert alice_client.get(f"/backtests/{backtest.pk}/report.json").status_code == 404
    # Over, so it no longer holds her place.
    monkeypatch.undo()
    assert start(alice_client, django_capture_on_commit_callbacks, end_day="2017-10-03").status_code == 302


def test_a_backtest_whose_worker_was_lost_is_failed_by_the_sweep(alice):
    long_ago = timezone.now() - STALE_BACKTEST - timedelta(minutes=1)
    window = {
        "exchange": "sample",
        "symbol": "EUR/USD",
        "timeframe": "1h",
        "start": long_ago,
        "end": long_ago,
    }
    lost = Backtest.objects.create(owner=alice, status=Backtest.Status.RUNNING, cycles_done=300, **window)
    moving = Backtest.objects.create(owner=alice, status=Backtest.Status.RUNNING, **window)
    queued = Backtest.objects.create(owner=alice, **window)
    Backtest.objects.filter(pk__in=(lost.pk, queued.pk)).update(updated_at=long_ago)

    assert fail_lost_backtests() == 1

    lost.refresh_from_db()
    assert lost.status == Backtest.Status.FAILED
    assert lost.error == (
        "The worker running it stopped after 300 cycles: no progress for 0:15:00. Start a new one."
    )
    assert Backtest.objects.get(pk=moving.pk).status == Backtest.Status.RUNNING
    assert Backtest.objects.get(pk=queued.pk).status == Backtest.Status.QUEUED


def test_another_users_backtest_is_a_404_everywhere(alice, charlie, client, candles):
    theirs = Backtest.objects.create(
        owner=alice, exchange="sample", symbol="EUR/USD", timeframe="1h", start=timezone.now(),
        end=timezone.now(), status=Backtest.Status.DONE, report={"market": "alice-report-7c1e"},
    )  # fmt: skip
    client.force_login(charlie)
    for path in ("", "status.json", "report.json"):
        assert client.get(f"/backtests/{theirs.pk}/{path}").status_code == 404
    assert "alice-report-7c1e" not in client.get("/backtests/").content.decode()
    assert "No backtests yet" in client.get("/backtests/").content.decode()


def test_a_backtest_the_queue_cannot_take_is_failed_and_said_so(
    transactional_db, alice, alice_client, monkeypatch
):
    """Committed as a request commits (no test transaction around it), so the task is sent in the view."""
    import_eurusd()
    closed = f"redis://127.0.0.1:{closed_port()}/0"
    monkeypatch.setattr(app.conf, "broker_url", closed)
    monkeypatch.setenv("CELERY_BROKER_URL", closed)  # as test_health does: Celery reads it first
    # New connections for the closed broker, the process's own ones put back afterwards.
    monkeypatch.setattr(app, "_pool", None)
    monkeypatch.setattr(app.amqp, "_producer_pool", None)

    response = alice_client.post("/backtests/new/", FORM)

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [UNREACHABLE]
    backtest = Backtest.objects.get(owner=alice)
    assert (backtest.status, backtest.error) == (Backtest.Status.FAILED, UNREACHABLE)
    # Failed, so it holds no place: the next submit is not refused for it.
    assert "still queued" not in alice_client.post("/backtests/new/", FORM).content.decode()
