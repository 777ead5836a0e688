"""Does the learning work? The evaluation of one bot's history (a replay's, usually): accuracy, calibration
and Brier score by week and month, the learned policy over time, and the adaptive policy against the same
analyses under the static default policy, buy-and-hold and no trade. Everything is read from the database,
so the report says what the database holds; every figure carries its n, and a comparison is only stated
when both sides have at least LEARNING_MIN_SAMPLES.

Two views of the adaptive policy: the paper account (the trades it made, with fees, slippage and its limit
on open trades) and, like for like with the static policy, the R view: each analysis's result in units of
its risk (`outcome_r`, net of fees), compounded at the bot's risk per trade, times the size factor the
policy gave it. The static policy takes every BUY or SELL at or above the bot's own minimum confidence at
size 1, also as if each were the only position open."""

import json
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.db.models import Count
from django.template.loader import render_to_string

from core.values import BUY_OR_SELL, Outcome, Side
from learning import plots
from learning.insights import stat
from learning.models import AILearningData
from market.models import Candle
from market.timeframes import TIMEFRAME_PERIODS
from trades.models import Trade

from .models import CycleRun


def evaluate(bot, *, start: datetime | None = None, end: datetime | None = None) -> dict:
    runs = CycleRun.objects.filter(bot=bot)
    if start:
        runs = runs.filter(slot__gte=start)
    if end:
        runs = runs.filter(slot__lte=end)
    rows = list(
        AILearningData.objects.filter(cycle_run__in=runs)
        .order_by("cycle_run__slot")
        .values(
            "cycle_run__slot", "recommendation", "confidence_score", "outcome", "outcome_r", "untraded",
            "feedback_data", "prompt_tokens", "completion_tokens", "cost_usd", "trade__pk",
        )
    )  # fmt: skip
    resolved = [r for r in rows if r["outcome"]]
    minimum = settings.LEARNING_MIN_SAMPLES
    risk = float(bot.risk_per_trade_pct) / 100
    slots = [r["cycle_run__slot"] for r in rows]
    figures = {
        "market": f"{bot.exchange} {bot.symbol} {bot.timeframe}",
        "analyst": bot.analyst.lower(),
        "bot": bot.pk,
        "min_samples": minimum,
        "window": {"first_slot": slots[0] if slots else None, "last_slot": slots[-1] if slots else None},
        "runs": _run_counts(runs),
        "analyses": len(rows),
        "accuracy": _hits(resolved),
        "brier": _brier(resolved),
        "by_week": _periods(resolved, _week),
        "by_month": _periods(resolved, lambda slot: slot.strftime("%Y-%m")),
        "by_confidence": _by_confidence(resolved),
        "halves": _halves(resolved),
        "policy_over_time": _policy_over_time(rows),
        "strategies": {
            "adaptive": _adaptive(bot, rows, risk),
            "adaptive_account": _account(bot, runs),
            "static": _compounded(
                [
                    r
                    for r in rows
                    if r["recommendation"] in BUY_OR_SELL
                    and r["outcome_r"] is not None
                    and (r["confidence_score"] or 0) >= float(bot.min_confidence)
                ],
                risk,
                size=lambda r: 1.0,
            ),
            "buy_and_hold": _buy_and_hold(bot, slots),
            "no_trade": {"trades": 0, "return": 0.0, "max_drawdown": 0.0, "equity": []},
        },
        "long_short": _long_short(rows),
        "llm": _llm(rows),
    }
    llm, account = figures["llm"], figures["strategies"]["adaptive_account"]
    # The quote currency's P&L less the analyst's dollars: the same unit for USD-quoted markets only.
    llm["pnl_net_of_cost"] = round(account["pnl"] - llm["cost_usd"], 6)
    figures["claims"] = _claims(figures, minimum)
    return figures


def write_report(figures: dict, directory: Path) -> Path:
    """report.json and report.html (with plotly.js beside it, so it opens offline) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(figures, default=str, indent=2))
    # The site's own stylesheet and scripts beside it: the report opens from the disk, offline.
    for static, name in (
        ("vendor/plotly.min.js", "plotly.min.js"),
        ("js/plots.js", "plots.js"),
        ("css/app.css", "app.css"),
    ):
        (directory / name).write_bytes(Path(finders.find(static)).read_bytes())
    html = render_to_string("learning/replay_report.html", {"f": figures, "plots": report_plots(figures)})
    path = directory / "report.html"
    path.write_text(html)
    return path


def report_plots(figures: dict) -> dict:
    weeks = [{**row, "week": row["period"]} for row in figures["by_week"]]
    return {
        "accuracy_by_week": plots.accuracy_over_time(weeks),
        "brier_by_week": plots.series(
            {"Brier score": [(row["period"], row["brier"]) for row in figures["by_week"] if row["brier"]]},
            "Brier score (lower is better)",
        ),
        "policy": plots.series(
            {
                "minimum confidence": [(p["slot"], p["min_confidence"]) for p in figures["policy_over_time"]],
                "size factor x 100": [
                    (p["slot"], p["size_factor"] * 100) for p in figures["policy_over_time"]
                ],
            },
            "learned policy",
            shape="hv",
        ),
        "equity": plots.series(
            {
                name.replace("_", " "): [(t, e) for t, e in s["equity"]]
                for name, s in figures["strategies"].items()
                if s["equity"]
            },
            "equity (start = 1)",
            shape="hv",
        ),
        "calibration": plots.calibration(figures["by_confidence"]),
    }


# --- figures --------------------------------------------------------------------------------------------
def _run_counts(runs) -> dict:
    counted = dict(runs.values_list("status").annotate(n=Count("pk")).order_by())
    return {status.lower(): counted.get(status, 0) for status in CycleRun.Status.values}


def _hits(rows: list[dict], **extra) -> dict:
    return stat(sum(r["outcome"] == Outcome.WIN for r in rows), len(rows), **extra)


def _scored(rows: list[dict]) -> list[tuple[float, int]]:
    return [
        (r["confidence_score"] / 100, r["outcome"] == Outcome.WIN)
        for r in rows
        if r["confidence_score"] is not None
    ]


def _brier(rows: list[dict]) -> dict:
    scored = _scored(rows)
    if not scored:
        return {"n": 0, "score": None}
    return {"n": len(scored), "score": round(sum((p - hit) ** 2 for p, hit in scored) / len(scored), 4)}


def _week(slot: datetime) -> str:
    return (slot.date() - timedelta(days=slot.weekday())).isoformat()


def _periods(rows: list[dict], key) -> list[dict]:
    grouped = defaultdict(list)
    for r in rows:
        grouped[key(r["cycle_run__slot"])].append(r)
    out = []
    for period, members in sorted(grouped.items()):
        brier = _brier(members)
        scored = _scored(members)
        out.append(
            _hits(
                members,
                period=period,
                brier=brier["score"],
                mean_confidence=round(sum(p for p, _ in scored) / len(scored) * 100, 2) if scored else None,
            )
        )
    return out


def _by_confidence(rows: list[dict]) -> list[dict]:
    """Calibration in tens of stated confidence (90-100 together), as the insights have it."""
    grouped = defaultdict(list)
    for r in rows:
        if r["confidence_score"] is not None:
            grouped[min(int(r["confidence_score"] // 10), 9)].append(r)
    return [
        _hits(
            members,
            bucket=f"{tens * 10}-{tens * 10 + 10}",
            lower=tens * 10,
            mean_confidence=round(sum(r["confidence_score"] for r in members) / len(members), 2),
        )
        for tens, members in sorted(grouped.items())
    ]


def _halves(rows: list[dict]) -> dict:
    middle = len(rows) // 2
    return {"first": _hits(rows[:middle]), "second": _hits(rows[middle:])}


def _policy_over_time(rows: list[dict]) -> list[dict]:
    """The policy each decision used, at each slot where it changed (kept by the cycle with its decision)."""
    changes, last = [], None
    for r in rows:
        policy = r["feedback_data"].get("policy")
        if not policy:
            continue
        now = (policy["min_confidence"], policy["size_factor"], policy["learned"])
        if now != last:
            changes.append(
                {
                    "slot": r["cycle_run__slot"],
                    "min_confidence": policy["min_confidence"],
                    "size_factor": policy["size_factor"],
                    "learned": policy["learned"],
                }
            )
            last = now
    if changes and rows and changes[-1]["slot"] != rows[-1]["cycle_run__slot"]:
        changes.append({**changes[-1], "slot": rows[-1]["cycle_run__slot"]})  # held to the end
    return changes


def _compounded(rows: list[dict], risk: float, size) -> dict:
    equity, peak, drawdown, curve = 1.0, 1.0, 0.0, []
    for r in rows:
        equity *= 1 + r["outcome_r"] * risk * size(r)
        peak = max(peak, equity)
        drawdown = max(drawdown, (peak - equity) / peak)
        curve.append((r["cycle_run__slot"], round(equity, 6)))
    results = [r["outcome_r"] for r in rows]
    return {
        "trades": len(rows),
        "return": round(equity - 1, 6),
        "max_drawdown": round(drawdown, 6),
        "expectancy_r": round(sum(results) / len(results), 4) if results else None,
        "win_rate": stat(sum(x > 0 for x in results), len(results)),
        "equity": curve,
    }


def _adaptive(bot, rows: list[dict], risk: float) -> dict:
    traded = [r for r in rows if r["trade__pk"] and r["outcome_r"] is not None]
    return _compounded(
        traded, risk, size=lambda r: r["feedback_data"].get("policy", {}).get("size_factor", 1.0)
    )


def _account(bot, runs) -> dict:
    """The paper account: the trades the adaptive policy made, closed, in money."""
    trades = Trade.objects.filter(bot=bot, analysis__cycle_run__in=runs, status=Trade.Status.CLOSED).order_by(
        "closed_at", "pk"
    )
    start = float(bot.starting_balance)
    balance, peak, drawdown, curve, pnl_pct = start, start, 0.0, [], []
    for trade in trades:
        balance += float(trade.pnl or 0)
        peak = max(peak, balance)
        drawdown = max(drawdown, (peak - balance) / peak)
        curve.append((trade.closed_at, round(balance / start, 6)))
        pnl_pct.append(float(trade.pnl_percent or 0))
    return {
        "trades": len(curve),
        "return": round(balance / start - 1, 6),
        "max_drawdown": round(drawdown, 6),
        "pnl": round(balance - start, 2),
        "expectancy_pct": round(sum(pnl_pct) / len(pnl_pct), 4) if pnl_pct else None,
        "win_rate": stat(sum(t.outcome == Outcome.WIN for t in trades), len(curve)),
        "equity": curve,
    }


def _buy_and_hold(bot, slots: list[datetime]) -> dict:
    if not slots:
        return {"trades": 0, "return": None, "max_drawdown": None, "equity": []}
    period = TIMEFRAME_PERIODS[bot.timeframe]  # a slot is a close; its candle opened one period before
    closes = dict(
        Candle.objects.filter(
            exchange=bot.exchange, symbol=bot.symbol, timeframe=bot.timeframe,
            open_time__gte=slots[0] - period, open_time__lte=slots[-1],
        ).values_list("open_time", "close")
    )  # fmt: skip
    series = [(slot, float(closes[slot - period])) for slot in slots if slot - period in closes]
    if not series:
        return {"trades": 0, "return": None, "max_drawdown": None, "equity": []}
    first, peak, drawdown, curve = series[0][1], 0.0, 0.0, []
    for slot, close in series:
        equity = close / first
        peak = max(peak, equity)
        drawdown = max(drawdown, (peak - equity) / peak)
        curve.append((slot, round(equity, 6)))
    return {
        "trades": 1,
        "return": round(curve[-1][1] - 1, 6),
        "max_drawdown": round(drawdown, 6),
        "equity": curve,
    }


def _long_short(rows: list[dict]) -> dict:
    out = {}
    for side in Side.values:
        taken = [
            r for r in rows if r["trade__pk"] and r["recommendation"] == side and r["outcome_r"] is not None
        ]
        results = [r["outcome_r"] for r in taken]
        out[side.lower()] = {
            "trades": len(taken),
            "win_rate": stat(sum(x > 0 for x in results), len(results)),
            "expectancy_r": round(sum(results) / len(results), 4) if results else None,
        }
    return out


def _llm(rows: list[dict]) -> dict:
    cost = sum(float(r["cost_usd"] or 0) for r in rows)
    return {
        "analyses": len(rows),
        "prompt_tokens": sum(r["prompt_tokens"] or 0 for r in rows),
        "completion_tokens": sum(r["completion_tokens"] or 0 for r in rows),
        "cost_usd": round(cost, 6),
    }


def _claims(f: dict, minimum: int) -> list[dict]:
    """What the figures allow one to say, each with its n; what they do not, withheld and said so."""
    claims = []
    acc = f["accuracy"]
    if acc["n"] >= minimum:
        claims.append(
            {
                "text": f"The analyst was right {acc['rate']:.0%} of the time "
                f"(n={acc['n']}, 95% CI {acc['low']:.0%}-{acc['high']:.0%}).",
                "n": acc["n"],
            }
        )
    first, second = f["halves"]["first"], f["halves"]["second"]
    if min(first["n"], second["n"]) >= minimum:
        if second["low"] > first["high"]:
            verdict = "improved beyond noise"
        elif second["high"] < first["low"]:
            verdict = "worsened beyond noise"
        else:
            verdict = "did not change beyond noise"
        claims.append(
            {
                "text": f"Accuracy {verdict} from the first half of the history to the second: "
                f"{first['rate']:.0%} (n={first['n']}) then {second['rate']:.0%} (n={second['n']}).",
                "n": first["n"] + second["n"],
            }
        )
    else:
        claims.append(
            {"text": f"Too few resolved analyses to compare the halves (needs {minimum} each).", "n": 0}
        )
    adaptive, static = f["strategies"]["adaptive"], f["strategies"]["static"]
    if min(adaptive["trades"], static["trades"]) >= minimum:
        claims.append(
            {
                "text": f"Adaptive policy: {adaptive['expectancy_r']} R a trade over {adaptive['trades']} "
                f"trades, return {adaptive['return']:.2%}; static default: {static['expectancy_r']} R over "
                f"{static['trades']}, return {static['return']:.2%}.",
                "n": adaptive["trades"] + static["trades"],
            }
        )
    else:
        claims.append(
            {
                "text": f"No comparison of the adaptive and the static policy: {adaptive['trades']} and "
                f"{static['trades']} trades, {minimum} needed on each side.",
                "n": 0,
            }
        )
    return claims
