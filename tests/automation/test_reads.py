"""The live cycle's reads as plain SQL (automation/reads.py, automation/quotas.py) give what the ORM's
queries they replace gave, value for value and digit for digit (a Decimal's exponent included), on
PostgreSQL and SQLite alike: SQLite hands decimals over as floats and times as text, and the ORM's
converters are what make them the same."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import ModelConnection, Plan
from automation import reads
from automation.models import AutomationSession, Bot, CycleRun, KillSwitch
from automation.quotas import _used, cycles_made_today, spent_this_month
from automation.steps import window_section_of
from core import plain_sql as sql
from learning.insights import latest as latest_insights
from learning.insights import snapshot
from learning.ml import active_model
from learning.models import AILearningData, InsightSnapshot, LearnedPolicy, TrainedModel
from learning.policy import latest_policy
from learning.prompt import prompt_version
from learning.resolution import awaiting
from tests.factories import BotFactory, ExchangeAccountFactory
from trades import accounting
from trades.models import Trade

T0 = datetime(2024, 3, 4, 9, tzinfo=UTC)
HOUR = timedelta(hours=1)


def exact(value):
    """A value with what equality would hide: a Decimal's digits and exponent, a time's zone."""
    if isinstance(value, Decimal):
        return ("decimal", value.as_tuple())
    if isinstance(value, datetime):
        return ("time", value, value.utcoffset())
    if isinstance(value, list | tuple):
        return [exact(v) for v in value]
    return value


def fields(instance):
    return (
        None
        if instance is None
        else [exact(getattr(instance, f.attname)) for f in type(instance)._meta.concrete_fields]
    )


def trade(bot, status, **extra):
    values = {"owner": bot.owner, "bot": bot, "symbol": bot.symbol, "side": "BUY", "status": status,
              "amount": Decimal("0.123456789012"), "price": Decimal("101.1"),
              "fees": Decimal("0.0101")}  # fmt: skip
    return Trade.objects.create(**{**values, **extra})


@pytest.fixture
def bot(alice):
    return BotFactory(owner=alice)


def run(bot, slot, **extra):
    return CycleRun.objects.create(bot=bot, slot=slot, **extra)


def analysis(bot, run=None, **extra):
    values = {"user": bot.owner, "bot": bot, "cycle_run": run, "analysis_data": {"horizon": 5},
              "market_conditions": {"as_of": T0.isoformat(), "close": 1.2}, "symbol": bot.symbol,
              "timeframe": bot.timeframe, "predicted_price": Decimal("1.234567890123")}  # fmt: skip
    return AILearningData.objects.create(**{**values, **extra})


def assert_figures(bot, this_run, day):
    figures = reads.figures_of(bot, this_run, day)
    last_loss = accounting_last_loss(bot)
    assert exact(figures.realised) == exact(accounting.realised(bot))
    assert exact(figures.holding) == exact(accounting.holding(bot))
    assert exact(figures.day_pnls) == exact(accounting.closed_pnls(bot, day))
    assert figures.latest_outcomes == accounting.latest_outcomes(bot)
    assert exact(figures.last_loss) == exact(last_loss)
    runs = (
        CycleRun.objects.filter(bot=bot, slot__gt=last_loss).exclude(pk=this_run.pk).count()
        if last_loss
        else 0
    )
    assert figures.runs_since_loss == runs
    assert figures.kill_switch == KillSwitch.is_engaged()
    return figures


def accounting_last_loss(bot):
    losses = Trade.objects.filter(bot=bot, outcome="LOSS").order_by("-closed_at")
    return losses.values_list("closed_at", flat=True).first()


def test_the_situation_of_a_bot_with_nothing_yet(bot):
    figures = assert_figures(bot, run(bot, T0), T0.replace(hour=0))
    assert (figures.realised, figures.holding, figures.last_loss, figures.kill_switch) == (0, [], None, False)


def test_the_situation_of_a_bot_with_trades_runs_and_the_kill_switch(bot, alice):
    other = BotFactory(owner=alice)
    for i, (pnl, outcome) in enumerate(
        [
            ("12.345678901234", "WIN"),
            ("-3.1", "LOSS"),
            ("-0.000000000001", "LOSS"),
            ("7", "WIN"),
            ("-2.5", "LOSS"),
        ]
    ):
        trade(bot, "CLOSED", pnl=Decimal(pnl), outcome=outcome, closed_at=T0 - (4 - i) * 5 * HOUR)
    trade(bot, "CLOSED", pnl=Decimal("1.5"), outcome="WIN", closed_at=T0 - HOUR)  # the same time as another
    trade(bot, "CLOSED", pnl=Decimal("-1.25"), outcome="LOSS", closed_at=T0 - HOUR)
    trade(bot, "OPEN", amount=Decimal("2.5"), price=Decimal("99.123456789"), fees=Decimal("0.05"))
    trade(bot, "PENDING", is_simulated=False, client_order_id="tai-1-open")
    trade(bot, "CANCELLED")
    trade(other, "CLOSED", pnl=Decimal("-100"), outcome="LOSS", closed_at=T0)  # another bot's
    this = run(bot, T0)
    for hours in (-30, -2, -1, 1, 2):
        run(bot, T0 + hours * HOUR)
    figures = assert_figures(bot, this, T0.replace(hour=0))
    assert figures.last_loss == T0 and figures.runs_since_loss == 2
    assert len(figures.holding) == 2
    KillSwitch.objects.create(engaged=True)
    assert assert_figures(bot, this, T0 - 2 * HOUR).kill_switch


def test_the_situation_counts_the_latest_outcomes_only(bot):
    for i in range(25):
        trade(
            bot, "CLOSED", pnl=Decimal(i % 3 - 1), outcome="LOSS" if i % 3 else "WIN", closed_at=T0 + i * HOUR
        )
    assert len(assert_figures(bot, run(bot, T0), T0).latest_outcomes) == accounting.STREAK_WINDOW


@pytest.mark.parametrize("charged", [True, False])
def test_the_caps_used(bot, alice, charlie, charged):
    now = timezone.now()  # the runs and analyses are counted by when they were made
    runs = [run(bot, T0 + i * HOUR) for i in range(4)]
    CycleRun.objects.filter(pk=runs[1].pk).update(status=CycleRun.Status.SKIPPED)
    run(BotFactory(owner=charlie), T0)
    for cost in ("0.000123", "1.5", "0.333333"):
        analysis(bot, cost_usd=Decimal(cost))
    analysis(bot, cost_usd=Decimal(9), billed_to=AILearningData.BilledTo.OWNER)
    made, spent = _used(runs[3], now, charged)
    assert made == cycles_made_today(alice, now, before=runs[3])
    assert exact(spent) == exact(spent_this_month(alice, now) if charged else Decimal(0))
    assert _used(runs[3], now + timedelta(days=40), charged) == (0, Decimal(0))


def test_the_window_section_and_the_latest_insights(bot, alice):
    window = (T0.replace(hour=0), T0.replace(hour=0) + timedelta(days=1))
    assert reads.window_section(bot, window) == (None, None)
    snapshot(alice, bot=bot)
    snapshot(alice, bot=bot)
    section, insights = reads.window_section(bot, window)
    assert (section, insights) == (window_section_of(bot, window), latest_insights(alice, bot=bot))
    assert insights is not None
    analysis(bot, run(bot, T0 + HOUR), prompt_section="second")
    analysis(bot, run(bot, T0), prompt_section="first")
    analysis(bot, run(bot, T0 - 10 * HOUR), prompt_section="the day before")
    assert reads.window_section(bot, window) == (window_section_of(bot, window), None) == ("first", None)


def test_the_latest_policy_and_outcome_model(bot, alice, charlie):
    assert reads.latest_policy(bot) is None and reads.active_model(bot) is None
    for confidence in (55.5, 60.25):
        LearnedPolicy.objects.create(
            bot=bot, min_confidence=confidence, patterns=[{"action": "skip"}], pins={"size_factor": 0.5},
            sample_sizes={"calls": 3}, data_from=T0, data_to=T0 + HOUR,
        )  # fmt: skip
    assert fields(reads.latest_policy(bot)) == fields(latest_policy(bot))
    for version, active, owner in (
        ("1", True, alice),
        ("2", True, alice),
        ("3", False, alice),
        ("4", True, charlie),
    ):
        TrainedModel.objects.create(
            user=owner, version=version, algorithm="logit", features=["x"], trained_from=T0,
            trained_to=T0 + HOUR, metrics={"auc": 0.6}, artifact=f"models/{version}.json", is_active=active,
        )  # fmt: skip
    assert (
        fields(reads.active_model(bot)) == fields(active_model(alice))
        and reads.active_model(bot).version == "2"
    )


def test_the_analyses_awaiting_and_the_resolved_counts(bot, alice):
    untraded = analysis(bot)
    traded = analysis(bot)
    trade(bot, "OPEN", analysis=traded)
    cancelled = analysis(bot, confidence_score=70.5)
    trade(bot, "CANCELLED", analysis=cancelled, client_order_id="tai-2-open")
    analysis(bot, outcome="WIN")
    analysis(BotFactory(owner=alice))
    found = reads.awaiting(bot)
    assert [fields(a) for a in found] == [fields(a) for a in awaiting(bot).order_by("created_at")]
    assert [a.pk for a in found] == [untraded.pk, cancelled.pk]
    assert reads.resolved_counts(bot) == (1, 0)
    snapshot(alice, bot=bot)
    assert reads.resolved_counts(bot) == (1, InsightSnapshot.objects.get(bot=bot).resolved_count)


def test_the_prompt_version(db):
    assert reads.prompt_version("a section").pk == prompt_version("a section").pk
    stored = prompt_version("another")
    assert fields(reads.prompt_version("another")) == fields(stored)
    assert timezone.is_aware(reads.prompt_version("another").created_at)


def test_the_open_trades_the_monitor_watches(bot, alice):
    assert reads.watched(bot) == []
    for hours in (3, 1, 2):
        trade(bot, "OPEN", execution_time=T0 + hours * HOUR, learning_data={"horizon": hours})
    trade(bot, "CLOSED", pnl=Decimal(1), outcome="WIN", closed_at=T0)
    trade(bot, "PENDING", client_order_id="tai-3-open")  # a paper bot's: never settled
    trade(BotFactory(owner=alice), "OPEN")
    found = reads.watched(bot)
    expected = Trade.objects.filter(bot=bot, status="OPEN").select_related("bot").order_by("execution_time")
    assert [fields(t) for t in found] == [fields(t) for t in expected]
    assert all(t.bot is bot for t in found)
    trade(bot, "PENDING", is_simulated=False, client_order_id="tai-4-open")
    assert reads.watched(bot) is None  # settled by the monitor first, which then reads them itself


def related(bot):
    owner = bot.owner
    return [
        fields(bot),
        fields(owner),
        fields(owner.plan),
        fields(bot.exchange_account),
        fields(bot.model_connection),
    ]


def test_the_bot_as_the_cycle_reads_it(bot, alice):
    orm = Bot.objects.select_related("owner__plan", "exchange_account", "model_connection")
    with pytest.raises(Bot.DoesNotExist):
        reads.bot_to_run(bot.pk + 1000, running_only=False)
    assert reads.bot_to_run(bot.pk, running_only=True) == (None, None)
    read, session = reads.bot_to_run(bot.pk, running_only=False)
    assert related(read) == related(orm.get(pk=bot.pk)) and session is None
    alice.plan = Plan.objects.create(name="pro", monthly_llm_usd=Decimal("12.345"))
    alice.save()
    bot.exchange_account = ExchangeAccountFactory(owner=alice)
    bot.model_connection = ModelConnection.objects.create(
        owner=alice, label="mine", base_url="https://example.com/v1"
    )
    bot.save()
    Bot.objects.filter(pk=bot.pk).update(status=Bot.Status.RUNNING)
    AutomationSession.objects.create(bot=bot, stopped_at=T0)
    AutomationSession.objects.create(bot=bot)
    with CaptureQueriesContext(connection) as queries:
        read, session = reads.bot_to_run(bot.pk, running_only=True)
        assert related(read) == related(orm.get(pk=bot.pk))
    assert len(queries) == 2  # the relations are read with the bot, as select_related reads them
    assert session == AutomationSession.objects.get(bot=bot, stopped_at__isnull=True).pk


def test_what_a_replay_reads_each_day(bot, alice, charlie):
    def orm():
        session = AutomationSession.objects.filter(bot=bot, stopped_at__isnull=True).first()
        alice.refresh_from_db(fields=["trading_halted"])
        return reads.DayStanding(session and session.pk, alice.trading_halted, KillSwitch.is_engaged())

    assert reads.day_standing(bot) == orm() == reads.DayStanding(None, False, False)
    AutomationSession.objects.create(bot=bot, stopped_at=T0)
    AutomationSession.objects.create(bot=BotFactory(owner=charlie))  # another bot's
    opened = AutomationSession.objects.create(bot=bot)
    charlie.trading_halted = True  # another owner's
    charlie.save()
    assert reads.day_standing(bot) == orm() == reads.DayStanding(opened.pk, False, False)
    alice.trading_halted = True
    alice.save()
    KillSwitch.objects.create(engaged=False)
    assert reads.day_standing(bot) == orm() == reads.DayStanding(opened.pk, True, False)
    KillSwitch.objects.create(engaged=True)
    assert reads.day_standing(bot) == orm() == reads.DayStanding(opened.pk, True, True)


def test_the_trade_of_an_order(bot):
    assert reads.trade_of("tai-9-open") is None
    made = trade(bot, "PENDING", is_simulated=False, client_order_id="tai-9-open", learning_data={"a": 1})
    assert fields(reads.trade_of("tai-9-open")) == fields(Trade.objects.get(pk=made.pk))


def test_rows_written_and_updated_in_plain_sql_are_the_orms(bot):
    def made(**extra):
        return AILearningData(
            user=bot.owner, bot=bot, analysis_data={"horizon": 5, "levels": [1.5, None]},
            market_conditions={"as_of": T0.isoformat()}, symbol=bot.symbol, timeframe=bot.timeframe,
            confidence_score=81.5, predicted_price=Decimal("1.234567890123"), screenshot="charts/x.png",
            feedback_data={"note": "ü"}, cost_usd=Decimal("0.000123"), **extra,
        )  # fmt: skip

    orm, raw = made(), made()
    orm.save()
    assert sql.insert(raw) is raw and raw.pk and not raw._state.adding
    stored = {a.pk: fields(a)[1:-2] for a in AILearningData.objects.all()}  # but the key and the times
    assert stored[raw.pk] == stored[orm.pk]
    assert raw.created_at == AILearningData.objects.get(pk=raw.pk).created_at
    assert sql.update(AILearningData, {"id": raw.pk}, {"feedback_data": {"a": [1]}, "updated_at": T0}) == 1
    assert sql.update(AILearningData, {"id": raw.pk, "outcome": "WIN"}, {"outcome": "LOSS"}) == 0
    assert AILearningData.objects.filter(pk=raw.pk, feedback_data={"a": [1]}, updated_at=T0).exists()
