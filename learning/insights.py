"""What a user's analyses and trades say so far (SPEC §2, seed "Dynamic Learning Insights"), computed by the
database: every figure is a COUNT/SUM/AVG grouped in SQL, and Python only turns the few grouped rows into
rates, 95 % Wilson intervals and sentences. Each figure carries its n; nothing is ranked, cited or
recommended on fewer than LEARNING_MIN_SAMPLES. Formulas: docs/learning.md."""

import math
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Avg, Case, Count, F, FloatField, Q, Sum, Value, When
from django.db.models.functions import Cast, Coalesce, Floor, TruncWeek
from django.utils import timezone

from trades.models import Trade

from .models import AILearningData, InsightSnapshot

Z95 = 1.959963984540054
DIMENSIONS = {  # name in the insights: the column grouped by
    "timeframe": "timeframe",
    "sentiment": "market_sentiment",
    "symbol": "symbol",
    "regime": "regime",
    "prompt_version": "prompt_version__sha256",
}
CONFIDENCE_BUCKETS = ("<50", "50-75", ">75")  # the seed's: low, middling and high confidence
HIT = Case(When(outcome="WIN", then=Value(1.0)), default=Value(0.0), output_field=FloatField())


def wilson(hits: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion: sound at small n and near 0 or 1, unlike p ± 1.96·se."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    centre = p + Z95**2 / (2 * n)
    spread = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n))
    denominator = 1 + Z95**2 / n
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


def stat(hits: int, n: int, **extra) -> dict:
    low, high = wilson(hits, n)
    rate = hits / n if n else None
    return {**extra, "n": n, "hits": hits, "rate": _round(rate), "low": _round(low), "high": _round(high)}


@dataclass(frozen=True)
class Scope:
    user_id: int
    bot_id: int | None = None
    symbol: str = ""
    timeframe: str = ""

    def analyses(self):
        q = AILearningData.objects.filter(user_id=self.user_id)
        if self.bot_id:
            q = q.filter(bot_id=self.bot_id)
        if self.symbol:
            q = q.filter(symbol=self.symbol)
        if self.timeframe:
            q = q.filter(timeframe=self.timeframe)
        return q

    def trades(self):
        q = Trade.objects.filter(owner_id=self.user_id, status=Trade.Status.CLOSED)
        if self.bot_id:
            q = q.filter(bot_id=self.bot_id)
        if self.symbol:
            q = q.filter(symbol=self.symbol)
        if self.timeframe:
            q = q.filter(analysis__timeframe=self.timeframe)
        return q


def compute_insights(user, *, bot=None, symbol: str = "", timeframe: str = "") -> dict:
    scope = Scope(user.pk, bot.pk if bot else None, symbol, timeframe)
    minimum = settings.LEARNING_MIN_SAMPLES
    resolved = scope.analyses().exclude(outcome="")
    overall_row = resolved.aggregate(
        n=Count("pk"),
        hits=Count("pk", filter=Q(outcome="WIN")),
        scored=Count("confidence_score"),
        squared_error=Sum(_squared_error()),
    )
    overall = stat(overall_row["hits"], overall_row["n"])
    groups = {name: _grouped(resolved, column) for name, column in DIMENSIONS.items()}
    by_confidence = _by_confidence(resolved)
    calibration = _calibration(resolved)
    insights = {
        "scope": {"user": user.pk, "bot": scope.bot_id, "symbol": symbol, "timeframe": timeframe},
        "computed_at": timezone.now().isoformat(),
        "min_samples": minimum,
        "total_analyses": scope.analyses().count(),
        "resolved": overall["n"],
        "accuracy": overall,
        "accuracy_traded": _accuracy_by_traded(resolved),
        "by_confidence": by_confidence,
        **{f"by_{name}": rows for name, rows in groups.items()},
        "calibration": calibration,
        "brier": {
            "n": overall_row["scored"],
            "score": _round(overall_row["squared_error"] / overall_row["scored"])
            if overall_row["scored"]
            else None,
        },
        "trades": _trades(scope),
        "over_time": _over_time(resolved),
    }
    ranked = [row for row in groups["timeframe"] if row["n"] >= minimum]
    ranked.sort(key=lambda row: row["rate"])
    enough = len(ranked) >= 2
    insights["best_timeframe"] = ranked[-1] if enough else None
    insights["worst_timeframe"] = ranked[0] if enough else None
    insights["failing_below"] = _failing_below(calibration, minimum)
    insights["failures"] = _failures(insights, minimum)
    insights["recommendations"] = _recommendations(insights, minimum)
    return insights


def snapshot(user, *, bot=None) -> InsightSnapshot:
    data = compute_insights(user, bot=bot)
    return InsightSnapshot.objects.create(user=user, bot=bot, resolved_count=data["resolved"], data=data)


def latest(user, *, bot=None) -> dict | None:
    found = InsightSnapshot.objects.filter(user=user, bot=bot).order_by("-computed_at", "-pk").first()
    return found.data if found else None


def as_text(insights: dict, title: str) -> str:
    """The insights as lines of text, for the command line and the admin."""

    def figure(row: dict) -> str:
        if not row["n"]:
            return "n=0"
        interval = f"{row['low'] * 100:.0f}-{row['high'] * 100:.0f}%"
        return f"{row['rate'] * 100:5.1f}% (n={row['n']}, 95% CI {interval})"

    lines = [
        f"Insights for {title}",
        f"  analyses: {insights['total_analyses']}, resolved: {insights['resolved']}",
        f"  accuracy: {figure(insights['accuracy'])}",
        f"    traded: {figure(insights['accuracy_traded']['traded'])}",
        f"    untraded: {figure(insights['accuracy_traded']['untraded'])}",
    ]
    for dimension in ("confidence", "timeframe", "sentiment", "symbol", "regime"):
        lines.append(f"  by {dimension}:")
        lines += [f"    {row['group'] or '?':<16} {figure(row)}" for row in insights[f"by_{dimension}"]]
    lines.append("  calibration (stated confidence -> realised hit rate):")
    lines += [
        f"    {row['bucket']:<8} said {row['mean_confidence']:5.1f}%, right {figure(row)}"
        for row in insights["calibration"]
    ]
    brier = insights["brier"]
    lines.append(f"  Brier score: {brier['score'] if brier['score'] is not None else 'n/a'} (n={brier['n']})")
    trades = insights["trades"]
    lines.append(
        f"  trades: win rate {figure(trades['win_rate'])}, expectancy {trades['expectancy_pct']}% "
        f"({trades['expectancy_r']} R), profit factor {trades['profit_factor']}"
    )
    for name in ("best_timeframe", "worst_timeframe"):
        row = insights[name]
        shown = f"{row['group']} {figure(row)}" if row else f"withheld (needs n >= {insights['min_samples']})"
        lines.append(f"  {name.replace('_', ' ')}: {shown}")
    lines.append("  common failures:" + ("" if insights["failures"] else " none with enough samples"))
    lines += [f"    - {failure['text']}" for failure in insights["failures"]]
    lines.append("  recommendations:" + ("" if insights["recommendations"] else " none with enough samples"))
    lines += [f"    - {item['text']}" for item in insights["recommendations"]]
    return "\n".join(lines)


# --- the grouped queries ------------------------------------------------------------------------------------
def _squared_error():
    # (stated probability - outcome)^2 of one analysis: the Brier score is its mean.
    p = F("confidence_score") / Value(100.0)
    return (p - HIT) * (p - HIT)


def _grouped(resolved, column: str) -> list[dict]:
    rows = (
        resolved.values(column)
        .annotate(n=Count("pk"), hits=Count("pk", filter=Q(outcome="WIN")))
        .order_by(column)
    )
    return [stat(row["hits"], row["n"], group=row[column] or "") for row in rows]


def _accuracy_by_traded(resolved) -> dict:
    rows = resolved.values("untraded").annotate(n=Count("pk"), hits=Count("pk", filter=Q(outcome="WIN")))
    found = {row["untraded"]: row for row in rows}
    return {
        name: stat(found.get(untraded, {}).get("hits", 0), found.get(untraded, {}).get("n", 0))
        for name, untraded in (("traded", False), ("untraded", True))
    }


def _by_confidence(resolved) -> list[dict]:
    bucket = Case(
        When(confidence_score__lt=50, then=Value("<50")),
        When(confidence_score__lte=75, then=Value("50-75")),
        default=Value(">75"),
    )
    rows = (
        resolved.filter(confidence_score__isnull=False)
        .annotate(bucket=bucket)
        .values("bucket")
        .annotate(n=Count("pk"), hits=Count("pk", filter=Q(outcome="WIN")))
    )
    found = {row["bucket"]: row for row in rows}
    return [
        stat(found.get(name, {}).get("hits", 0), found.get(name, {}).get("n", 0), group=name)
        for name in CONFIDENCE_BUCKETS
    ]


def _calibration(resolved) -> list[dict]:
    """Stated confidence against the realised hit rate, in tens (90-100 together)."""
    decile = Cast(Floor(F("confidence_score") / Value(10.0)), FloatField())
    rows = (
        resolved.filter(confidence_score__isnull=False)
        .annotate(decile=Case(When(confidence_score__gte=90, then=Value(9.0)), default=decile))
        .values("decile")
        .annotate(
            n=Count("pk"), hits=Count("pk", filter=Q(outcome="WIN")), mean_confidence=Avg("confidence_score")
        )
        .order_by("decile")
    )
    return [
        stat(
            row["hits"],
            row["n"],
            bucket=f"{int(row['decile']) * 10}-{int(row['decile']) * 10 + 10}",
            lower=int(row["decile"]) * 10,
            mean_confidence=_round(row["mean_confidence"]),
        )
        for row in rows
    ]


def _trades(scope: Scope) -> dict:
    row = scope.trades().aggregate(
        n=Count("pk"),
        wins=Count("pk", filter=Q(outcome="WIN")),
        expectancy_pct=Avg("pnl_percent"),
        expectancy_r=Avg("actual_rr"),
        gains=Coalesce(Sum("pnl", filter=Q(pnl__gt=0)), Value(0, output_field=Trade._meta.get_field("pnl"))),
        losses=Coalesce(Sum("pnl", filter=Q(pnl__lt=0)), Value(0, output_field=Trade._meta.get_field("pnl"))),
    )
    return {
        "win_rate": stat(row["wins"], row["n"]),
        "expectancy_pct": _round(row["expectancy_pct"]),
        "expectancy_r": _round(row["expectancy_r"]),
        "profit_factor": _round(row["gains"] / -row["losses"]) if row["losses"] else None,
        "gross_profit": _round(row["gains"]),
        "gross_loss": _round(row["losses"]),
    }


def _over_time(resolved) -> list[dict]:
    rows = (
        resolved.filter(resolved_at__isnull=False)
        .annotate(week=TruncWeek("resolved_at"))
        .values("week")
        .annotate(n=Count("pk"), hits=Count("pk", filter=Q(outcome="WIN")))
        .order_by("week")
    )
    return [stat(row["hits"], row["n"], week=row["week"].date().isoformat()) for row in rows]


# --- what the figures say -----------------------------------------------------------------------------------
def _failing_below(calibration: list[dict], minimum: int) -> dict | None:
    """The confidence below which calls fail: the highest tens boundary under which the hit rate is below a
    coin flip (its whole interval under 50 %) on at least `minimum` analyses, with `minimum` at or above."""
    found = None
    for i in range(1, len(calibration)):
        below, above = calibration[:i], calibration[i:]
        low = stat(sum(r["hits"] for r in below), sum(r["n"] for r in below))
        high = stat(sum(r["hits"] for r in above), sum(r["n"] for r in above))
        if low["n"] >= minimum and high["n"] >= minimum and low["high"] < 0.5:
            found = {"confidence": calibration[i]["lower"], "below": low, "at_or_above": high}
    return found


def _failures(insights: dict, minimum: int) -> list[dict]:
    """Groups whose accuracy is below the overall one beyond doubt: their interval's top under the overall
    rate, on enough analyses."""
    overall = insights["accuracy"]["rate"]
    if overall is None:
        return []
    failures = []
    for dimension in ("confidence", *DIMENSIONS):
        for row in insights[f"by_{dimension}"]:
            if row["n"] >= minimum and row["high"] < overall:
                failures.append(
                    {
                        "text": f"{_label(dimension, row['group'])}: accuracy {_pct(row['rate'])} "
                        f"(n={row['n']}, 95% CI {_pct(row['low'])}-{_pct(row['high'])}) "
                        f"against {_pct(overall)} overall",
                        "dimension": dimension,
                        "group": row["group"],
                        "evidence": {"group": row, "overall": insights["accuracy"]},
                    }
                )
    return failures


def _recommendations(insights: dict, minimum: int) -> list[dict]:
    recommendations = []
    if insights["failing_below"]:
        cut = insights["failing_below"]
        recommendations.append(
            {
                "text": f"Only trade when confidence is at least {cut['confidence']}: below it accuracy is "
                f"{_pct(cut['below']['rate'])} (n={cut['below']['n']}), at or above "
                f"{_pct(cut['at_or_above']['rate'])} (n={cut['at_or_above']['n']})",
                "kind": "min_confidence",
                "evidence": cut,
            }
        )
    best, worst = insights["best_timeframe"], insights["worst_timeframe"]
    if best and worst and best["low"] > worst["high"]:
        recommendations.append(
            {
                "text": f"Prefer the {best['group']} timeframe: accuracy {_pct(best['rate'])} "
                f"(n={best['n']}) against {_pct(worst['rate'])} (n={worst['n']}) on {worst['group']}",
                "kind": "timeframe",
                "evidence": {"best": best, "worst": worst},
            }
        )
    for failure in insights["failures"]:
        if failure["dimension"] in ("regime", "sentiment", "symbol"):
            recommendations.append(
                {
                    "text": f"Avoid trading when {_label(failure['dimension'], failure['group'])}: "
                    f"{failure['text'].split(': ', 1)[1]}",
                    "kind": "avoid",
                    "evidence": failure["evidence"],
                }
            )
    return recommendations


def _label(dimension: str, group: str) -> str:
    if dimension == "confidence":
        return f"confidence {group}"
    if dimension == "prompt_version":
        return f"prompt version {group[:12]}"
    return f"{dimension} {group or 'unknown'}"


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.0f}%"


def _round(value) -> float | None:
    return None if value is None else round(float(value), 4)
