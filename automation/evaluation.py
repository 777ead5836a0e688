"""Does the learning work? The evaluation of one bot's history (a replay's, usually): accuracy, calibration
and Brier score by week and month, the learned policy over time, and the adaptive policy against the same
analyses under the static default policy, buy-and-hold and no trade. Everything is read from the database,
so the report says what the database holds; every figure carries its n, and a comparison or a Sharpe ratio
is only claimed when its test passes at 5 % (docs/architecture.md, "Replay and evaluation").

Two views of the adaptive policy: the paper account (the trades it made, with fees, slippage and its limit
on open trades) and, like for like with the static policy, the R view: each trade's result in units of its
risk (`outcome_r`, net of fees), compounded at the bot's risk per trade, times the size factor the policy
gave it, booked when it resolved. The static policy takes a BUY or SELL at or above the bot's own minimum
confidence at size 1 when fewer than the bot's `max_open_trades` calls it took are still open, as the
adaptive policy's broker would."""

import json
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.staticfiles import finders
from django.db.models import Count
from django.template.loader import render_to_string

from core.values import BUY_OR_SELL, Outcome, Side
from learning import plots
from learning.insights import stat
from learning.models import AILearningData, LearnedPolicy
from market.models import Candle, StoredMarket
from market.timeframes import TIMEFRAME_PERIODS
from trades.brokers.simulation import market_costs
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
            "feedback_data", "prompt_tokens", "completion_tokens", "cost_usd", "trade__pk", "resolved_at",
        )
    )  # fmt: skip
    resolved = [r for r in rows if r["outcome"]]
    minimum = settings.LEARNING_MIN_SAMPLES
    risk = float(bot.risk_per_trade_pct) / 100
    slots = [r["cycle_run__slot"] for r in rows]
    adaptive, static = _adaptive(rows), _static(bot, rows)
    curves = {
        "adaptive": _curve(
            adaptive, risk, size=lambda r: r["feedback_data"].get("policy", {}).get("size_factor", 1.0)
        ),
        "static": _curve(static, risk, size=lambda r: 1.0),
        "buy_and_hold": _held(bot, slots),
    }
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
            "adaptive": _summary(curves["adaptive"], adaptive),
            "adaptive_account": _account(bot, runs),
            "static": _summary(curves["static"], static),
            "buy_and_hold": _buy_and_hold(curves["buy_and_hold"]),
            "no_trade": {"trades": 0, "return": 0.0, "max_drawdown": 0.0, "equity": []},
        },
        "statistics": statistics(
            daily_returns(curves, [slot.date() for slot in slots]), trials=_trials(bot, start, end)
        ),
        "long_short": _long_short(rows),
        "llm": _llm(rows),
        "splits": _splits(bot),
        "costs": _costs(bot, static, runs),
    }
    llm, account = figures["llm"], figures["strategies"]["adaptive_account"]
    # The quote currency's P&L less the analyst's dollars: the same unit for USD-quoted markets only.
    llm["pnl_net_of_cost"] = round(account["pnl"] - llm["cost_usd"], 6)
    figures["claims"] = _claims(figures, minimum)
    return figures


def _splits(bot) -> list[dict]:
    """The splits the market's candles were back-adjusted for on import (StoredMarket), oldest first."""
    market = StoredMarket.objects.filter(exchange=bot.exchange, symbol=bot.symbol).first()
    return market.splits_for(bot.timeframe) if market else []


def _costs(bot, static: list[dict], runs) -> dict:
    """What trading cost: the market's costs now, the mean cost of the static policy's calls in R and its
    expectancy with and without them (R plus the call's cost in R, `cost_r`, which its scoring recorded),
    and each of the paper account's trades with its costs in money and in R."""
    market = market_costs(bot.exchange, bot.symbol)
    costed = [r for r in static if r["feedback_data"].get("cost_r") is not None]
    cost_r = [r["feedback_data"]["cost_r"] for r in costed]
    net = [r["outcome_r"] for r in costed]
    trades = Trade.objects.filter(bot=bot, analysis__cycle_run__in=runs, status=Trade.Status.CLOSED).order_by(
        "closed_at", "pk"
    )
    return {
        "market": {
            "fee_pct": float(market.fee_pct),
            "spread_pct": float(market.spread_pct),
            "basis": market.basis,
        },
        "static": {
            "n": len(costed),
            "mean_cost_r": _mean(cost_r),
            "expectancy_r": _mean(net),
            "expectancy_r_without_costs": _mean([r + c for r, c in zip(net, cost_r, strict=True)]),
        },
        "trades": [
            {
                "closed_at": t.closed_at,
                "side": t.side,
                "entry": float(t.price),
                "exit": float(t.exit_price),
                "fees": float(t.fees),
                "costs": float(t.learning_data["costs"]) if "costs" in t.learning_data else None,
                "cost_r": t.learning_data.get("cost_r"),
                "r": float(t.actual_rr) if t.actual_rr is not None else None,
            }
            for t in trades
        ],
    }


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


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


def _adaptive(rows: list[dict]) -> list[dict]:
    """The calls the adaptive policy traded, as they resolved."""
    traded = [r for r in rows if r["trade__pk"] and r["outcome_r"] is not None and r["resolved_at"]]
    return sorted(traded, key=lambda r: r["resolved_at"])


def _static(bot, rows: list[dict]) -> list[dict]:
    """The static default policy with the adaptive one's limit on open positions: a call at or above the
    bot's minimum confidence is taken only while fewer than `max_open_trades` taken calls are unresolved
    at its slot. A taken call whose outcome is still unknown stays open to the end, as a trade would."""
    taken, resolved = [], []
    for r in rows:
        if r["recommendation"] not in BUY_OR_SELL or (r["confidence_score"] or 0) < float(bot.min_confidence):
            continue
        slot = r["cycle_run__slot"]
        if sum(t["resolved_at"] is None or t["resolved_at"] > slot for t in taken) >= bot.max_open_trades:
            continue
        taken.append(r)
        if r["outcome_r"] is not None and r["resolved_at"]:
            resolved.append(r)
    return sorted(resolved, key=lambda r: r["resolved_at"])


def _curve(rows: list[dict], risk: float, size) -> list[tuple[datetime, float]]:
    """Equity (start 1) after each trade, compounded at the bot's risk per trade, when the trade resolved."""
    equity, curve = 1.0, []
    for r in rows:
        equity *= 1 + r["outcome_r"] * risk * size(r)
        curve.append((r["resolved_at"], equity))
    return curve


def _drawdown(curve: list[tuple[datetime, float]]) -> float:
    peak, drawdown = 1.0, 0.0
    for _, equity in curve:
        peak = max(peak, equity)
        drawdown = max(drawdown, (peak - equity) / peak)
    return drawdown


def _summary(curve: list[tuple[datetime, float]], rows: list[dict]) -> dict:
    results = [r["outcome_r"] for r in rows]
    return {
        "trades": len(rows),
        "return": round(curve[-1][1] - 1 if curve else 0.0, 6),
        "max_drawdown": round(_drawdown(curve), 6),
        "expectancy_r": round(sum(results) / len(results), 4) if results else None,
        "win_rate": stat(sum(x > 0 for x in results), len(results)),
        "equity": [(t, round(e, 6)) for t, e in curve],
    }


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


def _held(bot, slots: list[datetime]) -> list[tuple[datetime, float]]:
    """Buy-and-hold's equity (start 1) at each slot: the close over the first slot's close."""
    if not slots:
        return []
    period = TIMEFRAME_PERIODS[bot.timeframe]  # a slot is a close; its candle opened one period before
    closes = dict(
        Candle.objects.filter(
            exchange=bot.exchange, symbol=bot.symbol, timeframe=bot.timeframe,
            open_time__gte=slots[0] - period, open_time__lte=slots[-1],
        ).values_list("open_time", "close")
    )  # fmt: skip
    series = [(slot, float(closes[slot - period])) for slot in slots if slot - period in closes]
    return [(slot, close / series[0][1]) for slot, close in series]


def _buy_and_hold(curve: list[tuple[datetime, float]]) -> dict:
    if not curve:
        return {"trades": 0, "return": None, "max_drawdown": None, "equity": []}
    return {
        "trades": 1,
        "return": round(curve[-1][1] - 1, 6),
        "max_drawdown": round(_drawdown(curve), 6),
        "equity": [(t, round(e, 6)) for t, e in curve],
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


# --- statistics ------------------------------------------------------------------------------------------
SIGNIFICANCE = 0.05
# The SPA test's bootstrap draws from a fixed generator, so one database gives one report.
SPA_SEED, SPA_REPS = 17, 1000
COMPARED = ("static", "buy_and_hold")
LABELS = {
    "adaptive": "the adaptive policy",
    "static": "the static default policy",
    "buy_and_hold": "buy-and-hold",
}


def daily_returns(curves: dict[str, list[tuple[datetime, float]]], days: list[date]) -> dict:
    """Each strategy's return on each day (of equity at the day's last point over the day before's), on one
    calendar: the days with a slot, and any later day a trade resolved on; 0 on a day without a change."""
    calendar = sorted({*days, *(moment.date() for curve in curves.values() for moment, _ in curve)})
    out = {"days": calendar}
    for name, curve in curves.items():
        closing = {moment.date(): equity for moment, equity in curve}  # the curves are in time order
        equity, returns = 1.0, []
        for day in calendar:
            returns.append(closing.get(day, equity) / equity - 1)
            equity = closing.get(day, equity)
        out[name] = np.array(returns)
    return out


def _trials(bot, start: datetime | None, end: datetime | None) -> int:
    """The policy versions the bot tried up to the window's end: the trials the deflated Sharpe counts."""
    versions = LearnedPolicy.objects.filter(bot=bot)
    if end:
        versions = versions.exclude(data_to__gt=end)
    return max(versions.count(), 1)


def statistics(returns: dict, trials: int) -> dict:
    """Per-day Sharpe ratios with their probabilistic (PSR, against 0) and, for the adaptive policy, deflated
    (DSR, over `trials` policy versions) forms, from skfolio; and Hansen's SPA test (arch) of the adaptive
    policy against each other strategy, in both directions."""
    # skfolio imports scikit-learn and cvxpy: a second, paid by the report only.
    from skfolio.measures import (
        expected_max_sharpe_ratio,
        mean,
        probabilistic_sharpe_ratio,
        standard_deviation,
    )

    n = len(returns["days"])
    out = {"period": "day", "n": n, "trials": trials, "sharpe": {}, "spa": {}}
    for name in ("adaptive", *COMPARED):
        r = returns[name]
        spread = standard_deviation(r) if n >= 3 else 0.0
        sharpe = float(mean(r) / spread) if spread > 0 else None
        psr = _number(probabilistic_sharpe_ratio(r)) if sharpe is not None else None
        figures = {"n": n, "sharpe": _round(sharpe), "psr": _round(psr)}
        if name == "adaptive":
            # Trials whose true Sharpe is 0 scatter by the estimate's standard error, 1/sqrt(n - 1).
            benchmark = expected_max_sharpe_ratio(trials, 1 / np.sqrt(n - 1)) if n > 1 else 0.0
            dsr = _number(probabilistic_sharpe_ratio(r, benchmark)) if sharpe is not None else None
            figures.update(trials=trials, expected_max_sharpe=_round(benchmark), dsr=_round(dsr))
        out["sharpe"][name] = figures
    for name in COMPARED:
        out["spa"][name] = {
            "n": n,
            "p_better": _spa(returns[name], returns["adaptive"]),
            "p_worse": _spa(returns["adaptive"], returns[name]),
        }
    return out


def _spa(benchmark: np.ndarray, model: np.ndarray) -> float | None:
    """The consistent p-value of SPA's null that `model` earns no more than `benchmark` (losses: -returns)."""
    from arch.bootstrap import SPA

    if len(benchmark) < 3:
        return None
    if np.ptp(model - benchmark) == 0:
        return 1.0  # the same returns every day (both flat, usually): nothing to test
    spa = SPA(-benchmark, -model[:, None], reps=SPA_REPS, bootstrap="stationary", seed=SPA_SEED)
    spa.compute()
    return _round(float(spa.pvalues["consistent"]))


def _number(value) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


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
            verdict = "did not change beyond noise (not significant: the 95% intervals overlap)"
        claims.append(
            {
                "text": f"Accuracy {verdict} from the first half of the history to the second: "
                f"{first['rate']:.0%} (n={first['n']}, 95% CI {first['low']:.0%}-{first['high']:.0%}) then "
                f"{second['rate']:.0%} (n={second['n']}, 95% CI {second['low']:.0%}-{second['high']:.0%}).",
                "n": first["n"] + second["n"],
                "test": "Wilson 95% intervals apart",
                "compared": ["first half", "second half"],
                "p_value": None,
                "significant": "beyond" in verdict and "not" not in verdict,
            }
        )
    else:
        claims.append(
            {"text": f"Too few resolved analyses to compare the halves (needs {minimum} each).", "n": 0}
        )
    stats = f["statistics"]
    if stats["n"] < max(minimum, 3):  # fewer than 3 days have no spread, skewness or bootstrap
        claims.append(
            {
                "text": f"No test of the strategies' returns: {stats['n']} days, {max(minimum, 3)} needed.",
                "n": stats["n"],
            }
        )
        return claims
    for name in COMPARED:
        claims.append(_comparison(f["strategies"], name, stats["spa"][name]))
    for name, sharpe in stats["sharpe"].items():
        claims.append(_sharpe(name, sharpe))
    return claims


def _p(value: float) -> str:
    return "p<0.001" if value < 0.001 else f"p={value:.3f}"


def _described(name: str, s: dict) -> str:
    if name == "buy_and_hold":
        return f"buy-and-hold returned {s['return']:.2%}"
    return (
        f"{name} {s['expectancy_r']} R a trade over {s['trades']} trades, return {s['return']:.2%}"
        if s["trades"]
        else f"{name} made no trade"
    )


def _comparison(strategies: dict, name: str, spa: dict) -> dict:
    """Adaptive against `name` by the SPA test, one side at a time: better, worse, or not significant."""
    label = LABELS[name]
    figures = f"{_described('adaptive', strategies['adaptive'])}; {_described(name, strategies[name])}"
    claim = {"n": spa["n"], "test": "SPA", "compared": ["adaptive", name]}
    for direction, key in (("more", "p_better"), ("less", "p_worse")):
        if spa[key] < SIGNIFICANCE:
            return {
                **claim,
                "text": f"The adaptive policy earned {direction} than {label}: Hansen's SPA test on "
                f"n={spa['n']} daily returns, {_p(spa[key])} ({figures}).",
                "p_value": spa[key],
                "significant": True,
            }
    return {
        **claim,
        "text": f"The adaptive policy and {label} differ by no more than chance (not significant: SPA test "
        f"on n={spa['n']} daily returns, {_p(spa['p_better'])} that it earned more, "
        f"{_p(spa['p_worse'])} that it earned less; {figures}).",
        "p_value": min(spa["p_better"], spa["p_worse"]),
        "significant": False,
    }


def _sharpe(name: str, s: dict) -> dict:
    """A Sharpe ratio above (or below) zero, by the deflated Sharpe ratio for the adaptive policy (its policy
    versions were tried on these days) and the probabilistic one for the others."""
    label = LABELS[name]
    if s["sharpe"] is None or s["psr"] is None:
        return {
            "text": f"No Sharpe ratio for {label}: its daily returns (n={s['n']}) do not vary enough.",
            "n": 0,
        }
    deflated = "dsr" in s and s["dsr"] is not None
    above = s["dsr"] if deflated else s["psr"]
    test = f"DSR over {s['trials']} policy versions" if deflated else "PSR"
    claim = {"n": s["n"], "test": test, "compared": [name, "zero"]}
    figure = f"{label[0].upper()}{label[1:]}'s Sharpe ratio, {s['sharpe']:.3f} a day (n={s['n']} days)"
    if 1 - above < SIGNIFICANCE:
        return {
            **claim,
            "text": f"{figure}, is above zero: {test} {above:.3f}, {_p(1 - above)}.",
            "p_value": round(1 - above, 6),
            "significant": True,
        }
    if s["psr"] < SIGNIFICANCE:
        return {
            **claim,
            "test": "PSR",
            "text": f"{figure}, is below zero: PSR {s['psr']:.3f}, {_p(s['psr'])}.",
            "p_value": s["psr"],
            "significant": True,
        }
    return {
        **claim,
        "text": f"{figure}, is not significantly different from zero: {test} {above:.3f}, {_p(1 - above)} "
        f"that it is above; PSR {s['psr']:.3f}, {_p(s['psr'])} that it is below."
        if deflated
        else f"{figure}, is not significantly different from zero: PSR {s['psr']:.3f}, "
        f"{_p(1 - above)} that it is above, {_p(s['psr'])} that it is below.",
        "p_value": round(1 - above, 6),
        "significant": False,
    }
