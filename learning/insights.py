"""What a user's analyses and trades say so far (docs/learning.md), computed by the
database: one SUM ... GROUP BY over the running totals the resolutions keep (learning.counters) and one
aggregate over the closed trades; Python only turns the few grouped rows into rates, 95 % Wilson intervals
and sentences. Each figure carries its n; nothing is ranked, cited or recommended on fewer than
LEARNING_MIN_SAMPLES. Formulas: docs/learning.md."""

import math
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.db.models import Avg, Count, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.values import Outcome
from trades.models import Trade

from .counters import SUMS
from .models import InsightCounter, InsightSnapshot, PromptVersion

Z95 = 1.959963984540054
DIMENSIONS = ("timeframe", "sentiment", "symbol", "regime", "prompt_version")
CONFIDENCE_BUCKETS = ("<50", "50-75", ">75")  # low, middling and high confidence


def wilson(hits: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion: sound at small n and near 0 or 1, unlike p ± 1.96·se."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    centre = p + Z95**2 / (2 * n)
    spread = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n))
    denominator = 1 + Z95**2 / n
    low, high = (centre - spread) / denominator, (centre + spread) / denominator
    # At 0 or n hits rounding can leave a bound a hair on the wrong side of p (a low of 5e-17 over no hits).
    return max(0.0, min(low, p)), min(1.0, max(high, p))


def stat(hits: int, n: int, **extra) -> dict:
    rate, low, high = _rate(hits, n)
    return {**extra, "n": n, "hits": hits, "rate": rate, "low": low, "high": high}


# Insights are computed after every resolution, and most of their groups have the counts they had the time
# before: a replay asks for the same few thousand intervals hundreds of thousands of times.
@lru_cache(maxsize=65536)
def _rate(hits: int, n: int) -> tuple[float | None, float | None, float | None]:
    low, high = wilson(hits, n)
    return _round(hits / n if n else None), _round(low), _round(high)


@dataclass(frozen=True)
class Scope:
    user_id: int
    bot_id: int | None = None
    symbol: str = ""
    timeframe: str = ""

    def narrow(self, queryset, timeframe_field: str = "timeframe"):
        wanted = {"bot_id": self.bot_id, "symbol": self.symbol, timeframe_field: self.timeframe}
        return queryset.filter(**{name: value for name, value in wanted.items() if value})

    def trades(self):
        closed = Trade.objects.filter(owner_id=self.user_id, status=Trade.Status.CLOSED)
        return self.narrow(closed, "analysis__timeframe")


def compute_insights(user, *, bot=None, symbol: str = "", timeframe: str = "") -> dict:
    scope = Scope(user.pk, bot.pk if bot else None, symbol, timeframe)
    figures = summed_counters(scope)
    return insights_from(scope, figures, _trades(scope), version_names(figures["prompt_version"]))


class Rows:
    """The insights' rows (a figure's n, hits, rate and interval, with what names it) kept between insights
    computed from the same growing counters: a replay's books compute them after every resolution, and one
    resolution moves one row of each dimension. A row is made again only when its counter's n moved (every
    resolution adds one to the n of each counter it counts in, and nothing takes from them); the others are
    the same dicts as the time before, which nothing changes."""

    def __init__(self):
        self.kept: dict[tuple[str, str], tuple[int, dict]] = {}

    def row(self, dimension: str, value: str, sums: dict, make) -> dict:
        """The row of `dimension`'s `value`, made by `make(sums)` when its n is not the one kept."""
        kept = self.kept.get((dimension, value))
        if kept is not None and kept[0] == sums["n"]:
            return kept[1]
        made = make(sums)
        self.kept[dimension, value] = sums["n"], made
        return made


def insights_from(
    scope: Scope, figures: dict, trades: dict, version_names: dict[int, str], rows: Rows | None = None
) -> dict:
    """The insights from the summed counters (`figures`: {dimension: {value: sums}}), the closed trades'
    figures (`trades_figures`) and the prompt versions' hashes by id; the database's computation and a
    replay's in memory share it. `rows`: those kept from the last insights of the same counters, if any."""
    minimum = settings.LEARNING_MIN_SAMPLES
    rows = rows or Rows()
    overall_row = figures["all"].get("", _EMPTY)
    overall = stat(overall_row["hits"], overall_row["n"])
    groups = {name: _rows(rows, name, figures[name]) for name in DIMENSIONS if name != "prompt_version"}
    groups["prompt_version"] = _named_versions(rows, figures["prompt_version"], version_names)
    calibration = _calibration(rows, figures["calibration"])
    insights = {
        "scope": {
            "user": scope.user_id,
            "bot": scope.bot_id,
            "symbol": scope.symbol,
            "timeframe": scope.timeframe,
        },
        "computed_at": timezone.now().isoformat(),
        "min_samples": minimum,
        "total_analyses": figures["recorded"].get("", _EMPTY)["n"],
        "resolved": overall["n"],
        "accuracy": overall,
        "accuracy_traded": {
            name: rows.row("traded", name, figures["traded"].get(name, _EMPTY), _stat_of)
            for name in ("traded", "untraded")
        },
        "by_confidence": [
            rows.row(
                "confidence",
                name,
                figures["confidence"].get(name, _EMPTY),
                lambda sums, name=name: _stat_of(sums, group=name),
            )
            for name in CONFIDENCE_BUCKETS
        ],
        **{f"by_{name}": found for name, found in groups.items()},
        "calibration": calibration,
        "brier": {
            "n": overall_row["scored"],
            "score": _round(overall_row["squared_error"] / overall_row["scored"])
            if overall_row["scored"]
            else None,
        },
        "trades": trades,
        "over_time": [
            rows.row("week", week, sums, lambda sums, week=week: _stat_of(sums, week=week))
            for week, sums in sorted(figures["week"].items())
        ],
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


# --- the running totals, summed by the database ------------------------------------------------------------
_EMPTY = {"n": 0, "hits": 0, "scored": 0, "confidence_sum": 0.0, "squared_error": 0.0}


def summed_counters(scope: Scope) -> dict[str, dict[str, dict]]:
    """{dimension: {value: sums}} over the counters in scope: one grouped query."""
    counters = scope.narrow(InsightCounter.objects.filter(user_id=scope.user_id))
    figures: dict[str, dict[str, dict]] = defaultdict(dict)
    for row in (
        counters.values("dimension", "value").annotate(**{name: Sum(name) for name in SUMS}).order_by()
    ):
        figures[row["dimension"]][row["value"]] = row
    return figures


def _stat_of(row: dict, **extra) -> dict:
    # `stat` written out: insights are computed after every resolution, a hundred of these each time.
    hits, n = row["hits"], row["n"]
    rate, low, high = _rate(hits, n)
    return {**extra, "n": n, "hits": hits, "rate": rate, "low": low, "high": high}


def _rows(rows: Rows, dimension: str, values: dict[str, dict]) -> list[dict]:
    return [
        rows.row(dimension, value, sums, lambda sums, value=value: _stat_of(sums, group=value))
        for value, sums in sorted(values.items())
    ]


def version_names(versions: dict[str, dict]) -> dict[int, str]:
    ids = [int(value) for value in versions if value]
    return dict(PromptVersion.objects.filter(pk__in=ids).values_list("pk", "sha256")) if ids else {}


def _named_versions(rows: Rows, versions: dict[str, dict], names: dict[int, str]) -> list[dict]:
    """Prompt versions by their hash, as the insights show them, rather than by id (a version's hash never
    changes)."""

    def named(sums: dict, value: str) -> dict:
        return _stat_of(sums, group=names.get(int(value), "") if value else "")

    found = [
        rows.row("prompt_version", value, sums, lambda sums, value=value: named(sums, value))
        for value, sums in versions.items()
    ]
    return sorted(found, key=lambda row: row["group"])


def _calibration(rows: Rows, deciles: dict[str, dict]) -> list[dict]:
    """Stated confidence against the realised hit rate, in tens (90-100 together)."""

    def bucket(sums: dict, value: str) -> dict:
        return _stat_of(
            sums,
            bucket=f"{int(value) * 10}-{int(value) * 10 + 10}",
            lower=int(value) * 10,
            mean_confidence=_round(sums["confidence_sum"] / sums["scored"]),
        )

    return [
        rows.row("calibration", value, sums, lambda sums, value=value: bucket(sums, value))
        for value, sums in sorted(deciles.items(), key=lambda item: int(item[0]))
    ]


def _trades(scope: Scope) -> dict:
    zero = Value(0, output_field=Trade._meta.get_field("pnl"))
    return trades_figures(
        **scope.trades().aggregate(
            n=Count("pk"),
            wins=Count("pk", filter=Q(outcome=Outcome.WIN)),
            expectancy_pct=Avg("pnl_percent"),
            expectancy_r=Avg("actual_rr"),
            gains=Coalesce(Sum("pnl", filter=Q(pnl__gt=0)), zero),
            losses=Coalesce(Sum("pnl", filter=Q(pnl__lt=0)), zero),
        )
    )


def trades_figures(*, n, wins, expectancy_pct, expectancy_r, gains, losses) -> dict:
    """The closed trades' figures from their count, wins, mean P&L % and R, and summed gains and losses."""
    return {
        "win_rate": stat(wins, n),
        "expectancy_pct": _round(expectancy_pct),
        "expectancy_r": _round(expectancy_r),
        "profit_factor": _round(gains / -losses) if losses else None,
        "gross_profit": _round(gains),
        "gross_loss": _round(losses),
    }


# --- what the figures say -----------------------------------------------------------------------------------
def _failing_below(calibration: list[dict], minimum: int) -> dict | None:
    """The confidence below which calls fail: the highest tens boundary under which the hit rate is below a
    coin flip (its whole interval under 50 %) on at least `minimum` analyses, while the calls at or above it
    (also at least `minimum`) do better than anything that interval allows. Without the last condition a
    cut would be recommended where the confident calls fail just as much."""
    found = None
    # The counts below each boundary as running sums, those above as what the totals leave.
    all_hits, all_n = sum(r["hits"] for r in calibration), sum(r["n"] for r in calibration)
    hits = n = 0
    for i in range(1, len(calibration)):
        hits, n = hits + calibration[i - 1]["hits"], n + calibration[i - 1]["n"]
        if n < minimum or all_n - n < minimum:
            continue
        low, high = stat(hits, n), stat(all_hits - hits, all_n - n)
        if low["high"] < 0.5 and high["rate"] > low["high"]:
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
