"""The replay: the cycle over stored EUR/USD hours with a simulated clock, into an account of its own. No
lookahead (changing every candle after t changes no decision up to t), resumable (a replay stopped and
started again decides exactly as one run straight through), and a report whose figures are the database's."""

import dataclasses
import io
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import models

from automation import replay_book
from automation.analysis import LOOKBACK
from automation.analysts.base import AnalysisRequest
from automation.analysts.service import get_analyst
from automation.analysts.technical import TechnicalAnalyst
from automation.cycle import Outside, run_cycle
from automation.evaluation import evaluate
from automation.models import AutomationSession, CycleRun
from automation.replay import (
    REPLAY_DOMAIN,
    PreloadedCandles,
    ReplaySpec,
    _resume,
    _running,
    replay,
    replay_bot,
    slots,
)
from automation.replay_ahead import WorkedAhead
from automation.replay_snapshots import MadeBehind
from learning.insights import compute_insights
from learning.ml import retrain
from learning.models import (
    AILearningData,
    InsightCounter,
    InsightSnapshot,
    LearnedPolicy,
    PolicyCounter,
    TrainedModel,
)
from learning.prompt import prompt_version
from market.importers import parse_csv, store_bars
from market.indicators import compute
from market.sources import Market, StoredCandles
from tests.factories import EURUSD_CSV, BotFactory, UserFactory, import_eurusd
from tests.learning.test_prompt_reaches_the_model import ANSWER
from tests.stand_ins.openai_server import openai_stand_in

__all__ = ["openai_stand_in"]
from trades.models import Trade
from trades.outcomes import Bars

START = datetime(2017, 10, 2, 0, tzinfo=UTC)  # a Monday
CUT = START + timedelta(hours=100)
END = START + timedelta(hours=170)


@pytest.fixture
def candles(db, settings):
    settings.LEARNING_MIN_SAMPLES = 20  # so that the policy learns within these hours
    import_eurusd()


def decisions(bot, until: datetime | None = None) -> list[tuple]:
    """What the bot decided at each slot: the call, its confidence, the policy it used, whether and how it
    traded, and what became of it if that was known by `until`."""
    rows = AILearningData.objects.filter(bot=bot).select_related("cycle_run").order_by("cycle_run__slot")
    out = []
    for a in rows:
        slot = a.cycle_run.slot
        if until and slot > until:
            continue
        trade = Trade.objects.filter(analysis=a).values_list("side", "amount", "price").first()
        known = a.resolved_at is not None and (until is None or a.resolved_at <= until)
        out.append(
            (
                slot,
                a.recommendation,
                a.confidence_score,
                json.dumps(a.feedback_data.get("decision")),
                json.dumps(a.feedback_data.get("policy")),
                trade,
                (a.outcome, a.outcome_r) if known else None,
            )
        )
    return out


def test_preloaded_candles_are_what_the_stored_ones_are(candles):
    market = Market("sample", "EUR/USD", "1h")
    preloaded = PreloadedCandles.load(market)
    for until in (START, START + timedelta(minutes=30), CUT, datetime(2018, 2, 7, 17, tzinfo=UTC)):
        expected = StoredCandles().candles(market, limit=300, until=until)
        got = preloaded.candles(market, limit=300, until=until)
        assert got.equals(expected), until


def test_preloaded_candles_hand_out_windows_of_the_frames_they_would_hand_out(candles):
    market = Market("sample", "EUR/USD", "1h")
    preloaded = PreloadedCandles.load(market)
    last = preloaded.frame.index[-1].to_pydatetime() + market.period
    early = datetime(2000, 1, 1, tzinfo=UTC)
    for until in (early, START, START + timedelta(minutes=30), CUT, last):
        for limit in (1, 300):
            expected = preloaded.candles(market, limit=limit, until=until)
            window = preloaded.window(market, limit, until)
            assert len(window) == len(expected), (until, limit)
            assert vars(window.bars) == vars(Bars(expected)), (until, limit)
            assert window.frame.equals(expected), (until, limit)
    with pytest.raises(ValueError, match="as of a slot"):
        preloaded.window(market, 300, None)


def test_the_books_give_each_section_the_version_it_is_stored_under(candles):
    book = replay_book.Book(replay_bot(ReplaySpec("sample", "EUR/USD", "1h")), StoredCandles(), None)
    # Given again, its figures changed (the same version), its words changed, and given back.
    sections = ["Win rate 55% over 20 calls."] * 2 + [
        "Win rate 60% over 21 calls.",
        "Avoid SELL.",
        "Win rate 55% over 20 calls.",
    ]
    got = [book.prompt_version(section) for section in sections]
    assert [v.pk for v in got] == [prompt_version(section).pk for section in sections]
    assert len({v.pk for v in got}) == 2


def test_the_worked_ahead_answers_are_what_the_cycle_would_compute(candles):
    market = Market("sample", "EUR/USD", "1h")
    source = PreloadedCandles.load(market)
    todo = slots(ReplaySpec("sample", "EUR/USD", "1h", start=START, end=START + timedelta(hours=5)), source)
    with WorkedAhead(source, market, todo) as ahead:
        for slot in todo:
            seen = source.window(market, LOOKBACK, slot)
            indicators = ahead.indicators_of(market, seen)
            assert indicators == compute(seen.frame)
            request = AnalysisRequest(market=market, indicators=indicators, chart_png=b"")
            assert ahead.analyst.analyse(request) == TechnicalAnalyst().analyse(request)
        assert ahead.analyst.answered == len(todo)
        # Asked again, and about indicators it did not hand out (worked out again): answered afresh.
        assert ahead.analyst.analyse(request) == TechnicalAnalyst().analyse(request)
        again = AnalysisRequest(market=market, indicators=ahead.indicators_of(market, seen), chart_png=b"")
        assert ahead.analyst.analyse(again) == TechnicalAnalyst().analyse(again)
        assert ahead.analyst.answered == len(todo)


def test_no_lookahead_changing_the_future_changes_no_decision_before_it(candles):
    # The same hours on a second market whose every candle after CUT is changed: prices 3 % higher and
    # swinging wider, volumes doubled.
    altered = []
    for bar in parse_csv(EURUSD_CSV.read_text()):
        if bar.open_time >= CUT:
            bar = dataclasses.replace(
                bar, open=bar.open * 1.03, high=bar.high * 1.05, low=bar.low * 1.01, close=bar.close * 1.03,
                volume=bar.volume * 2,
            )  # fmt: skip
        altered.append(bar)
    store_bars("altered", "EUR/USD", "1h", altered)

    original = replay(ReplaySpec("sample", "EUR/USD", "1h", start=START, end=END))
    changed = replay(ReplaySpec("altered", "EUR/USD", "1h", start=START, end=END))

    before = decisions(original, until=CUT)
    assert len(before) == 101 and any(d[5] for d in before), "no trade before the cut: a weak test"
    assert decisions(changed, until=CUT) == before
    assert decisions(changed) != decisions(original)  # the future did change what came after


def test_a_replay_resumed_decides_as_one_run_straight_through(candles):
    spec = ReplaySpec("sample", "EUR/USD", "1h", start=START, end=END)
    straight = replay(spec)

    # Another account's bot on the same market: what the learning sees is its own history only.
    resumed = BotFactory(
        owner=UserFactory(), exchange="sample", symbol="EUR/USD", timeframe="1h", analyst="TECHNICAL"
    )
    replay(dataclasses.replace(spec, end=CUT), bot=resumed)
    assert CycleRun.objects.filter(bot=resumed).count() == 101
    replay(spec, bot=resumed)
    replay(spec, bot=resumed)  # nothing left to run: nothing changes

    assert CycleRun.objects.filter(bot=resumed).count() == CycleRun.objects.filter(bot=straight).count()
    assert decisions(resumed) == decisions(straight)
    # And everything learned on the way: the books reloaded from the database at the cut are the ones kept.
    resumed_rows, straight_rows = everything(resumed), everything(straight)
    for name in ("analyses", "trades", "policies", "snapshots", "counters", "policy_counters"):
        assert resumed_rows[name] == straight_rows[name], name


def test_the_replay_account_is_apart_and_cannot_log_in(candles, alice):
    bot = replay(ReplaySpec("sample", "EUR/USD", "1h", start=START, end=START + timedelta(hours=5)))
    assert bot.owner.email.endswith(f"@{REPLAY_DOMAIN}")
    assert not bot.owner.is_active and not bot.owner.has_usable_password()
    assert bot.status == "STOPPED"  # left as it was
    assert not AILearningData.objects.filter(user=alice).exists()


def test_the_command_writes_a_report_whose_figures_are_the_databases(candles, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "replay", "--exchange", "sample", "--symbol", "EUR/USD", "--timeframe", "1h",
        "--from", START.isoformat(), "--to", END.isoformat(), "--report", str(tmp_path), "--json",
        stdout=out, stderr=err,
    )  # fmt: skip
    figures = json.loads(out.getvalue())
    assert "replay [" in err.getvalue()  # the progress bar
    assert json.loads((tmp_path / "report.json").read_text()) == figures
    html = (tmp_path / "report.html").read_text()
    assert 'src="plotly.min.js"' in html and (tmp_path / "plotly.min.js").stat().st_size > 1_000_000
    assert html.count("data-plot=") == 5

    bot = replay_bot(ReplaySpec("sample", "EUR/USD", "1h"))
    analyses = AILearningData.objects.filter(bot=bot)
    resolved = analyses.exclude(outcome="")
    closed = Trade.objects.filter(bot=bot, status="CLOSED")
    # 124 hours: the pair does not trade from Friday night to Sunday night.
    assert figures["runs"]["succeeded"] == CycleRun.objects.filter(bot=bot, status="SUCCEEDED").count() == 124
    assert figures["analyses"] == analyses.count()
    assert (figures["accuracy"]["n"], figures["accuracy"]["hits"]) == (
        resolved.count(),
        resolved.filter(outcome="WIN").count(),
    )
    insights = compute_insights(bot.owner, bot=bot)
    assert figures["accuracy"] == insights["accuracy"]
    assert figures["brier"] == insights["brier"]
    account = figures["strategies"]["adaptive_account"]
    assert account["trades"] == closed.count() > 0
    assert account["pnl"] == pytest.approx(float(sum(t.pnl for t in closed)), abs=0.01)
    assert sum(w["n"] for w in figures["by_week"]) == resolved.count()
    assert figures["strategies"]["no_trade"]["return"] == 0.0
    assert json.loads(json.dumps(evaluate(bot, start=START, end=END), default=str)) == figures


def test_the_command_refuses_what_it_cannot_replay(candles):
    with pytest.raises(Exception, match="no stored candles"):
        call_command("replay", "--exchange", "nowhere", "--symbol", "X/Y", "--timeframe", "1h")
    with pytest.raises(Exception, match="after --to"):
        call_command(
            "replay", "--exchange", "sample", "--symbol", "EUR/USD", "--timeframe", "1h",
            "--from", END.isoformat(), "--to", START.isoformat(),
        )  # fmt: skip


def test_a_replay_with_the_openai_analyst_reports_its_tokens_and_cost(candles, openai_stand_in, settings):
    settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "sk-test", openai_stand_in.base_url
    settings.OPENAI_MAX_RETRIES = 0
    settings.OPENAI_INPUT_USD_PER_MTOK, settings.OPENAI_OUTPUT_USD_PER_MTOK = 0.15, 0.60
    for _ in range(4):
        openai_stand_in.add_content(json.dumps(ANSWER), prompt_tokens=1200, completion_tokens=150)

    bot = replay(ReplaySpec("sample", "EUR/USD", "1h", "openai", start=START, end=START + timedelta(hours=3)))

    assert len(openai_stand_in.requests) == 4
    # The model was shown the chart: a vision analyst gets one drawn even in a replay.
    content = openai_stand_in.requests[0].body["messages"][1]["content"]
    assert any(part["type"] == "image_url" for part in content)
    llm = evaluate(bot)["llm"]
    assert (llm["analyses"], llm["prompt_tokens"], llm["completion_tokens"]) == (4, 4800, 600)
    assert llm["cost_usd"] == pytest.approx(4 * (1200 * 0.15 + 150 * 0.60) / 1e6)
    assert llm["pnl_net_of_cost"] == pytest.approx(-llm["cost_usd"], abs=1e-9)  # HOLDs: no trade, no P&L


def through_run_cycle(spec: ReplaySpec, bot) -> None:
    """The replay as the bot would live it: `run_cycle` slot after slot, each step reading and writing the
    database, the outcome model retrained each simulated day: what the books must reproduce."""
    source = PreloadedCandles.load(spec.market)
    outside = Outside(source=source, analyst=get_analyst(spec.analyst), draw_chart=False)
    day = None
    with _running(bot):
        for slot in slots(spec, source):
            if slot.date() != day:
                day = slot.date()
                _resume(bot)
                retrain(bot.owner, slot)
            run_cycle(bot.pk, slot, outside, on_schedule=False)


def everything(bot) -> dict:
    """What a replay leaves behind, without keys, clocks of the wall and ids."""
    runs = {r.pk: r.slot for r in CycleRun.objects.filter(bot=bot)}
    versions = {}
    for a in AILearningData.objects.filter(bot=bot).select_related("prompt_version"):
        versions[str(a.prompt_version_id)] = a.prompt_version.sha256 if a.prompt_version else ""
    analyses = [
        (
            runs[a.cycle_run_id], a.recommendation, a.confidence_score, a.analysis_data, a.market_conditions,
            a.feedback_data, a.outcome, a.outcome_r, a.accuracy_score, a.actual_price, a.resolved_at,
            a.untraded, a.prompt_section, versions[str(a.prompt_version_id)], a.session_id is not None,
        )
        for a in AILearningData.objects.filter(bot=bot).order_by("cycle_run__slot")
    ]  # fmt: skip
    trades = [
        (
            runs[t.analysis.cycle_run_id], t.side, t.amount, t.price, t.stop_loss, t.take_profit, t.status,
            t.exit_price, t.fees, t.pnl, t.pnl_percent, t.actual_rr, t.outcome, t.closed_at, t.execution_time,
            t.learning_data, t.client_order_id == f"tai-{t.analysis.cycle_run_id}-open",
        )
        for t in Trade.objects.filter(bot=bot).select_related("analysis").order_by("execution_time")
    ]  # fmt: skip
    policies = [
        (p.min_confidence, p.size_factor, p.avoid_conditions, p.data_from, p.data_to, p.sample_sizes)
        for p in LearnedPolicy.objects.filter(bot=bot).order_by("created_at", "pk")
    ]
    snapshots = []
    for snap in InsightSnapshot.objects.filter(bot=bot).order_by("computed_at", "pk"):
        data = {k: v for k, v in snap.data.items() if k not in ("computed_at", "scope")}
        snapshots.append((snap.resolved_count, json.dumps(data, sort_keys=True)))
    counters = sorted(
        (c.dimension, versions.get(c.value, c.value) if c.dimension == "prompt_version" else c.value, c.n,
         c.hits, c.scored, round(c.confidence_sum, 6), round(c.squared_error, 9))
        for c in InsightCounter.objects.filter(bot_id=bot.pk)
    )  # fmt: skip
    policy_counters = sorted(
        (c.bucket, c.regime, c.market_sentiment, c.n, round(c.r_sum, 6), round(c.r_squares, 6), c.wins)
        for c in PolicyCounter.objects.filter(bot_id=bot.pk)
    )
    models = [
        (m.trained_from, m.trained_to, m.is_active, m.metrics)
        for m in TrainedModel.objects.filter(user=bot.owner).order_by("created_at", "pk")
    ]
    run_rows = sorted((r.slot, r.status, r.failed_step, r.error) for r in CycleRun.objects.filter(bot=bot))
    sessions = AutomationSession.objects.filter(bot=bot).count()
    return {
        "runs": run_rows, "analyses": analyses, "trades": trades, "policies": policies,
        "snapshots": snapshots, "counters": counters, "policy_counters": policy_counters,
        "models": models, "sessions": sessions,
    }  # fmt: skip


def test_the_books_decide_and_write_what_the_cycle_does(candles, settings, monkeypatch):
    # Long enough for trades opened and closed, policies learned and changed, the outcome model trained.
    settings.LEARNING_MIN_SAMPLES, settings.ML_MIN_SAMPLES = 40, 60
    # Every model gates: on these 400 hours none meets the gate's condition (docs/learning.md), and what is
    # tested here is that the books reproduce the gate, not the condition (tests/learning/test_ml.py).
    monkeypatch.setattr("learning.ml._beats", lambda metrics, brier: True)
    # The analyses worked out ahead by a worker process, as in a long replay.
    monkeypatch.setattr("automation.replay.AHEAD_FROM", 1)
    workers = []

    class Recorded(WorkedAhead):
        def __init__(self, *args):
            super().__init__(*args)
            workers.append(self)

    monkeypatch.setattr("automation.replay.WorkedAhead", Recorded)
    made_behind = []

    class Counted(MadeBehind):
        def made(self):
            made = super().made()
            made_behind.extend(made)
            return made

    monkeypatch.setattr("automation.replay.MadeBehind", Counted)
    spec = ReplaySpec("sample", "EUR/USD", "1h", start=START, end=START + timedelta(hours=400))
    reference = replay_bot(spec)
    reference.owner.email = f"reference@{REPLAY_DOMAIN}"
    reference.owner.save(update_fields=["email"])
    through_run_cycle(spec, reference)

    booked = replay(spec)
    assert booked.owner != reference.owner

    expected, got = everything(reference), everything(booked)
    assert len(expected["runs"]) == len(slots(spec, PreloadedCandles.load(spec.market))) > 250
    assert len(expected["trades"]) >= 3 and any(t[6] == "CLOSED" for t in expected["trades"])
    assert len(expected["policies"]) >= 2 and len(expected["snapshots"]) > 200, "too little happened"
    assert any("ml_gate" in a[5] for a in expected["analyses"]), "the outcome model never gated: a weak test"
    [worker] = workers
    assert worker.analyst.answered == len(got["analyses"])  # every answer came from the worker
    assert len(made_behind) == len(got["snapshots"])  # every snapshot was made by the other worker
    for name in expected:
        assert got[name] == expected[name], name


def comparable(param) -> tuple:
    # psycopg's JSON wrapper (on PostgreSQL) compares by identity: what it carries is compared instead.
    return type(param), getattr(param, "obj", param)


@pytest.mark.django_db
def test_the_books_write_each_value_as_its_field_prepares_it():
    samples = {
        models.CharField: ["BUY", CycleRun.Status.SUCCEEDED, "", None, 3],
        models.TextField: ["text", None, 4],
        models.FloatField: [1.5, 2, None, Decimal("0.1")],
        models.BooleanField: [True, False, None, 1],
        models.ForeignKey: [7, None, "8"],
        models.OneToOneField: [9, None, "10"],
        models.DecimalField: [Decimal("1.23"), 1.5, None],
        models.DateTimeField: [START, None, START.astimezone(timezone(timedelta(hours=2)))],
        models.PositiveIntegerField: [3, None, "4"],
        models.JSONField: [{"a": [1, 2.5]}, [], None, replay_book._Encoded('{"a": 1}')],
    }
    tried = 0
    for model in (CycleRun, AILearningData, Trade, InsightSnapshot, LearnedPolicy):
        for field in model._meta.concrete_fields:
            for value in samples.get(type(field), []):
                written, prepared = replay_book._param_of(field)(value), replay_book._param(field, value)
                assert comparable(written) == comparable(prepared), (field, value)
                tried += 1
    assert tried > 150


@pytest.mark.django_db
def test_the_books_take_each_key_from_the_row_written_before_and_refuse_one_never_written():
    bot = BotFactory()
    run = CycleRun(bot=bot, slot=START)
    analysis = AILearningData(
        user=bot.owner, bot=bot, cycle_run=run, symbol=bot.symbol, timeframe="1h", analysis_data={}
    )
    with pytest.raises(ValueError, match="unsaved related object 'cycle_run'"):
        replay_book._create(AILearningData, [analysis])
    replay_book._create(CycleRun, [run])
    replay_book._create(AILearningData, [analysis])
    stored = AILearningData.objects.get(pk=analysis.pk)
    assert (stored.cycle_run_id, stored.bot_id, stored.user_id) == (run.pk, bot.pk, bot.owner_id)
    assert analysis.cycle_run is run and analysis.cycle_run_id == run.pk
