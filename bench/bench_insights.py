"""Learning insights on a year of one user's history: compute_insights (learning.insights) over 100,000
resolved analyses and 20,000 closed trades of one user, beside 10,000 analyses and 2,000 trades of another
user that must not count, in a throwaway PostgreSQL database. Beside it, the baseline the issue compares
against: the same figures computed in Python over the fetched rows, fetch included. Then the time of each
query compute_insights makes, to show where the time goes, and what keeping its running totals
(learning.counters) costs each resolution.

Run: .venv/bin/python -m bench.bench_insights (or `make bench`).
Needs PostgreSQL (trust auth, user postgres) on 127.0.0.1; creates and drops the database
tradingai_bench_insights."""

import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from .common import database_url, drop_database, recreate_database, timed

ROOT = Path(__file__).resolve().parent.parent

ANALYSES = 100_000  # resolved analyses of the user measured
OTHER_ANALYSES = 10_000  # of another user: scoping must leave them out
TRADES = 20_000
OTHER_TRADES = 2_000
BATCH = 5_000
RESOLUTION_SAMPLE = 1_000
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "EUR/USD", "XAU/USD"]
TIMEFRAMES = ["15m", "1h", "4h"]
SENTIMENTS = ["BULLISH", "BEARISH", "NEUTRAL"]
RECOMMENDATIONS = ["BUY", "SELL", "HOLD"]
REGIMES = ["TREND_HIGH_VOL", "TREND_LOW_VOL", "RANGE_HIGH_VOL", "RANGE_LOW_VOL"]
WEEKS = 52
NOW = datetime(2025, 6, 30, 12, tzinfo=UTC)  # fixed, so the weeks are the same in every run

RUNS, WARM_UPS = 20, 2
BASELINE_RUNS, BASELINE_WARM_UPS = 5, 1
QUERY_RUNS = 5  # the queries' times are the median of this many runs of compute_insights
TARGET_P50 = 0.150  # seconds, from the issue
TARGET_SPEED_UP = 10.0  # times faster than the Python baseline, from the issue

DB_NAME = "tradingai_bench_insights"


# --- setting up ---------------------------------------------------------------------------------------------
def win_probability(confidence: int, timeframe: str) -> float:
    """Rises with the stated confidence, from 0.15 at 20 to 0.75 at 95; slower timeframes a little better."""
    offset = {"15m": -0.04, "1h": 0.0, "4h": 0.04}[timeframe]
    return 0.15 + 0.6 * (confidence - 20) / 75 + offset


def make_analyses(rng: random.Random, user, bots, versions, count: int):
    from learning.models import AILearningData

    for _ in range(count):
        bot = rng.choice(bots)
        recommendation = rng.choice(RECOMMENDATIONS)
        confidence = rng.randint(20, 95)
        draw = rng.random()
        p_win = win_probability(confidence, bot.timeframe)
        if draw < p_win:
            outcome, r = "WIN", rng.uniform(0.3, 3.0)
        elif draw < p_win + 0.05:
            outcome, r = "BREAKEVEN", 0.0
        else:
            outcome, r = "LOSS", -rng.uniform(0.5, 1.1)
        yield AILearningData(
            user=user,
            bot=bot,
            analysis_data={},
            market_conditions={},
            symbol=bot.symbol,
            timeframe=bot.timeframe,
            market_sentiment=rng.choice(SENTIMENTS),
            recommendation=recommendation,
            regime=rng.choice(REGIMES),
            confidence_score=confidence,
            outcome=outcome,
            outcome_r=r if recommendation != "HOLD" else None,
            untraded=rng.random() < 0.6,
            resolved_at=NOW - timedelta(seconds=rng.uniform(0, WEEKS * 7 * 86400)),
            analyst="OPENAI",
            model_name="gpt-4o-mini",
            prompt_version=rng.choice(versions),
        )


def make_trades(rng: random.Random, user, bots, count: int):
    from trades.models import Trade

    for _ in range(count):
        bot = rng.choice(bots)
        draw = rng.random()
        if draw < 0.45:
            outcome, pct = "WIN", rng.uniform(0.2, 6.0)
        elif draw < 0.50:
            outcome, pct = "BREAKEVEN", 0.0
        else:
            outcome, pct = "LOSS", -rng.uniform(0.2, 3.0)
        yield Trade(
            owner=user,
            bot=bot,
            symbol=bot.symbol,
            side=rng.choice(["BUY", "SELL"]),
            amount=Decimal(1),
            price=Decimal(100),
            status="CLOSED",
            outcome=outcome,
            pnl=Decimal(f"{pct:.4f}"),  # 1 unit at 100: the P&L in quote currency is the percentage
            pnl_percent=Decimal(f"{pct:.4f}"),
            actual_rr=Decimal(f"{pct / 1.5:.4f}"),
            closed_at=NOW - timedelta(seconds=rng.uniform(0, WEEKS * 7 * 86400)),
        )


def bulk(model, objects) -> None:
    batch = []
    for obj in objects:
        batch.append(obj)
        if len(batch) == BATCH:
            model.objects.bulk_create(batch)
            batch = []
    if batch:
        model.objects.bulk_create(batch)


def seed():
    """The measured user, with 5 bots, and another user with one. Returns the measured user."""
    from django.db import connection

    from accounts.models import User
    from automation.models import Bot
    from learning.counters import rebuild
    from learning.models import AILearningData, PromptVersion
    from trades.models import Trade

    rng = random.Random(42)
    user = User.objects.create_user("insights@bench.invalid")
    other = User.objects.create_user("other@bench.invalid")
    bots = [
        Bot.objects.create(
            owner=user, name=f"bot {i}", exchange="bench", symbol=symbol, timeframe=TIMEFRAMES[i % 3]
        )
        for i, symbol in enumerate(SYMBOLS)
    ]
    other_bots = [Bot.objects.create(owner=other, name="other", exchange="bench", symbol=SYMBOLS[0])]
    versions = [
        PromptVersion.objects.create(sha256=f"{i:x}" * 64, text=f"prompt version {i}") for i in range(1, 4)
    ]
    bulk(AILearningData, make_analyses(rng, user, bots, versions, ANALYSES))
    bulk(AILearningData, make_analyses(rng, other, other_bots, versions, OTHER_ANALYSES))
    bulk(Trade, make_trades(rng, user, bots, TRADES))
    bulk(Trade, make_trades(rng, other, other_bots, OTHER_TRADES))
    # Bulk inserts skip the running totals the cycle keeps as it resolves: recompute them from the rows.
    started = time.perf_counter()
    counters = rebuild(user) + rebuild(other)
    seconds = time.perf_counter() - started
    print(f"running totals rebuilt from the rows: {counters:,} counters in {seconds:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return user


def resolution_cost(user) -> None:
    """What keeping the totals costs each resolution: one upsert of its ~10 counters."""
    from django.db import transaction

    from learning.counters import count_resolved
    from learning.models import AILearningData

    sample = list(AILearningData.objects.filter(user=user)[:RESOLUTION_SAMPLE])
    started = time.perf_counter()
    with transaction.atomic():
        for analysis in sample:
            count_resolved(analysis)
        transaction.set_rollback(True)  # measured, not kept: the figures stay those of the rows
    seconds = (time.perf_counter() - started) / len(sample)
    print(f"counting one resolution in the running totals: {seconds * 1000:.2f} ms ({len(sample)} timed)")


# --- the baseline: the same figures in Python over the fetched rows -----------------------------------------
def python_insights(user) -> dict:
    """What compute_insights returns, for the figures compared, from every resolved row and closed trade
    fetched and counted in plain Python loops."""
    from learning.insights import stat
    from learning.models import AILearningData
    from trades.models import Trade

    rows = (
        AILearningData.objects.filter(user=user)
        .exclude(outcome="")
        .values_list(
            "outcome",
            "confidence_score",
            "timeframe",
            "market_sentiment",
            "symbol",
            "regime",
            "prompt_version__sha256",
            "untraded",
            "resolved_at",
        )
    )
    n = hits = scored = 0
    squared_error = 0.0
    groups = {name: defaultdict(lambda: [0, 0]) for name in DIMENSION_INDEX}
    traded = defaultdict(lambda: [0, 0])
    confidence = defaultdict(lambda: [0, 0])
    deciles = defaultdict(lambda: [0, 0, 0.0])
    weeks = defaultdict(lambda: [0, 0])
    for row in rows:
        outcome, score, untraded, resolved_at = row[0], row[1], row[7], row[8]
        hit = 1 if outcome == "WIN" else 0
        n += 1
        hits += hit
        for name, index in DIMENSION_INDEX.items():
            group = groups[name][row[index] or ""]
            group[0] += 1
            group[1] += hit
        pair = traded[untraded]
        pair[0] += 1
        pair[1] += hit
        if score is not None:
            scored += 1
            squared_error += (score / 100 - hit) ** 2
            bucket = confidence["<50" if score < 50 else "50-75" if score <= 75 else ">75"]
            bucket[0] += 1
            bucket[1] += hit
            decile = deciles[9 if score >= 90 else math.floor(score / 10)]
            decile[0] += 1
            decile[1] += hit
            decile[2] += score
        if resolved_at is not None:
            year, week, _ = resolved_at.isocalendar()
            pair = weeks[(year, week)]
            pair[0] += 1
            pair[1] += hit

    trades = Trade.objects.filter(owner=user, status=Trade.Status.CLOSED).values_list(
        "outcome", "pnl_percent", "actual_rr", "pnl"
    )
    count = wins = 0
    pct_sum = rr_sum = gains = losses = Decimal(0)
    pct_n = rr_n = 0
    for outcome, pct, rr, pnl in trades:
        count += 1
        wins += outcome == "WIN"
        if pct is not None:
            pct_sum += pct
            pct_n += 1
        if rr is not None:
            rr_sum += rr
            rr_n += 1
        if pnl is not None and pnl > 0:
            gains += pnl
        elif pnl is not None and pnl < 0:
            losses += pnl

    return {
        "accuracy": stat(hits, n),
        "accuracy_traded": {
            name: stat(traded[untraded][1], traded[untraded][0])
            for name, untraded in (("traded", False), ("untraded", True))
        },
        **{
            f"by_{name}": [stat(h, k, group=group) for group, (k, h) in sorted(found.items())]
            for name, found in groups.items()
        },
        "by_confidence": [
            stat(confidence[name][1], confidence[name][0], group=name) for name in ("<50", "50-75", ">75")
        ],
        "calibration": [
            stat(h, k, lower=d * 10, mean_confidence=round(total / k, 4))
            for d, (k, h, total) in sorted(deciles.items())
        ],
        "brier": {"n": scored, "score": squared_error / scored if scored else None},
        "over_time": [stat(h, k, week=f"{y}-W{w:02d}") for (y, w), (k, h) in sorted(weeks.items())],
        "trades": {
            "win_rate": stat(wins, count),
            "expectancy_pct": float(pct_sum / pct_n) if pct_n else None,
            "expectancy_r": float(rr_sum / rr_n) if rr_n else None,
            "profit_factor": float(gains / -losses) if losses else None,
        },
    }


# The column of each grouped dimension in python_insights' rows.
DIMENSION_INDEX = {"timeframe": 2, "sentiment": 3, "symbol": 4, "regime": 5, "prompt_version": 6}


# --- measuring ----------------------------------------------------------------------------------------------
def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def counts(rows: list[dict], key: str = "group") -> list[tuple]:
    """(group, n, hits) in Python's order: the database orders groups by its collation."""
    return sorted((row[key], row["n"], row["hits"]) for row in rows)


def check(db: dict, py: dict) -> list[str]:
    """Asserts the figures the issue names; returns the other figures that differ, to print."""
    assert (db["accuracy"]["n"], db["accuracy"]["hits"]) == (py["accuracy"]["n"], py["accuracy"]["hits"]), (
        db["accuracy"],
        py["accuracy"],
    )
    assert counts(db["by_timeframe"]) == counts(py["by_timeframe"]), (db["by_timeframe"], py["by_timeframe"])
    assert db["brier"]["n"] == py["brier"]["n"]
    # compute_insights rounds the score to 4 places: the baseline's, rounded alike, must match it.
    assert abs(db["brier"]["score"] - round(py["brier"]["score"], 4)) <= 1e-6, (db["brier"], py["brier"])

    differ = []
    for name in ("by_sentiment", "by_symbol", "by_regime", "by_prompt_version", "by_confidence"):
        if counts(db[name]) != counts(py[name]):
            differ.append(name)
    if [(r["lower"], r["n"], r["hits"], r["mean_confidence"]) for r in db["calibration"]] != [
        (r["lower"], r["n"], r["hits"], r["mean_confidence"]) for r in py["calibration"]
    ]:
        differ.append("calibration")
    for name in ("traded", "untraded"):
        if db["accuracy_traded"][name] != py["accuracy_traded"][name]:
            differ.append(f"accuracy_traded {name}")
    # TruncWeek gives the Monday (UTC) of the week, the baseline the ISO week: the same weeks.
    db_weeks = [
        (datetime.fromisoformat(r["week"]).isocalendar()[:2], r["n"], r["hits"]) for r in db["over_time"]
    ]
    py_weeks = [(tuple(int(p) for p in r["week"].split("-W")), r["n"], r["hits"]) for r in py["over_time"]]
    if db_weeks != py_weeks:
        differ.append("over_time")
    if db["trades"]["win_rate"] != py["trades"]["win_rate"]:
        differ.append("trades win_rate")
    for name in ("expectancy_pct", "expectancy_r", "profit_factor"):
        if abs(db["trades"][name] - round(py["trades"][name], 4)) > 1e-6:
            differ.append(f"trades {name}")
    return differ


def query_times(user) -> list[tuple[float, str]]:
    """Each query of one compute_insights call with its median time over QUERY_RUNS calls, slowest first."""
    from django.db import connection

    from learning.insights import compute_insights

    runs: list[list[tuple[float, str]]] = []

    def clock(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            runs[-1].append((time.perf_counter() - started, sql))

    with connection.execute_wrapper(clock):
        for _ in range(QUERY_RUNS):
            runs.append([])
            compute_insights(user)
    per_query = [(statistics.median(run[i][0] for run in runs), runs[0][i][1]) for i in range(len(runs[0]))]
    return sorted(per_query, key=lambda item: -item[0])


def measure(user) -> None:
    from learning.insights import compute_insights

    samples = timed(lambda: compute_insights(user), RUNS, WARM_UPS)
    p50 = statistics.median(samples)
    p90 = statistics.quantiles(samples, n=10)[8]
    print(f"compute_insights(user), {RUNS} runs after {WARM_UPS} warm-up(s):")
    print(f"  p50 {ms(p50)}, p90 {ms(p90)}, max {ms(max(samples))}")

    baseline = timed(lambda: python_insights(user), BASELINE_RUNS, BASELINE_WARM_UPS)
    baseline_p50 = statistics.median(baseline)
    print(f"Python baseline (fetch + loops), {BASELINE_RUNS} runs after {BASELINE_WARM_UPS} warm-up(s):")
    print(f"  p50 {ms(baseline_p50)} (min {ms(min(baseline))}, max {ms(max(baseline))})")

    db, py = compute_insights(user), python_insights(user)
    differ = check(db, py)
    print(
        f"figures agree: overall n={db['accuracy']['n']} hits={db['accuracy']['hits']}, "
        f"{len(db['by_timeframe'])} timeframes, Brier {db['brier']['score']} (n={db['brier']['n']})"
    )
    print(f"  the other figures: {'differ in ' + ', '.join(differ) if differ else 'agree too'}")

    ratio = baseline_p50 / p50
    fast = "met" if p50 <= TARGET_P50 else "NOT met"
    faster = "met" if ratio >= TARGET_SPEED_UP else "NOT met"
    print(f"Python p50 / database p50 = {ratio:.1f}x")
    print(
        f"target: p50 <= {TARGET_P50 * 1000:.0f} ms and >= {TARGET_SPEED_UP:.0f}x faster than the Python "
        f"baseline"
    )
    print(f"  p50 <= {TARGET_P50 * 1000:.0f} ms: {ms(p50)} ({fast})")
    print(f"  >= {TARGET_SPEED_UP:.0f}x faster: {ratio:.1f}x ({faster})")

    queries = query_times(user)
    total = sum(seconds for seconds, _ in queries)
    print(f"queries of one compute_insights call, median of {QUERY_RUNS} calls, slowest first:")
    for seconds, sql in queries:
        print(f"  {seconds * 1000:7.1f} ms  {' '.join(sql.split())[:80]}")
    print(f"  {total * 1000:7.1f} ms  in all {len(queries)} queries (the rest of the p50 is Python)")


def main() -> None:
    from django.conf import settings

    if settings.configured:
        # Settings are read once per process, and another benchmark run before this one (bench.run) has
        # read them for the developer's database; this one needs its own, so it runs in a process of its own.
        subprocess.run([sys.executable, "-m", "bench.bench_insights"], cwd=ROOT, check=True)
        return

    tmp = Path(tempfile.mkdtemp(prefix="tradingai-bench-insights-"))
    env = {
        "DJANGO_SETTINGS_MODULE": "tradingai.settings.local",
        "DATABASE_URL": database_url(DB_NAME),
        "TRADINGAI_VAR_DIR": str(tmp / "var"),
        "LOG_LEVEL": "WARNING",
    }
    try:
        recreate_database(DB_NAME)
        os.environ.update(env)  # before setup: settings read the environment once

        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        user = seed()
        print(
            f"seeded in {time.perf_counter() - started:.1f} s: {ANALYSES:,} resolved analyses and "
            f"{TRADES:,} closed trades of the user, {OTHER_ANALYSES:,} and {OTHER_TRADES:,} of another, "
            f"{len(SYMBOLS)} bots, {WEEKS} weeks, {os.cpu_count()} cores"
        )
        measure(user)
        resolution_cost(user)
    finally:
        if settings.configured:
            from django.db import connections

            connections.close_all()
            for connection in connections.all():
                if hasattr(connection, "close_pool"):
                    connection.close_pool()
        drop_database(DB_NAME)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
