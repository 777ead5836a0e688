from decimal import Decimal

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.audit import record
from accounts.models import ApiToken, AuditEvent, ModelConnection, Plan
from automation.analysts.pricing import price_of
from automation.models import (
    AutomationSession,
    Backtest,
    Bot,
    CycleRun,
    Heartbeat,
    KillSwitch,
    MetricTotal,
    ModelPrice,
    RunNowRequest,
)
from learning.models import (
    AILearningData,
    AnalystAnswer,
    InsightCounter,
    InsightSnapshot,
    LearnedPolicy,
    PolicyCounter,
    PromptVersion,
    TrainedModel,
)
from market.models import Candle, IndicatorSet, StoredMarket
from notifications.models import Channel, Delivery, EventSwitch, Notification
from tests.factories import BotFactory, UserFactory, force_login_verified
from trades.models import Trade

BEAT_MODELS = {ClockedSchedule, CrontabSchedule, IntervalSchedule, SolarSchedule}


@pytest.fixture
def operator_client(client, db):
    force_login_verified(client, UserFactory(email="ops@example.com", is_staff=True, is_superuser=True))
    return client


def test_every_model_is_in_the_admin(db):
    from django.apps import apps

    ours = [
        m
        for m in apps.get_models()
        if m._meta.app_label in {"accounts", "automation", "learning", "trades", "market", "notifications"}
    ]
    missing = [m.__name__ for m in ours if m not in admin.site._registry]
    assert not missing


def test_every_admin_changelist_renders_with_search_and_filters(operator_client, alice_bot):
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        assert operator_client.get(url).status_code == 200, url
        if model_admin.search_fields:
            assert operator_client.get(url, {"q": "alice"}).status_code == 200, url


@pytest.fixture
def one_of_each(alice, alice_bot, alice_account):
    """A row of every model, linked the way the cycle links them."""
    now = timezone.now()
    session = AutomationSession.objects.create(bot=alice_bot)
    run = CycleRun.objects.create(bot=alice_bot, session=session, slot=now)
    prompt = PromptVersion.objects.create(sha256="a" * 64, text="Analyse this chart")
    channel = Channel.objects.create(owner=alice, kind="EMAIL", label="mail")
    notification = Notification.objects.create(user=alice, event="TRADE_OPENED", title="BUY", text="BUY 1")
    analysis = AILearningData.objects.create(
        user=alice,
        bot=alice_bot,
        session=session,
        cycle_run=run,
        prompt_version=prompt,
        analysis_data={"recommendation": "BUY"},
        symbol="BTC/USDT",
        timeframe="1h",
        recommendation="BUY",
    )
    return [
        alice,
        Plan.objects.create(name="Pro", max_running_bots=10),
        alice_account,
        ApiToken.issue(alice, "laptop")[0],
        # The sign-in lockout's rows (django-axes) and a second factor (django-otp): operators unlock a pair
        # by deleting its attempt, and remove a device for a user who lost it.
        AccessAttempt.objects.create(
            username="alice@example.com", ip_address="203.0.113.7", user_agent="x", failures_since_start=2
        ),
        AccessLog.objects.create(username="alice@example.com", ip_address="203.0.113.7", user_agent="x"),
        AccessFailureLog.objects.create(
            username="alice@example.com", ip_address="203.0.113.7", user_agent="x"
        ),
        TOTPDevice.objects.create(user=alice, name="phone"),
        record(alice, AuditEvent.Action.TRADING_HALTED, "Trading halted.", actor=alice),
        alice_bot,
        session,
        run,
        RunNowRequest.objects.create(user=alice, bot=alice_bot),
        Backtest.objects.create(
            owner=alice,
            exchange="binance",
            symbol="BTC/USDT",
            timeframe="1h",
            start=now,
            end=now,
            status=Backtest.Status.FAILED,
            error="The replay stopped on an error: ValueError: no prices",
        ),
        Heartbeat.objects.create(name="worker", seen_at=now),
        KillSwitch.objects.create(engaged=False),
        MetricTotal.objects.create(name="tradingai_cycle_runs_total", labels="{}", value=3),
        ModelConnection.objects.create(owner=alice, label="Ollama", base_url="http://127.0.0.1:11434/v1"),
        ModelPrice.objects.get_or_create(
            model="gpt-4o-mini", defaults={"input_usd_per_mtok": 0.15, "output_usd_per_mtok": 0.6}
        )[0],
        prompt,
        analysis,
        AnalystAnswer.objects.create(key="b" * 64, billed_to="operator", claimed_at=now),
        InsightSnapshot.objects.create(user=alice, data={"total": 1}),
        InsightCounter.objects.create(user=alice, symbol="BTC/USDT", timeframe="1h", dimension="all", n=1),
        PolicyCounter.objects.create(user=alice, bot_id=alice_bot.pk, bucket=70, n=1, r_sum=1.5),
        LearnedPolicy.objects.create(bot=alice_bot, min_confidence=70),
        TrainedModel.objects.create(version="v1", algorithm="logistic", trained_from=now, trained_to=now),
        Trade.objects.create(
            owner=alice,
            bot=alice_bot,
            session=session,
            analysis=analysis,
            symbol="BTC/USDT",
            side="BUY",
            amount=Decimal("0.1"),
            price=Decimal("42000"),
        ),
        IndicatorSet.objects.create(
            exchange="binance",
            symbol="BTC/USDT",
            timeframe="1h",
            open_time=now,
            candles=300,
            values={"rsi": 50},
        ),
        Candle.objects.create(
            exchange="binance",
            symbol="BTC/USDT",
            timeframe="1h",
            open_time=now,
            open=1,
            high=2,
            low=1,
            close=2,
            volume=3,
        ),
        StoredMarket.objects.create(
            exchange="nyse",
            symbol="ACME/USD",
            splits=[{"date": "2005-02-02", "ratio": "2:1", "line": 32, "timeframe": "1d"}],
        ),
        channel,
        EventSwitch.objects.create(user=alice, event="TRADE_OPENED", enabled=False),
        notification,
        Delivery.objects.create(
            user=alice, notification=notification, channel=channel, channel_label="mail", kind="EMAIL"
        ),
    ]


def test_every_admin_change_page_renders(operator_client, one_of_each):
    assert {type(obj) for obj in one_of_each} == set(admin.site._registry) - {
        Group,
        PeriodicTask,
        *BEAT_MODELS,
    }
    for obj in one_of_each:
        opts = obj._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        assert operator_client.get(url).status_code == 200, url


def test_pause_action_pauses_running_bots_and_closes_their_sessions(operator_client, alice):
    running = BotFactory(owner=alice, status=Bot.Status.RUNNING)
    session = AutomationSession.objects.create(bot=running)
    stopped = BotFactory(owner=alice, status=Bot.Status.STOPPED)
    response = operator_client.post(
        reverse("admin:automation_bot_changelist"),
        {"action": "pause_bots", "_selected_action": [running.pk, stopped.pk]},
        follow=True,
    )
    assert "Paused 1 bot(s); 1 were not running." in response.content.decode()
    running.refresh_from_db()
    stopped.refresh_from_db()
    session.refresh_from_db()
    assert (running.status, stopped.status) == (Bot.Status.PAUSED, Bot.Status.STOPPED)
    assert session.stopped_at is not None
    assert session.stop_reason == "paused by operator ops@example.com"


def test_an_operator_prices_models_in_the_admin_and_the_next_call_is_costed_by_it(operator_client):
    row, _ = ModelPrice.objects.get_or_create(
        model="gpt-4o-mini", defaults={"input_usd_per_mtok": 0.15, "output_usd_per_mtok": 0.6}
    )  # seeded by a migration, unless a committing test flushed the table
    url = reverse("admin:automation_modelprice_change", args=[row.pk])
    changed = {"model": "gpt-4o-mini", "input_usd_per_mtok": "0.30", "output_usd_per_mtok": "1.20"}
    assert operator_client.post(url, changed).status_code == 302
    assert price_of("gpt-4o-mini").cost(1_000_000, 500_000) == Decimal("0.900000")
    added = {"model": "llava:13b", "input_usd_per_mtok": "0", "output_usd_per_mtok": "0"}
    assert operator_client.post(reverse("admin:automation_modelprice_add"), added).status_code == 302
    assert price_of("llava:13b").cost(10_000, 10_000) == 0  # a local model the operator prices at nothing
    refused = operator_client.post(url, {**changed, "output_usd_per_mtok": "-1"})
    assert "output_usd_per_mtok" in refused.context["adminform"].form.errors
