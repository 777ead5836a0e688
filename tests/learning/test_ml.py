"""The outcome model: features, time-ordered training against the stated confidence, the JSON artifact, the
gate, and the gate switching off once the model stops beating the confidence on calls it never saw."""

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import sklearn
from scipy.stats import mannwhitneyu
from sklearn.impute import SimpleImputer
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.preprocessing import StandardScaler

from automation.cycle import run_cycle
from automation.models import AutomationSession, Bot
from learning import ml
from learning.models import AILearningData, TrainedModel
from learning.tasks import retrain_models_task
from market.indicators import Indicators
from tests.automation.test_cycle import fakes
from tests.factories import BotFactory, import_eurusd
from trades.models import Trade

T0 = datetime(2024, 3, 4, tzinfo=UTC)
HOUR = timedelta(hours=1)
RESOLVED_AFTER = 5 * HOUR
SLOT = datetime(2017, 12, 4, 10, tzinfo=UTC)
LATER = T0 + 10_000 * HOUR


def momentum_wins(side, momentum, stated):
    """RSI relative to the call decides (a call with momentum behind it wins); the confidence says nothing."""
    return 1 / (1 + math.exp(-momentum / 6))


def confidence_wins(side, momentum, stated):
    """The stated confidence is the probability; momentum says nothing."""
    return stated / 100


def sells_win(side, momentum, stated):
    return 0.85 if side == "SELL" else 0.15


def uninformative(rng):
    return int(rng.integers(50, 91))


def informative(rng):
    return int(rng.integers(5, 96))


def calls(user, n, *, hour=0, win=momentum_wins, confidence=uninformative, seed=1, **fields):
    """`n` resolved BUY/SELL calls made an hour apart from T0 + `hour` hours, each resolved five hours
    later, a WIN with the probability `win` gives. The indicators are what IndicatorSet stores; whatever
    `win` does not look at is drawn at random, so that the model can only learn what `win` uses."""
    rng = np.random.default_rng(seed)
    fields = {"symbol": "EUR/USD", "timeframe": "1h", "regime": "TREND_LOW_VOL"} | fields
    close = 1.1
    rows = []
    for i in range(n):
        made = T0 + (hour + i) * HOUR
        side = "BUY" if rng.random() < 0.5 else "SELL"
        d = 1 if side == "BUY" else -1
        momentum, stated = float(rng.uniform(-30, 30)), confidence(rng)
        atr = close * float(rng.uniform(0.0005, 0.002))
        stop = atr * float(rng.uniform(1, 3))
        indicators = Indicators(
            time=(made - HOUR).isoformat(), close=close, rsi=50 + d * momentum, macd=0.0, macd_signal=0.0,
            macd_hist=float(rng.normal(0, 0.2 * atr)), ema20=close, ema50=close, ema200=None, atr=atr,
            bb_upper=close + 2 * atr, bb_middle=close, bb_lower=close - 2 * atr, volume_z=float(rng.normal()),
            support=(close - atr * float(rng.uniform(0.2, 4)),),
            resistance=(close + atr * float(rng.uniform(0.2, 4)),),
            adx=30.0, regime=fields["regime"],
        )  # fmt: skip
        rows.append(
            AILearningData(
                user=user,
                analysis_data={
                    "key_levels": {"support": [], "resistance": []},
                    "entry": close,
                    "stop_loss": close - d * stop,
                    "take_profit": close + d * 2 * stop,
                },
                market_conditions={**indicators.to_dict(), "as_of": made.isoformat()},
                market_sentiment=rng.choice(["BULLISH", "BEARISH", "NEUTRAL"]),
                recommendation=side,
                confidence_score=stated,
                outcome="WIN" if rng.random() < win(side, momentum, stated) else "LOSS",
                resolved_at=made + RESOLVED_AFTER,
                **fields,
            )
        )
    return AILearningData.objects.bulk_create(rows)


@pytest.fixture
def eurusd_bot(alice):
    import_eurusd()
    bot = BotFactory(
        owner=alice, exchange="sample", symbol="EUR/USD", timeframe="1h", status=Bot.Status.RUNNING
    )
    AutomationSession.objects.create(bot=bot)
    return bot


def test_features_of_a_real_analysis(eurusd_bot):
    run_cycle(eurusd_bot.pk, SLOT, fakes())
    record = AILearningData.objects.get()
    m = record.market_conditions
    close, atr = m["close"], m["atr"]

    f = ml.features(record)

    assert f["confidence"] == 80
    assert f["rsi_with_call"] == pytest.approx(m["rsi"] - 50)
    assert f["macd_hist_atr"] == pytest.approx(m["macd_hist"] / atr)
    assert f["volume_z"] == m["volume_z"]
    assert f["atr_pct"] == pytest.approx(atr / close * 100)
    # The fake analyst names no levels: the pivots the indicators found stand in.
    assert f["room_atr"] == pytest.approx((m["resistance"][0] - close) / atr)
    assert f["cushion_atr"] == pytest.approx((close - m["support"][0]) / atr)
    assert f["stop_atr"] == pytest.approx(0.002 * close / atr)  # the fake's stop is 0.2 % below
    assert f["target_atr"] == pytest.approx(0.004 * close / atr)
    assert (f["recommendation"], f["sentiment_vs_call"], f["timeframe"], f["symbol"]) == (
        "BUY",
        "WITH",
        "1h",
        "EUR/USD",
    )
    assert f["regime"] == record.regime != ""
    assert ml.reward_risk_of(record) == pytest.approx(2)

    # The same indicators under a SELL read the other way round.
    record.recommendation = "SELL"
    sell = ml.features(record)
    assert sell["rsi_with_call"] == pytest.approx(50 - m["rsi"])
    assert sell["room_atr"] == pytest.approx((close - m["support"][0]) / atr)
    assert sell["sentiment_vs_call"] == "AGAINST"


def test_a_model_that_beats_the_confidence_is_stored_active_with_its_window(alice):
    rows = calls(alice, 240)
    until = T0 + 1000 * HOUR

    model = ml.train(alice, until=until)

    m = model.metrics
    assert model.is_active
    assert m["oos_brier"] < m["baseline_brier"]
    assert m["auc"] > 0.8 > 0.6 > m["baseline_auc"]
    # Five expanding windows over 240 rows test on the last five sixths, 40 rows each.
    assert (m["n"], m["n_oos"], m["splits"]) == (240, 200, 5)
    assert m["wins"] == sum(r.outcome == "WIN" for r in rows)
    assert (model.trained_from, model.trained_to) == (rows[0].resolved_at, rows[-1].resolved_at)
    assert model.version.startswith(f"{rows[-1].resolved_at:%Y%m%d%H%M}-")
    assert model.features == [*ml.NUMERIC, *ml.CATEGORICAL]
    assert "LogisticRegression" in model.algorithm

    # A call resolved at `until` or later does not exist yet for this training: the same model.
    late = calls(alice, 1, hour=1000 - 5, win=lambda *a: 1.0)[0]
    assert late.resolved_at == until
    again = ml.train(alice, until=until)
    assert (again.version, again.metrics) == (model.version, m)
    # One resolved before `until` does count.
    assert ml.train(alice, until=until + HOUR).metrics["n"] == 241


def test_a_model_that_only_beats_a_miscalibrated_confidence_is_not_switched_on(alice):
    """Issue 17: the analyst says 90 and is right 40 % of the time, and nothing else says anything. The
    model learns the 40 %, which beats the stated 90 % by far, but ranks WINs no better than chance."""
    calls(alice, 240, win=lambda *a: 0.4, confidence=lambda rng: 90)

    model = ml.train(alice, until=T0 + 1000 * HOUR)

    assert not model.is_active
    assert ml.active_model(alice) is None
    m = model.metrics
    assert m["oos_brier"] < m["stated_brier"] - 0.2  # the old gate's condition, met by far
    assert m["baseline_brier"] < m["stated_brier"] - 0.2  # the calibrated confidence knows the 40 % too
    assert m["auc_p_value"] >= ml.AUC_ALPHA
    assert m["n1"] + m["n0"] == m["n_oos"] == 200


def confidence_turns(user):
    """240 calls whose stated confidence is right for the first 120 and reversed for the rest."""
    calls(user, 120, win=confidence_wins, confidence=informative)
    calls(
        user,
        120,
        hour=120,
        seed=2,
        win=lambda side, momentum, stated: 1 - stated / 100,
        confidence=informative,
    )


def test_a_model_that_beats_even_the_calibrated_confidence_but_ranks_by_chance_is_not_switched_on(alice):
    confidence_turns(alice)

    model = ml.train(alice, until=T0 + 1000 * HOUR)

    assert not model.is_active
    m = model.metrics
    assert m["oos_brier"] < m["baseline_brier"] < m["stated_brier"]
    assert (m["auc"], m["auc_p_value"]) == pytest.approx((0.5, 0.5), abs=0.05)


def test_the_calibrated_confidence_is_fitted_on_earlier_calls_only(alice):
    confidence_turns(alice)

    m = ml.train(alice, until=T0 + 1000 * HOUR).metrics

    # The windows that predict the reversed calls learned mostly from the right ones: their baseline ranks
    # the wrong way round. Fitted on the rows it predicts, it would have been about flat (as the stored
    # one, fitted on all rows, is), with a Brier score near 0.25.
    assert m["baseline_brier"] > 0.3
    assert m["baseline_auc"] < 0.5
    assert m["calibration"]["values"][0] == pytest.approx(m["calibration"]["values"][-1], abs=0.2)


def test_too_few_calls_train_nothing(alice, settings):
    calls(alice, settings.ML_MIN_SAMPLES - 1)
    assert ml.train(alice, until=T0 + 1000 * HOUR) is None
    AILearningData.objects.update(outcome="LOSS")
    calls(alice, 1, hour=500, win=lambda *a: 0.0)
    assert ml.train(alice, until=T0 + 1000 * HOUR) is None  # all losses: nothing to learn


def test_the_json_artifact_reproduces_predict_proba(alice):
    rows = calls(alice, 240)
    model = ml.train(alice, until=T0 + 1000 * HOUR)
    won = [int(r.outcome == "WIN") for r in rows]
    pipeline = ml._pipeline().fit(ml._frame([ml.features(r) for r in rows]), won)

    with model.artifact.open("rb") as f:
        body = f.read()
    params = json.loads(body)  # plain JSON: nothing in it runs when it is read
    assert not body.startswith(b"\x80")  # no pickle protocol header
    assert sorted(params) == sorted(
        ["sklearn", "numeric", "medians", "mean", "scale", "categorical", "categories", "coef", "intercept"]
    )

    # Rows it was trained on, rows with values missing, and a symbol and regime it never saw.
    odd = calls(alice, 3, hour=2000, seed=7, symbol="BTC/USDT", regime="RANGE_HIGH_VOL")
    odd[0].market_conditions = {}
    odd[1].analysis_data = {}
    for record in [*rows[:20], *odd]:
        expected = pipeline.predict_proba(ml._frame([ml.features(record)]))[0, 1]
        assert ml.probability(model, record) == pytest.approx(expected, abs=1e-9)


def test_the_gate_passes_a_call_whose_expectancy_is_positive_at_the_models_p(alice, charlie):
    calls(alice, 240)
    model = ml.train(alice, until=T0 + 1000 * HOUR)
    [record] = calls(alice, 1, hour=2000, seed=3)
    p = ml.probability(model, record)
    breakeven_rr = (1 - p) / p  # p·rr - (1 - p) = 0

    passing = ml.gate(alice, record, breakeven_rr * 1.1)
    assert passing == {
        "p_win": round(p, 4),
        "needed": round(1 / (1 + breakeven_rr * 1.1), 4),
        "pass": True,
        "model": model.version,
    }
    assert ml.gate(alice, record, breakeven_rr * 0.9)["pass"] is False
    assert ml.gate(alice, record, None) == {**passing, "needed": 0.5, "pass": p > 0.5}
    assert ml.gate(alice, record, 0.0)["pass"] is False  # no reward: never worth the risk

    record.recommendation = "HOLD"
    assert ml.gate(alice, record, 2.0) is None
    assert ml.gate(charlie, record, 2.0) is None  # no model of his own


def test_without_an_active_model_the_cycle_trades_as_before(eurusd_bot):
    run_cycle(eurusd_bot.pk, SLOT, fakes())
    record = AILearningData.objects.get()
    assert record.feedback_data["decision"]["trade"] is True
    assert "ml_gate" not in record.feedback_data
    assert Trade.objects.count() == 1


def test_the_model_is_switched_off_on_fresh_calls_where_it_stops_beating_the_confidence(alice, settings):
    calls(alice, 240)
    model = ml.train(alice, until=T0 + 1000 * HOUR)
    later = T0 + 2000 * HOUR

    # The world changes: momentum says nothing any more, the stated confidence is right. Until there are
    # enough fresh calls (resolved after its training data ends), nothing is decided.
    calls(
        alice,
        settings.LEARNING_MIN_SAMPLES - 1,
        hour=300,
        seed=4,
        win=confidence_wins,
        confidence=informative,
    )
    assert ml.still_beats_baseline(model, until=later)
    assert "fresh" not in model.metrics

    calls(alice, 71, hour=400, seed=5, win=confidence_wins, confidence=informative)
    assert not ml.still_beats_baseline(model, until=later)

    model.refresh_from_db()
    off = model.metrics["switched_off"]
    assert not model.is_active
    assert off["n"] == off["n1"] + off["n0"] == 100
    assert off["brier"] >= off["baseline_brier"]
    assert off["auc_p_value"] >= ml.AUC_ALPHA  # momentum says nothing any more: nor does the model
    assert off["at"] == later.isoformat()
    assert ml.active_model(alice) is None
    assert ml.gate(alice, AILearningData.objects.last(), 2.0) is None
    assert not ml.still_beats_baseline(model, until=later)  # and stays off


def test_the_cycle_stops_consulting_the_gate_once_the_model_stops_beating_the_confidence(eurusd_bot, alice):
    """Done when (issue 8): the ML gate switches off when it stops beating the baseline."""
    calls(alice, 240, win=sells_win)  # SELL calls win, BUY calls lose; the confidence says nothing
    model = ml.train(alice, until=T0 + 1000 * HOUR)
    assert model.is_active

    run_cycle(eurusd_bot.pk, SLOT, fakes())  # the fake analyst buys, for 2 R
    refused = AILearningData.objects.get(bot=eurusd_bot)
    verdict = refused.feedback_data["ml_gate"]
    assert (verdict["model"], verdict["needed"], verdict["pass"]) == (
        model.version,
        0.3333,
        False,
    )
    assert verdict["p_win"] < 0.3
    assert refused.feedback_data["decision"] == {
        "trade": False,
        "reason": f"the outcome model {model.version} gives p(win) {verdict['p_win']:.2f}, below the 0.33 a "
        "positive expectancy at this reward/risk needs",
    }
    assert not Trade.objects.exists()

    # Fresh calls on which the side says nothing and the stated confidence is right.
    calls(alice, 60, hour=300, seed=5, win=confidence_wins, confidence=informative)
    assert not ml.still_beats_baseline(model, until=T0 + 1000 * HOUR)

    run_cycle(eurusd_bot.pk, SLOT + HOUR, fakes())
    taken = AILearningData.objects.filter(bot=eurusd_bot).order_by("-pk").first()
    assert "ml_gate" not in taken.feedback_data
    assert taken.feedback_data["decision"]["trade"] is True
    assert Trade.objects.get().analysis == taken


def test_the_retrain_task_is_scheduled_and_trains_for_users_with_enough_calls(alice, charlie, settings):
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "learning.tasks.retrain_models_task" in scheduled

    calls(alice, 240)
    calls(charlie, 50)
    retrain_models_task()
    assert list(TrainedModel.objects.values_list("user", "is_active")) == [(alice.pk, True)]

    # A fresh model that still beats the confidence on what resolved since is kept; a day-old one is
    # trained again (with a fifth more calls than it had).
    calls(alice, 50, hour=300, seed=2)
    retrain_models_task()
    [kept] = TrainedModel.objects.all()
    assert (kept.is_active, kept.metrics["fresh"]["n"]) == (True, 50)
    TrainedModel.objects.update(created_at=T0, metrics={**kept.metrics, "until": T0.isoformat()})
    retrain_models_task()
    newer, older = TrainedModel.objects.order_by("-created_at")
    assert (newer.metrics["n"], newer.is_active, older.is_active) == (290, True, False)

    # One switched off on fresh calls is replaced at once, by one that knows those calls.
    calls(alice, 100, hour=400, seed=4, win=confidence_wins, confidence=informative)
    retrain_models_task()
    newer.refresh_from_db()
    assert "switched_off" in newer.metrics
    latest = TrainedModel.objects.order_by("-created_at", "-pk").first()
    assert latest.metrics["n"] == 390
    assert TrainedModel.objects.filter(user=charlie).count() == 0


def test_another_users_calls_never_enter_a_users_model(alice, charlie):
    calls(alice, 240)
    alone = ml.train(alice, until=T0 + 1000 * HOUR)
    calls(charlie, 240, seed=9, win=sells_win)

    shared = ml.train(alice, until=T0 + 1000 * HOUR)

    assert (shared.pk, shared.metrics["n"]) == (alone.pk, 240)
    assert ml.gate(charlie, AILearningData.objects.filter(user=charlie).first(), 2.0) is None
    assert ml.train(charlie, until=T0 + 1000 * HOUR).metrics["n"] == 240


def test_no_retraining_without_enough_new_calls(alice, settings):
    # A model that never beats the confidence is not active; it is trained again only once the calls have
    # grown by the minimum n and by a fifth, not every day on nearly the same calls.
    calls(alice, 240, win=confidence_wins, confidence=informative)
    first = ml.train(alice, until=T0 + 300 * HOUR)
    assert first is not None and not first.is_active
    later = T0 + 600 * HOUR
    needed = max(settings.LEARNING_MIN_SAMPLES, 48)  # a fifth of 240 is 48
    calls(alice, needed - 1, hour=300, seed=5)
    assert ml.retrain(alice, later) is None and TrainedModel.objects.count() == 1
    calls(alice, 1, hour=400, seed=6)
    assert ml.retrain(alice, later).metrics["n"] == 240 + needed


def test_retrain_reads_its_standing_as_the_orm_does(alice, charlie):
    # retrain's one plain statement (ml._standing) against the queries it replaced: the active model, the n of
    # the newest model (active or not), and the calls resolved before a moment (not a HOLD, an unresolved
    # call, one without a confidence, or another user's).
    def through_the_orm(now):
        active = ml.active_model(alice)
        newest = TrainedModel.objects.filter(user=alice).order_by("-created_at", "-pk").first()
        counted = ml._calls(user=alice, resolved_at__lt=now).count()
        return active and active.pk, newest and newest.metrics["n"], counted

    now = T0 + 300 * HOUR
    assert ml._standing(alice, now) == through_the_orm(now) == (None, None, 0)
    rows = calls(alice, 240)
    calls(charlie, 10)
    AILearningData.objects.filter(pk=rows[0].pk).update(recommendation="HOLD")
    AILearningData.objects.filter(pk=rows[1].pk).update(outcome="")
    AILearningData.objects.filter(pk=rows[2].pk).update(confidence_score=None)
    assert ml._standing(alice, now) == through_the_orm(now) == (None, None, 237)
    active = ml.train(alice, until=now)
    assert active.is_active
    assert ml._standing(alice, now) == through_the_orm(now) == (active.pk, 237, 237)
    calls(alice, 60, hour=300, seed=5)
    later = T0 + 400 * HOUR
    retired = ml.train(alice, until=later)
    TrainedModel.objects.filter(pk=retired.pk).update(is_active=False)
    TrainedModel.objects.filter(pk=active.pk).update(is_active=True)
    assert ml._standing(alice, later) == through_the_orm(later) == (active.pk, 297, 297)
    assert ml._standing(alice, now)[2] == 237  # resolved before the moment only


def test_the_calls_are_read_as_the_orm_reads_them(alice, charlie):
    # resolved_calls' plain statements against _calls and the instances: the same calls in the same order
    # (newest recorded first), with or without a lower bound, but not a HOLD, an unresolved call, one
    # without a confidence, or another user's.
    rows = calls(alice, 40)
    calls(charlie, 5)
    AILearningData.objects.filter(pk=rows[0].pk).update(recommendation="HOLD")
    AILearningData.objects.filter(pk=rows[1].pk).update(outcome="")
    AILearningData.objects.filter(pk=rows[2].pk).update(confidence_score=None)
    AILearningData.objects.filter(pk=rows[3].pk).update(market_conditions={})  # made when it was recorded
    before, after = T0 + 30 * HOUR, T0 + 10 * HOUR
    for bounds, lookups in [
        ({"before": before}, {"resolved_at__lt": before}),
        ({"before": before, "after": after}, {"resolved_at__lt": before, "resolved_at__gt": after}),
    ]:
        ml._CALLS.clear()
        read = [
            (c.pk, c.inputs, c.made, c.resolved, c.won, c.confidence)
            for c in ml.resolved_calls(alice.pk, **bounds)
        ]
        records = ml._calls(user=alice, **lookups)
        assert read == [
            (r.pk, ml.features(r), ml._made_at(r), r.resolved_at, int(r.outcome == "WIN"), r.confidence_score)
            for r in records
        ]
        assert 10 < len(read) < 40


def test_a_call_is_remembered_as_read_afresh_until_its_row_changes(alice):
    rows = calls(alice, 5)
    remembered = ml.resolved_calls(alice.pk, before=LATER)
    assert all(a is b for a, b in zip(ml.resolved_calls(alice.pk, before=LATER), remembered, strict=True))
    ml._CALLS.clear()
    assert ml.resolved_calls(alice.pk, before=LATER) == remembered

    flipped = {"WIN": "LOSS", "LOSS": "WIN"}[rows[0].outcome]
    later = rows[0].resolved_at + HOUR
    AILearningData.objects.filter(pk=rows[0].pk).update(outcome=flipped, resolved_at=later)
    changed = ml.resolved_calls(alice.pk, before=LATER)
    ml._CALLS.clear()
    assert changed == ml.resolved_calls(alice.pk, before=LATER)
    [call] = [c for c in changed if c.pk == rows[0].pk]
    assert (call.won, call.resolved) == (int(flipped == "WIN"), later)


def model_inputs(rng, n: int, symbols: int) -> list[dict]:
    """Random `features()` rows: a tenth of each numeric input missing, categories drawn from a few values and
    `symbols` symbols."""
    choices = {
        "analyst": ["TECHNICAL"],
        "recommendation": ["BUY", "SELL"],
        "regime": ["", "TREND_LOW_VOL", "RANGE_HIGH_VOL"],
        "sentiment_vs_call": ["WITH", "AGAINST", "NEUTRAL"],
        "timeframe": ["1h", "4h"],
        "symbol": [f"S{i}/USD" for i in range(symbols)],
    }
    return [
        {name: None if rng.random() < 0.1 else float(rng.normal(50, 20)) for name in ml.NUMERIC}
        | {name: str(rng.choice(values)) for name, values in choices.items()}
        for _ in range(n)
    ]


@pytest.mark.parametrize("symbols", [1, 30, 31, 60])  # 41 categories in all stack dense, 42 sparse
def test_the_fitted_steps_are_the_pipelines_model_to_the_bit(symbols):
    rng = np.random.default_rng(symbols)
    rows = model_inputs(rng, 900, symbols)
    won = rng.integers(0, 2, len(rows))
    x = ml._Inputs(rows)
    for fit_on, test_on in [
        (np.arange(600), np.arange(600, 900)),
        (np.sort(rng.choice(900, 400, replace=False)), np.arange(900)),  # taken rows keep the column order
    ]:
        pipeline = ml._pipeline().fit(ml._frame([rows[i] for i in fit_on]), won[fit_on])
        fitted = ml._Fitted(x.take(fit_on), won[fit_on])
        columns, regression = pipeline[0], pipeline[-1]
        imputer, scaler = columns.named_transformers_["num"]
        assert (fitted.pipeline is not None) == columns.sparse_output_
        assert fitted.parameters() == {
            "sklearn": sklearn.__version__,
            "numeric": list(ml.NUMERIC),
            "medians": imputer.statistics_.tolist(),
            "mean": scaler.mean_.tolist(),
            "scale": scaler.scale_.tolist(),
            "categorical": list(ml.CATEGORICAL),
            "categories": [c.tolist() for c in columns.named_transformers_["cat"].categories_],
            "coef": regression.coef_[0].tolist(),
            "intercept": float(regression.intercept_[0]),
        }
        expected = pipeline.predict_proba(ml._frame([rows[i] for i in test_on]))[:, 1]
        assert fitted.probabilities(x.take(test_on)).tolist() == expected.tolist()


def test_the_fitted_steps_predict_inputs_read_apart_as_the_pipeline_does():
    # Inputs read apart from the training's code their categories by their own values: a symbol seen in
    # training but absent from them, and one never seen, must still fill the encoder's columns (or none).
    rng = np.random.default_rng(13)
    rows = model_inputs(rng, 600, 3)
    won = rng.integers(0, 2, len(rows))
    others = [row | {"symbol": rng.choice(["S1/USD", "S9/USD"])} for row in model_inputs(rng, 50, 1)]
    pipeline = ml._pipeline().fit(ml._frame(rows), won)
    fitted = ml._Fitted(ml._Inputs(rows), won)
    expected = pipeline.predict_proba(ml._frame(others))[:, 1]
    assert fitted.probabilities(ml._Inputs(others)).tolist() == expected.tolist()


def test_an_input_never_present_is_imputed_as_the_pipeline_imputes_it():
    # The imputer keeps such an input, as a column of zeros (keep_empty_features); `_medians` must too.
    rng = np.random.default_rng(5)
    rows = [row | {"volume_z": None} for row in model_inputs(rng, 301, 1)]
    won = rng.integers(0, 2, len(rows))
    pipeline = ml._pipeline().fit(ml._frame(rows), won)
    fitted = ml._Fitted(ml._Inputs(rows), won)
    imputer, scaler = pipeline[0].named_transformers_["num"]
    parameters = fitted.parameters()
    assert parameters["medians"] == imputer.statistics_.tolist()
    assert parameters["medians"][ml.NUMERIC.index("volume_z")] == 0
    assert (parameters["mean"], parameters["coef"]) == (scaler.mean_.tolist(), pipeline[-1].coef_[0].tolist())
    expected = pipeline.predict_proba(ml._frame(rows))[:, 1]
    assert fitted.probabilities(ml._Inputs(rows)).tolist() == expected.tolist()


def test_the_medians_are_the_imputers():
    # Odd and even counts of values present, ties (one decimal), an input never present; below and above the
    # 600 rows where numpy's own medians change their way.
    rng = np.random.default_rng(11)
    for n in (1, 2, 7, 8, 599, 600, 1000, 3001):
        numeric = rng.normal(50, 20, size=(n, len(ml.NUMERIC))).round(1)
        numeric[rng.random(numeric.shape) < 0.2] = np.nan
        numeric[:, -1] = np.nan
        imputer = SimpleImputer(strategy="median", keep_empty_features=True).fit(numeric)
        assert ml._medians(np.asfortranarray(numeric)).tolist() == imputer.statistics_.tolist()


def test_the_standardising_is_the_scalers():
    # Inputs as the imputer leaves them, in their memory order, with the edge cases of the scaler's own
    # arithmetic: an input constant, one constant but for a rounding's worth, one of negative zeros.
    rng = np.random.default_rng(12)
    for n in (1, 2, 240, 1000, 3001):
        imputed = np.asfortranarray(rng.normal(50, 20, size=(n, len(ml.NUMERIC))).round(3))
        imputed[:, 0] = 7.3
        imputed[:, 1] = 1e6 + rng.integers(0, 2, n) * 1e-10
        imputed[:, 2] = -0.0
        scaler = StandardScaler().fit(imputed)
        mean, scale = ml._standardising(imputed)
        assert (mean.tobytes(), scale.tobytes()) == (scaler.mean_.tobytes(), scaler.scale_.tobytes())
        assert scale[0] == scale[2] == 1.0


def test_the_log_loss_is_sklearns():
    # Probabilities as the windows give them (a model's, a calibration's steps with ties) and at the ends,
    # where sklearn keeps them a rounding away from 0 and 1.
    rng = np.random.default_rng(14)
    for n in (1, 2, 7, 200, 2579):
        won = rng.integers(0, 2, n)
        for p in (rng.random(n), rng.choice([0.0, 0.25, 0.4, 0.55, 1.0], n), np.where(won == 1, 0.0, 1.0)):
            assert ml._log_loss(won, p) == log_loss(won, p, labels=[0, 1])


def test_the_auc_is_sklearns():
    # Scores as the windows give them: a calibration's steps (many ties), a model's (none), and few rows.
    rng = np.random.default_rng(15)
    for n in (2, 3, 7, 200, 2579):
        won = rng.integers(0, 2, n)
        won[:2] = [0, 1]
        for p in (rng.choice([0.1, 0.25, 0.4, 0.55, 0.9], n), rng.random(n), np.full(n, 0.5)):
            assert ml._auc(won, p) == roc_auc_score(won, p)


def test_the_mann_whitney_test_is_scipys():
    # A model's probabilities (no ties), a calibration's (many), few of one outcome with and without ties
    # (scipy's exact distribution), and lopsided counts.
    rng = np.random.default_rng(16)
    steps = np.linspace(0.2, 0.8, 7)
    for n1, n2 in [(1, 1), (3, 5), (8, 40), (9, 9), (40, 8), (120, 80), (1200, 1379)]:
        for draw in (rng.random, lambda n: rng.choice(steps, n)):
            x, y = draw(n1), draw(n2)
            test = mannwhitneyu(x, y, alternative="greater")
            assert ml._mann_whitney(x, y) == (float(test.statistic), float(test.pvalue))
