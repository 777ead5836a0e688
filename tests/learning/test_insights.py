"""Insights on a hand-made data set whose figures are worked out here by hand.

90 resolved analyses of alice's:
    1h   40 at confidence 80: 30 WIN, 10 LOSS  (regime TREND_LOW_VOL)
    15m  40 at confidence 40: 12 WIN, 28 LOSS  (regime RANGE_HIGH_VOL)
    4h   10 at confidence 60:  5 WIN,  5 LOSS  (regime TREND_LOW_VOL)
overall 47 / 90 = 0.5222. Wilson 95 % intervals, (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n) with
z = 1.96: 47/90 -> 0.4202-0.6224, 30/40 -> 0.5981-0.8581, 12/40 -> 0.1807-0.4543, 5/10 -> 0.2366-0.7634.
Brier: 1h 30·(0.8-1)² + 10·0.8² = 1.2 + 6.4 = 7.6; 15m 12·0.6² + 28·0.4² = 4.32 + 4.48 = 8.8;
4h 5·0.4² + 5·0.6² = 0.8 + 1.8 = 2.6; (7.6 + 8.8 + 2.6) / 90 = 0.21111."""

import io
import json
from decimal import Decimal

import pytest
from django.core.management import call_command

from learning.insights import (
    Rows,
    Scope,
    compute_insights,
    insights_from,
    snapshot,
    summed_counters,
    version_names,
    wilson,
)
from learning.models import InsightCounter, InsightSnapshot
from tests.factories import BotFactory
from trades.models import Trade

from .conftest import resolved


@pytest.fixture
def data(alice, charlie):
    resolved(alice, 40, 30, timeframe="1h", confidence_score=80, week=0)
    resolved(alice, 40, 12, timeframe="15m", confidence_score=40, regime="RANGE_HIGH_VOL", week=1)
    resolved(alice, 10, 5, timeframe="4h", confidence_score=60, week=1)
    resolved(charlie, 50, 50, timeframe="1d", confidence_score=99)  # someone else's: never counted
    for pnl, pct in ((20, 2), (10, 1), (-15, "-1.5")):
        Trade.objects.create(
            owner=alice, symbol="EUR/USD", side="BUY", amount=1, price=100, status="CLOSED",
            pnl=Decimal(pnl), pnl_percent=Decimal(pct), outcome="WIN" if pnl > 0 else "LOSS",
        )  # fmt: skip


def by_group(rows):
    return {row["group"]: row for row in rows}


def figures(row):
    return row["n"], row["hits"], row["rate"], row["low"], row["high"]


def test_accuracy_and_its_interval(alice, data):
    insights = compute_insights(alice)
    assert (insights["total_analyses"], insights["resolved"]) == (90, 90)
    assert figures(insights["accuracy"]) == (90, 47, 0.5222, 0.4202, 0.6224)


@pytest.mark.parametrize(("hits", "n"), [(0, 3), (10, 10)])
def test_the_interval_holds_the_rate_when_every_call_failed_or_every_call_worked(hits, n):
    # Found by test_outcome_properties.py: rounding gave a low of 5e-17 over 0/3 and a high of 1 - 1e-16 over
    # 10/10, an interval that left out its own rate.
    low, high = wilson(hits, n)
    assert low <= hits / n <= high


def test_accuracy_by_timeframe_and_confidence(alice, data):
    insights = compute_insights(alice)
    timeframes = by_group(insights["by_timeframe"])
    assert figures(timeframes["1h"]) == (40, 30, 0.75, 0.5981, 0.8581)
    assert figures(timeframes["15m"]) == (40, 12, 0.3, 0.1807, 0.4543)
    assert figures(timeframes["4h"]) == (10, 5, 0.5, 0.2366, 0.7634)
    confidence = by_group(insights["by_confidence"])
    assert [confidence[b]["n"] for b in ("<50", "50-75", ">75")] == [40, 10, 40]
    assert [confidence[b]["hits"] for b in ("<50", "50-75", ">75")] == [12, 5, 30]


def test_calibration_and_brier(alice, data):
    insights = compute_insights(alice)
    assert [
        (row["bucket"], row["n"], row["hits"], row["mean_confidence"]) for row in insights["calibration"]
    ] == [
        ("40-50", 40, 12, 40.0),
        ("60-70", 10, 5, 60.0),
        ("80-90", 40, 30, 80.0),
    ]
    assert insights["brier"] == {"n": 90, "score": pytest.approx(0.2111, abs=1e-4)}


def test_best_and_worst_timeframe_need_enough_samples(alice, data, settings):
    settings.LEARNING_MIN_SAMPLES = 30  # 4h's 10 do not count
    insights = compute_insights(alice)
    assert (insights["best_timeframe"]["group"], insights["worst_timeframe"]["group"]) == ("1h", "15m")

    settings.LEARNING_MIN_SAMPLES = 41  # no timeframe has enough
    insights = compute_insights(alice)
    assert (insights["best_timeframe"], insights["worst_timeframe"]) == (None, None)
    assert insights["failures"] == [] and insights["recommendations"] == []


def test_failures_and_recommendations_carry_their_numbers(alice, data, settings):
    settings.LEARNING_MIN_SAMPLES = 30
    insights = compute_insights(alice)
    # Below 80, 17 of 50 were right (0.34, interval up to 0.4785 < 0.5); at 80 and above 30 of 40.
    cut = insights["failing_below"]
    assert (cut["confidence"], cut["below"]["n"], cut["below"]["hits"], cut["at_or_above"]["n"]) == (
        80,
        50,
        17,
        40,
    )
    failing = {(f["dimension"], f["group"]) for f in insights["failures"]}
    assert failing == {("confidence", "<50"), ("timeframe", "15m"), ("regime", "RANGE_HIGH_VOL")}
    texts = [r["text"] for r in insights["recommendations"]]
    assert texts[0] == (
        "Only trade when confidence is at least 80: below it accuracy is 34% (n=50), at or above 75% (n=40)"
    )
    assert texts[1] == "Prefer the 1h timeframe: accuracy 75% (n=40) against 30% (n=40) on 15m"
    assert texts[2].startswith(
        "Avoid trading when regime RANGE_HIGH_VOL: accuracy 30% (n=40, 95% CI 18%-45%)"
    )
    assert {r["kind"] for r in insights["recommendations"]} == {"min_confidence", "timeframe", "avoid"}


def test_no_confidence_cut_when_the_confident_calls_fail_as_much(alice, settings):
    # Below 80: 12 of 50 right (0.24, interval 0.1430-0.3741); at 80: 9 of 40 (0.225), no better.
    settings.LEARNING_MIN_SAMPLES = 30
    resolved(alice, 50, 12, confidence_score=40)
    resolved(alice, 40, 9, confidence_score=85)
    insights = compute_insights(alice)
    assert insights["failing_below"] is None
    assert "min_confidence" not in {r["kind"] for r in insights["recommendations"]}
    resolved(alice, 40, 31, confidence_score=85)  # now 40 of 80 at 85: 0.5, above the interval below
    assert compute_insights(alice)["failing_below"]["confidence"] == 80


def test_trades_win_rate_expectancy_and_profit_factor(alice, data):
    trades = compute_insights(alice)["trades"]
    assert figures(trades["win_rate"]) == (3, 2, 0.6667, 0.2077, 0.9385)
    assert trades["expectancy_pct"] == 0.5  # (2 + 1 - 1.5) / 3
    assert trades["profit_factor"] == 2.0  # 30 / 15


def test_accuracy_over_time_by_week(alice, data):
    weeks = compute_insights(alice)["over_time"]
    assert [(row["week"], row["n"], row["hits"]) for row in weeks] == [
        ("2024-03-04", 40, 30),
        ("2024-03-11", 50, 17),
    ]


def test_narrowed_to_a_bot_and_an_empty_user(alice, charlie, data):
    bot = BotFactory(owner=alice)
    resolved(alice, 3, 1, bot=bot, confidence_score=70)
    narrowed = compute_insights(alice, bot=bot)
    assert figures(narrowed["accuracy"])[:2] == (3, 1)
    empty = compute_insights(BotFactory(owner=charlie).owner, bot=bot)  # charlie asking about alice's bot
    assert empty["resolved"] == 0


def test_a_snapshot_is_stored(alice, data):
    stored = snapshot(alice)
    assert stored.resolved_count == 90
    assert InsightSnapshot.objects.get().data["accuracy"]["hits"] == 47


def test_the_insights_command(alice, data, charlie):
    out = io.StringIO()
    call_command("insights", user="ALICE@example.com", json=True, stdout=out)
    assert json.loads(out.getvalue())["accuracy"]["n"] == 90

    out = io.StringIO()
    call_command("insights", user=alice.email, stdout=out)
    assert "accuracy:  52.2% (n=90, 95% CI 42-62%)" in out.getvalue()

    InsightCounter.objects.filter(user=alice).delete()  # totals lost: --rebuild recomputes them
    out = io.StringIO()
    call_command("insights", user=alice.email, rebuild=True, json=True, stdout=out)
    assert json.loads(out.getvalue())["accuracy"]["hits"] == 47

    from django.core.management import CommandError

    charlies = BotFactory(owner=charlie)
    with pytest.raises(CommandError, match="has no bot"):
        call_command("insights", user=alice.email, bot=charlies.pk, stdout=io.StringIO())
    with pytest.raises(CommandError, match="no user"):
        call_command("insights", user="nobody@example.com", stdout=io.StringIO())


def test_the_admin_shows_a_users_insights(client, alice, data):
    from tests.factories import UserFactory, force_login_verified

    force_login_verified(client, UserFactory(email="ops@example.com", is_staff=True, is_superuser=True))
    page = client.get(f"/admin/accounts/user/{alice.pk}/change/")
    assert page.status_code == 200
    assert "accuracy:  52.2% (n=90, 95% CI 42-62%)" in page.content.decode()
    assert "Prefer the 1h timeframe: accuracy 75% (n=40) against 30% (n=40) on 15m" in page.content.decode()


def test_rows_kept_between_insights_give_what_computing_afresh_gives(alice, data):
    # A replay's books keep the rows from one snapshot to the next (learning.insights.Rows); after more
    # resolutions, the rows whose counts moved are made again and the rest kept.
    scope = Scope(alice.pk)
    kept = Rows()
    first = insights_from(scope, summed_counters(scope), {}, {}, kept)
    resolved(alice, 3, 1, timeframe="4h", confidence_score=60, week=2)  # three rows move, and one is new
    figures = summed_counters(scope)
    names = version_names(figures["prompt_version"])
    again, afresh = insights_from(scope, figures, {}, names, kept), insights_from(scope, figures, {}, names)
    for insights in (first, again, afresh):
        del insights["computed_at"]
    assert again == afresh != first
    assert again["resolved"] == first["resolved"] + 3
