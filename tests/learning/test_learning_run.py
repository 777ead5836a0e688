"""The loop over real candles: cycles of a paper bot with the technical analyst over the EUR/USD hours of
the `backtesting` package, one slot after another, produce resolved analyses, closed trades, insights, a
prompt that cites them and a policy that is not the default."""

from datetime import UTC, datetime, timedelta

from automation.cycle import Outside, run_cycle
from automation.models import AutomationSession, Bot, CycleRun
from automation.schedule import prompt_window
from learning.counters import rebuild
from learning.insights import compute_insights, latest
from learning.models import AILearningData, InsightSnapshot, LearnedPolicy, PolicyCounter
from learning.policy import effective_policy
from tests.factories import BotFactory, import_eurusd
from trades.models import Trade

FIRST_SLOT = datetime(2017, 10, 2, 0, tzinfo=UTC)  # a Monday: the pair trades through the week
CYCLES = 240


def test_cycles_over_real_candles_learn(alice, settings):
    settings.LEARNING_MIN_SAMPLES = 20
    import_eurusd()
    bot = BotFactory(
        owner=alice, exchange="sample", symbol="EUR/USD", timeframe="1h", status=Bot.Status.RUNNING,
        analyst=Bot.Analyst.TECHNICAL, max_open_trades=3,
    )  # fmt: skip
    AutomationSession.objects.create(bot=bot)
    outside = Outside(chart=lambda *a: b"\x89PNG not drawn: the technical analyst reads numbers")

    runs = [run_cycle(bot.pk, FIRST_SLOT + i * timedelta(hours=1), outside) for i in range(CYCLES)]

    assert {run.status for run in runs} == {CycleRun.Status.SUCCEEDED}, [r.error for r in runs if r.error][:3]
    analyses = AILearningData.objects.filter(bot=bot)
    resolved = analyses.exclude(outcome="")
    assert analyses.count() == CYCLES
    assert resolved.filter(untraded=True).count() > 50
    closed = Trade.objects.filter(bot=bot, status="CLOSED")
    assert closed.count() >= 2
    assert resolved.filter(untraded=False).count() == closed.count()

    insights = latest(alice, bot=bot)
    assert insights["resolved"] == resolved.count()
    assert insights["accuracy"]["n"] >= settings.LEARNING_MIN_SAMPLES

    # The last analysis was given the prompt of its day's first (docs/learning.md, "The prompt's cadence"),
    # citing the insights stored before that one.
    last = analyses.order_by("-created_at", "-pk").first()
    day = analyses.filter(cycle_run__slot__gte=prompt_window(last.cycle_run.slot)[0])
    first = day.order_by("cycle_run__slot").first()
    assert day.count() > 1 and set(day.values_list("prompt_section", flat=True)) == {first.prompt_section}
    before = InsightSnapshot.objects.filter(bot=bot, computed_at__lt=first.created_at).order_by(
        "-computed_at"
    )[0]
    cited = before.data["accuracy"]
    assert f"Based on {cited['n']} previous analyses whose outcome is known:" in last.prompt_section
    assert f"Your accuracy is currently {cited['rate'] * 100:.0f}%" in last.prompt_section
    # A version per change of what the prompt says, its figures masked: not one per resolved analysis.
    assert "Based on # previous analyses whose outcome is known:" in last.prompt_version.text
    versions = analyses.values("prompt_version").distinct().count()
    assert 2 <= versions < analyses.exclude(prompt_section="").values("prompt_section").distinct().count()

    # What it learned on these hours: the technical analyst's calls lost money at every confidence
    # (expectancy below zero in R), so the policy sizes positions at 0 and stops trading, rather than
    # keeping the default 70 and a factor of 1.
    # The running totals the cycles kept are what recomputing them from the analyses gives.
    kept = compute_insights(alice, bot=bot)
    kept_policy = policy_counters(alice)
    assert rebuild(alice) > 0
    recomputed = compute_insights(alice, bot=bot)
    assert policy_counters(alice) == kept_policy and len(kept_policy) > 5
    kept.pop("computed_at"), recomputed.pop("computed_at")
    assert kept == recomputed
    assert kept["total_analyses"] == CYCLES
    assert {len(row["group"]) for row in kept["by_prompt_version"]} == {64}  # named by their hash
    assert sum(row["n"] for row in kept["by_prompt_version"]) == kept["resolved"]

    policy = effective_policy(bot)
    assert policy.learned
    assert (policy.min_confidence, policy.size_factor) != (float(bot.min_confidence), 1.0)
    # One stored version per change of what the policy decides, not one per cycle.
    assert LearnedPolicy.objects.filter(bot=bot).count() < CYCLES / 4


def policy_counters(user) -> list[tuple]:
    """The policy's running totals, the float sums rounded: kept one resolution at a time or summed at once,
    they agree to rounding."""
    key = ("bot_id", "bucket", "regime", "market_sentiment", "rsi_band", "block")
    rows = PolicyCounter.objects.filter(user=user).order_by(*key)
    exact = (*key, "n", "wins", "losses")
    sums = ("r_sum", "r_squares", "win_r", "loss_r", "hold_sum")
    return [(*(getattr(r, f) for f in exact), *(round(getattr(r, f), 9) for f in sums)) for r in rows]
