"""The running totals behind the insights (InsightCounter). Each resolved analysis adds one to the counters of
every figure it belongs to (overall, traded or not, confidence bucket, calibration decile, timeframe,
sentiment, symbol, regime, prompt version, week), in the same transaction as its resolution, with one
INSERT ... ON CONFLICT DO UPDATE that adds to the stored sums (PostgreSQL and SQLite both speak it), so
two workers resolving at once both count. The policy's totals (PolicyCounter: BUY/SELL calls in R by
confidence, regime and sentiment) are kept the same way. `rebuild` recomputes a user's counters from the
analyses with grouped aggregates: after a bulk import, and in the tests, which check both ways agree."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, CharField, Count, F, FloatField, Q, Sum, Value, When
from django.db.models.functions import Cast, Coalesce, Floor, TruncWeek

from core.totals import add_to_totals
from core.values import BUY_OR_SELL, Outcome
from market.sources import EPOCH
from market.timeframes import TIMEFRAME_PERIODS

from .conditions import rsi_band
from .models import AILearningData, InsightCounter, PolicyCounter

SUMS = ("n", "hits", "scored", "confidence_sum", "squared_error")
KEY = ("user_id", "bot_id", "symbol", "timeframe", "dimension", "value")
POLICY_SUMS = ("n", "r_sum", "r_squares", "wins", "win_r", "losses", "loss_r", "hold_sum")
POLICY_KEY = ("user_id", "bot_id", "bucket", "regime", "market_sentiment", "rsi_band", "block")


def confidence_bucket(confidence: float) -> str:
    """Low, middling and high confidence (docs/learning.md)."""
    return "<50" if confidence < 50 else "50-75" if confidence <= 75 else ">75"


def decile(confidence: float) -> int:
    """Calibration bucket in tens, 90-100 together."""
    return min(int(confidence // 10), 9)


def week_of(moment: datetime) -> str:
    """The Monday (UTC) of the week `moment` falls in, as the database's TruncWeek gives it."""
    return (moment.date() - timedelta(days=moment.weekday())).isoformat()


RECORDED = ("recorded", "", 1, 0, 0, 0.0, 0.0)


def count_recorded(analysis: AILearningData) -> None:
    _add(analysis, [RECORDED])


def count_resolved(analysis: AILearningData) -> None:
    """Add a just-resolved analysis to its counters. Call in the transaction that resolved it."""
    _add(analysis, resolved_figures(analysis))


def resolved_figures(a: AILearningData) -> list[tuple]:
    """What a resolved analysis adds: (dimension, value, *SUMS) for every figure it belongs to."""
    hit = 1 if a.outcome == Outcome.WIN else 0
    confidence = a.confidence_score
    if confidence is None:
        scored, total, squared = 0, 0.0, 0.0
    else:
        scored, total, squared = 1, float(confidence), (confidence / 100 - hit) ** 2
    figures = [
        ("all", ""),
        ("traded", "untraded" if a.untraded else "traded"),
        ("timeframe", a.timeframe),
        ("sentiment", a.market_sentiment),
        ("symbol", a.symbol),
        ("regime", a.regime),
        ("prompt_version", str(a.prompt_version_id or "")),
    ]
    if a.resolved_at:
        figures.append(("week", week_of(a.resolved_at)))
    if confidence is not None:
        figures += [("confidence", confidence_bucket(confidence)), ("calibration", str(decile(confidence)))]
    return [(dimension, value, 1, hit, scored, total, squared) for dimension, value in figures]


def count_policy(analysis: AILearningData) -> None:
    """Add a just-resolved BUY/SELL call to the policy's running totals (PolicyCounter). Call in the
    transaction that resolved it."""
    row = policy_row(analysis)
    if row:
        add_to_totals(PolicyCounter, POLICY_KEY, POLICY_SUMS, [row])


def policy_row(a: AILearningData) -> tuple | None:
    """(*POLICY_KEY, *POLICY_SUMS) of a resolved analysis, None unless it is a BUY/SELL call with a result
    in R and a confidence."""
    r = a.outcome_r
    if a.recommendation not in BUY_OR_SELL or r is None or a.confidence_score is None:
        return None
    period = TIMEFRAME_PERIODS[a.timeframe]
    resolved = a.resolved_at or a.created_at
    made = a.market_conditions.get("as_of")
    key = (
        a.user_id,
        a.bot_id or 0,
        policy_bucket(a.confidence_score),
        a.regime,
        a.market_sentiment,
        rsi_band(a.market_conditions.get("rsi")),
        policy_block(resolved, period),
    )
    hold = max(1.0, (resolved - datetime.fromisoformat(made)) / period) if made else 1.0
    return (*key, 1, r, r * r, int(r > 0), r if r > 0 else 0.0, int(r < 0), r if r < 0 else 0.0, hold)


def policy_block(moment: datetime, period: timedelta) -> int:
    """The block of POLICY_BLOCK_CANDLES candles of `period` that `moment` falls in, counted from 1970."""
    return int((moment - EPOCH) // (period * settings.POLICY_BLOCK_CANDLES))


def policy_bucket(confidence: float) -> int:
    """The stated confidence floored to a multiple of 5: the policy tries thresholds in fives."""
    return int(confidence // 5) * 5


def insight_key(analysis: AILearningData) -> tuple:
    return analysis.user_id, analysis.bot_id or 0, analysis.symbol, analysis.timeframe


def _add(analysis: AILearningData, increments: list[tuple]) -> None:
    key = insight_key(analysis)
    add_to_totals(InsightCounter, KEY, SUMS, [(*key, *increment) for increment in increments])


def add_totals(insight_rows: dict[tuple, list], policy_rows: dict[tuple, list]) -> None:
    """Add many increments at once, each dict {key values: sums} already summed per key (one statement
    may not touch a row twice): a replay's chunk."""
    if insight_rows:
        add_to_totals(InsightCounter, KEY, SUMS, [(*key, *sums) for key, sums in insight_rows.items()])
    if policy_rows:
        rows = [(*key, *sums) for key, sums in policy_rows.items()]
        add_to_totals(PolicyCounter, POLICY_KEY, POLICY_SUMS, rows)


def rebuild(user) -> int:
    """Recompute the user's counters from their analyses; returns how many counters there are now."""
    analyses = AILearningData.objects.filter(user=user)
    resolved = analyses.exclude(outcome="")
    scored = resolved.filter(confidence_score__isnull=False)
    text = CharField()
    figures = [
        ("recorded", analyses, Value("", output_field=text)),
        ("all", resolved, Value("", output_field=text)),
        ("traded", resolved, Case(When(untraded=True, then=Value("untraded")), default=Value("traded"))),
        ("timeframe", resolved, F("timeframe")),
        ("sentiment", resolved, F("market_sentiment")),
        ("symbol", resolved, F("symbol")),
        ("regime", resolved, F("regime")),
        ("prompt_version", resolved, Coalesce(Cast("prompt_version_id", text), Value("", output_field=text))),
        ("week", resolved.filter(resolved_at__isnull=False), TruncWeek("resolved_at")),
        (
            "confidence",
            scored,
            Case(
                When(confidence_score__lt=50, then=Value("<50")),
                When(confidence_score__lte=75, then=Value("50-75")),
                default=Value(">75"),
            ),
        ),
        (
            "calibration",
            scored,
            Case(
                When(confidence_score__gte=90, then=Value(9.0)),
                default=Floor(F("confidence_score") / Value(10.0)),
                output_field=FloatField(),
            ),
        ),
    ]
    hit = Case(When(outcome=Outcome.WIN, then=Value(1.0)), default=Value(0.0), output_field=FloatField())
    p = F("confidence_score") / Value(100.0)
    counters = []
    for dimension, rows, value in figures:
        grouped = (
            rows.annotate(figure=value)
            .values("bot_id", "symbol", "timeframe", "figure")
            .annotate(
                n=Count("pk"),
                hits=Count("pk", filter=Q(outcome=Outcome.WIN)) if dimension != "recorded" else Value(0),
                scored=Count("confidence_score") if dimension != "recorded" else Value(0),
                confidence_sum=Coalesce(Sum("confidence_score"), Value(0.0)),
                squared_error=Coalesce(Sum((p - hit) * (p - hit)), Value(0.0)),
            )
            .order_by()
        )
        for row in grouped:
            if dimension == "recorded":
                row["confidence_sum"] = row["squared_error"] = 0.0
            counters.append(
                InsightCounter(
                    user=user,
                    bot_id=row["bot_id"] or 0,
                    symbol=row["symbol"],
                    timeframe=row["timeframe"],
                    dimension=dimension,
                    value=_text(dimension, row["figure"]),
                    **{name: row[name] for name in SUMS},
                )
            )
    policy = _policy_counters(user, resolved)
    with transaction.atomic():
        InsightCounter.objects.filter(user=user).delete()
        InsightCounter.objects.bulk_create(counters, batch_size=1000)
        PolicyCounter.objects.filter(user=user).delete()
        PolicyCounter.objects.bulk_create(policy, batch_size=1000)
    return len(counters)


def _policy_counters(user, resolved) -> list[PolicyCounter]:
    """The policy's totals summed in Python over the calls' rows (`policy_row`), rather than in SQL: their key
    reads the RSI out of a JSON column and their block the timeframe's length, which the two databases spell
    differently; rebuilding is rare."""
    calls = resolved.filter(
        recommendation__in=BUY_OR_SELL, outcome_r__isnull=False, confidence_score__isnull=False
    ).only(
        "user_id", "bot_id", "recommendation", "outcome_r", "confidence_score", "regime", "market_sentiment",
        "market_conditions", "timeframe", "resolved_at", "created_at",
    )  # fmt: skip
    return [
        PolicyCounter(**dict(zip(POLICY_KEY, key, strict=True)), **dict(zip(POLICY_SUMS, sums, strict=True)))
        for key, sums in policy_totals(calls.iterator(chunk_size=2000)).items()
    ]


def policy_totals(calls) -> dict[tuple, list]:
    """The resolved BUY/SELL calls' `policy_row`s summed per key: {POLICY_KEY values: POLICY_SUMS}."""
    totals: dict[tuple, list] = {}
    for call in calls:
        row = policy_row(call)
        sums = totals.setdefault(row[: len(POLICY_KEY)], [0] * len(POLICY_SUMS))
        for i, value in enumerate(row[len(POLICY_KEY) :]):
            sums[i] += value
    return totals


def _text(dimension: str, figure) -> str:
    if dimension == "week":
        return figure.date().isoformat()
    if dimension == "calibration":
        return str(int(figure))
    return figure or ""
