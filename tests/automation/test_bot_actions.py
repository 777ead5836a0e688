import socket
from datetime import timedelta
from functools import partial

import pytest
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from accounts.models import Plan
from automation.forms import BotForm
from automation.models import AutomationSession, Bot
from automation.run_now import bot_run_now
from automation.schedule import offset_of
from automation.services import BotActionError, bot_pause, bot_start, bot_stop
from market import exchanges
from market.importers import Bar, store_bars
from tests.factories import BotFactory, ExchangeAccountFactory


@pytest.fixture
def sample_market(db):
    from datetime import UTC, datetime

    store_bars("sample", "EUR/USD", "1h", [Bar(datetime(2024, 1, 1, tzinfo=UTC), 1, 1.1, 0.9, 1, 5)])


@pytest.fixture
def paper_bot(alice, sample_market):
    return BotFactory(owner=alice, exchange="sample", symbol="EUR/USD", timeframe="1h")


def test_start_opens_a_session_and_schedules_the_cycle(paper_bot):
    bot_start(paper_bot)
    paper_bot.refresh_from_db()
    assert paper_bot.status == Bot.Status.RUNNING
    assert paper_bot.sessions.get().is_open
    # Due at the bot's minute of the hour, within the next hour; no beat entry of its own.
    assert paper_bot.next_due.minute == int(offset_of(paper_bot).total_seconds() // 60)
    assert timedelta(0) < paper_bot.next_due - timezone.now() <= timedelta(hours=1)
    assert not PeriodicTask.objects.filter(name__startswith="bot ").exists()

    with pytest.raises(BotActionError, match="already running"):
        bot_start(paper_bot)
    assert AutomationSession.objects.count() == 1


def test_stop_closes_the_session_with_the_reason_and_disables_the_schedule(paper_bot):
    bot_start(paper_bot)
    bot_stop(paper_bot, "going on holiday")
    session = paper_bot.sessions.get()
    assert (session.is_open, session.stop_reason) == (False, "going on holiday")
    paper_bot.refresh_from_db()
    assert paper_bot.next_due is None
    with pytest.raises(BotActionError, match="not running"):
        bot_stop(paper_bot)


def test_pause_disables_the_schedule_and_start_again_re_enables_it(paper_bot):
    bot_start(paper_bot)
    assert bot_pause(paper_bot, "daily loss limit")
    assert Bot.objects.get(pk=paper_bot.pk).next_due is None
    bot_start(paper_bot)
    assert Bot.objects.get(pk=paper_bot.pk).next_due is not None
    assert paper_bot.sessions.count() == 2


def test_settings_saved_by_a_request_that_read_the_bot_before_a_pause_keep_the_pause(paper_bot, alice):
    # An edit request reads the running bot; the daily loss limit pauses it; the request saves the form.
    bot_start(paper_bot)
    stale = Bot.objects.get(pk=paper_bot.pk)
    data = {**BotForm(instance=stale, owner=alice).initial, "min_confidence": 70}
    form = BotForm({k: v for k, v in data.items() if v is not None}, instance=stale, owner=alice)
    assert bot_pause(Bot.objects.get(pk=paper_bot.pk), "daily loss limit")
    assert form.is_valid(), form.errors
    form.save()

    paper_bot.refresh_from_db()
    assert (paper_bot.status, paper_bot.min_confidence) == (Bot.Status.PAUSED, 70)
    assert not paper_bot.sessions.filter(stopped_at__isnull=True).exists()
    assert paper_bot.next_due is None


def test_plan_limit_of_running_bots(alice, sample_market):
    alice.plan = Plan.objects.create(name="Starter", max_running_bots=1)
    alice.save()
    first, second = (BotFactory(owner=alice, exchange="sample", symbol="EUR/USD") for _ in range(2))
    bot_start(first)
    with pytest.raises(BotActionError, match="at most 1 bot"):
        bot_start(second)


def test_live_bot_needs_an_account_and_the_operator_switch(alice, settings):
    live = BotFactory(owner=alice, mode=Bot.Mode.LIVE, live_confirmed=True)
    settings.LIVE_TRADING_ENABLED = False
    with pytest.raises(BotActionError, match="Live trading is disabled"):
        bot_start(live)
    settings.LIVE_TRADING_ENABLED = True
    with pytest.raises(BotActionError, match="needs an exchange account of yours"):
        bot_start(live)
    live.exchange_account = ExchangeAccountFactory(owner=alice)
    live.live_confirmed = False
    with pytest.raises(BotActionError, match="Confirm"):
        bot_start(live)


def test_a_symbol_the_exchange_does_not_list_is_refused(alice, exchange_stand_in):
    bot = BotFactory(owner=alice, exchange="binance", symbol="DOGE/EUR")
    with pytest.raises(BotActionError, match="DOGE/EUR cannot be traded on binance"):
        bot_start(bot)
    listed = BotFactory(owner=alice, exchange="binance", symbol="BTC/USDT")
    bot_start(listed)  # validated against the stand-in's markets and candles
    assert listed.status == Bot.Status.RUNNING


def test_an_unreachable_exchange_is_explained_in_words(alice, monkeypatch):
    # A port nothing listens on: the connection is refused, as for an exchange that is down.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        origin = f"http://127.0.0.1:{closed.getsockname()[1]}"
    monkeypatch.setattr(
        exchanges, "make_client", partial(exchanges.make_client, api_origin=origin, config={"timeout": 1000})
    )
    bot = BotFactory(owner=alice, exchange="binance", symbol="BTC/USDT")
    with pytest.raises(BotActionError) as refused:
        bot_start(bot)
    said = str(refused.value)
    assert said.startswith("binance did not answer just now") and "try again in a few minutes" in said
    assert "127.0.0.1" not in said and "Error" not in said  # no URL, no exception's name
    assert Bot.objects.get(pk=bot.pk).status == Bot.Status.STOPPED


def test_offsets_spread_bots_over_the_period(alice):
    bots = BotFactory.create_batch(60, owner=alice)
    minutes = {offset_of(b) for b in bots}
    assert len(minutes) > 30
    assert all(timedelta(0) <= m < timedelta(hours=1) for m in minutes)
    assert offset_of(bots[0]) == offset_of(Bot.objects.get(pk=bots[0].pk))  # stable


def test_run_now_queues_the_current_slot_once(paper_bot, django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr("automation.tasks.run_cycle_task.delay", lambda *args: sent.append(args))
    with pytest.raises(BotActionError, match="Start"):
        bot_run_now(paper_bot)
    bot_start(paper_bot)
    with django_capture_on_commit_callbacks(execute=True):
        slot = bot_run_now(paper_bot)
    assert sent == [(paper_bot.pk, slot)]


def test_buttons_on_the_bot_page(client, alice, paper_bot, charlie, monkeypatch):
    monkeypatch.setattr("automation.tasks.run_cycle_task.delay", lambda *args: None)
    client.force_login(alice)
    page = client.post(reverse("bot_action", args=[paper_bot.pk, "start"]), follow=True).content.decode()
    assert "is running" in page and "Run now" in page
    assert (
        "is on its way"
        in client.post(reverse("bot_action", args=[paper_bot.pk, "run-now"]), follow=True).content.decode()
    )
    assert (
        "already running"
        in client.post(reverse("bot_action", args=[paper_bot.pk, "start"]), follow=True).content.decode()
    )

    client.force_login(charlie)
    assert client.post(reverse("bot_action", args=[paper_bot.pk, "stop"])).status_code == 404
    assert client.get(reverse("bot_action", args=[paper_bot.pk, "stop"])).status_code in {404, 405}
    paper_bot.refresh_from_db()
    assert paper_bot.status == Bot.Status.RUNNING
