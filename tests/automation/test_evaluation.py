"""The replay report's statistics (issue 17): the static baseline holds no more positions than the bot may,
and a comparison or a Sharpe ratio is claimed only when its test passes at 5 %."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pytest

from automation.evaluation import (
    _claims,
    _static,
    _summary,
    daily_returns,
    evaluate,
    statistics,
    write_report,
)
from automation.management.commands.replay import summary
from automation.replay import ReplaySpec, replay
from tests.factories import import_eurusd

DAY0 = datetime(2021, 3, 1, tzinfo=UTC)


def call(hour: int, held: int | None, confidence: float = 80, recommendation: str = "BUY", r: float = 1.0):
    """A call made `hour` hours after DAY0 and resolved `held` hours later (None: still open)."""
    slot = DAY0 + timedelta(hours=hour)
    return {
        "cycle_run__slot": slot,
        "recommendation": recommendation,
        "confidence_score": confidence,
        "outcome_r": None if held is None else r,
        "resolved_at": None if held is None else slot + timedelta(hours=held),
    }


def most_open(taken: list[dict]) -> int:
    """The most calls unresolved at any one moment, a call being open from its slot until it resolved."""
    return max(
        sum(t["cycle_run__slot"] <= r["cycle_run__slot"] < t["resolved_at"] for t in taken) for r in taken
    )


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_the_static_baseline_never_holds_more_than_the_bots_limit(limit):
    rng = np.random.default_rng(limit)
    # A call every hour, each held 1 to 30 hours: a policy that took them all would hold a dozen at once.
    rows = [call(hour, int(rng.integers(1, 31))) for hour in range(300)]
    assert most_open(rows) > 10

    taken = _static(SimpleNamespace(min_confidence=70, max_open_trades=limit), rows)

    assert most_open(taken) == limit
    # And it takes a call whenever there is room: after each taken call resolves, the next call made is taken
    # when fewer than `limit` are open.
    for r in rows:
        if r not in taken:
            open_then = [t for t in taken if t["cycle_run__slot"] <= r["cycle_run__slot"] < t["resolved_at"]]
            assert len(open_then) == limit


def test_the_static_baseline_skips_holds_and_low_confidence_and_keeps_an_unresolved_call_open():
    bot = SimpleNamespace(min_confidence=70, max_open_trades=1)
    rows = [
        call(0, 5, confidence=60),  # below the minimum
        call(1, 5, recommendation="HOLD"),
        call(2, 3),  # taken, open until hour 5
        call(4, 1),  # skipped: one open
        call(5, None),  # taken as the first resolves at its slot; never resolves
        call(9, 2),  # skipped: the unresolved one is still open
    ]
    taken = _static(bot, rows)
    assert [t["cycle_run__slot"] for t in taken] == [DAY0 + timedelta(hours=2)]  # the unresolved one has no R


def alike(rng, n: int) -> dict:
    return {name: rng.normal(0.0, 0.01, n) for name in ("adaptive", "static", "buy_and_hold")}


def figures_of(returns: dict[str, np.ndarray], trials: int = 1) -> dict:
    """The report's figures for strategies with these daily returns (a trade a day), as `_claims` reads."""
    days = [DAY0.date() + timedelta(days=i) for i in range(len(returns["adaptive"]))]
    curves = {}
    for name, r in returns.items():
        equity = np.cumprod(1 + r)
        curves[name] = [(DAY0 + timedelta(days=i, hours=12), e) for i, e in enumerate(equity)]
    strategies = {
        name: _summary(curve, [{"outcome_r": float(x) * 100} for x in returns[name]])
        for name, curve in curves.items()
    }
    stats = statistics(daily_returns(curves, days), trials=trials)
    empty = {"n": 0}
    return {
        "accuracy": empty,
        "halves": {"first": empty, "second": empty},
        "strategies": strategies,
        "statistics": stats,
    }


def claim_on(claims: list[dict], *compared: str) -> dict:
    return next(c for c in claims if c.get("compared") == list(compared))


def test_an_adaptive_policy_that_clearly_beats_the_others_is_claimed_better_with_its_p_value():
    rng = np.random.default_rng(7)
    n = 120
    f = figures_of(
        {
            "adaptive": rng.normal(0.004, 0.01, n),
            "static": rng.normal(-0.002, 0.01, n),
            "buy_and_hold": rng.normal(0.0, 0.01, n),
        }
    )
    claims = _claims(f, minimum=30)
    for benchmark in ("static", "buy_and_hold"):
        claim = claim_on(claims, "adaptive", benchmark)
        assert claim["test"] == "SPA" and claim["significant"] and claim["p_value"] < 0.05
        assert "earned more than" in claim["text"] and "n=120 daily returns" in claim["text"]
    sharpe = claim_on(claims, "adaptive", "zero")
    assert sharpe["significant"] and sharpe["p_value"] < 0.05 and "is above zero" in sharpe["text"]
    # Worse is said too, with its own p-value.
    static = claim_on(
        _claims(figures_of({**alike(rng, n), "static": rng.normal(0.006, 0.01, n)}), 30),
        "adaptive",
        "static",
    )
    assert static["significant"] and "earned less than" in static["text"] and static["p_value"] < 0.05


def test_two_strategies_alike_are_not_significantly_different():
    rng = np.random.default_rng(11)
    f = figures_of(alike(rng, 120))
    claims = _claims(f, minimum=30)
    for benchmark in ("static", "buy_and_hold"):
        claim = claim_on(claims, "adaptive", benchmark)
        assert not claim["significant"] and claim["p_value"] >= 0.05
        assert "not significant" in claim["text"]
    # And the same returns exactly: nothing to test, nothing claimed.
    same = rng.normal(0.001, 0.01, 60)
    claims = _claims(figures_of({"adaptive": same, "static": same, "buy_and_hold": same}), minimum=30)
    assert not claim_on(claims, "adaptive", "static")["significant"]


def test_the_deflated_sharpe_counts_the_policy_versions_tried():
    rng = np.random.default_rng(3)
    returns = {**alike(rng, 250), "adaptive": rng.normal(0.0015, 0.01, 250)}
    once, often = figures_of(returns, trials=1), figures_of(returns, trials=50)
    assert once["statistics"]["sharpe"]["adaptive"]["dsr"] == once["statistics"]["sharpe"]["adaptive"]["psr"]
    assert often["statistics"]["sharpe"]["adaptive"]["dsr"] < once["statistics"]["sharpe"]["adaptive"]["dsr"]
    assert often["statistics"]["sharpe"]["adaptive"]["expected_max_sharpe"] > 0


def test_on_the_shipped_eurusd_hours_every_claim_passes_its_test(db, settings, tmp_path):
    settings.LEARNING_MIN_SAMPLES = 20
    import_eurusd()
    start = datetime(2017, 10, 2, tzinfo=UTC)
    bot = replay(ReplaySpec("sample", "EUR/USD", "1h", start=start, end=start + timedelta(days=42)))

    f = evaluate(bot)

    assert f["strategies"]["static"]["trades"] >= 30 and f["statistics"]["n"] >= 20
    assert f["statistics"]["trials"] >= 1
    tests = [c for c in f["claims"] if "test" in c]
    assert {tuple(c["compared"]) for c in tests} >= {
        ("adaptive", "static"),
        ("adaptive", "buy_and_hold"),
        ("adaptive", "zero"),
    }
    for claim in tests:
        assert claim["p_value"] is not None or claim["test"].startswith("Wilson"), claim
        if claim["significant"]:
            assert claim["p_value"] is None or claim["p_value"] < 0.05, claim
        else:
            assert "not significant" in claim["text"], claim
    # Every other claim compares nothing: the analyst's accuracy with its interval, or a figure withheld.
    for claim in f["claims"]:
        if "test" not in claim:
            assert "CI" in claim["text"] or claim["n"] == 0 or "No " in claim["text"], claim

    # What trading cost (issue 18): the pair's FX costs, the static policy's mean cost per call in R, and its
    # expectancy with costs (its row's) and without (each call's R plus its cost in R).
    costs = f["costs"]
    assert costs["market"] == {"fee_pct": 0.0, "spread_pct": 0.008, "basis": "fx default"}
    static = costs["static"]
    assert static["n"] == f["strategies"]["static"]["trades"]
    assert static["expectancy_r"] == pytest.approx(f["strategies"]["static"]["expectancy_r"], abs=1e-4)
    assert 0 < static["mean_cost_r"] < 0.2  # a pip against stops of a fifth of a percent
    without = static["expectancy_r"] + static["mean_cost_r"]
    assert static["expectancy_r_without_costs"] == pytest.approx(without, abs=2e-4)
    for trade in costs["trades"]:
        assert trade["costs"] > 0 and trade["cost_r"] > 0 and trade["fees"] == 0  # FX: no fee, the spread
    said = summary(f)
    assert f"a mean of {static['mean_cost_r']} R a trade (n={static['n']}" in said
    assert f"{static['expectancy_r_without_costs']} R without" in said
    page = write_report(f, tmp_path).read_text()
    assert f"<strong>{static['mean_cost_r']} R</strong> a trade" in page
