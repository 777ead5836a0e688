from datetime import UTC, datetime, timedelta
from itertools import count

from learning.counters import rebuild
from learning.models import AILearningData

T0 = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday
_minutes = count()


def resolved(
    user,
    n: int,
    wins: int,
    *,
    bot=None,
    week: int = 0,
    every: timedelta = timedelta(0),
    after: timedelta = timedelta(0),
    **fields,
) -> None:
    """`n` resolved analyses of which `wins` are WINs (the rest LOSSes), with `fields` in common, resolved
    `every` apart from `after` into the week (the policy counts calls resolved far enough apart as
    independent)."""
    defaults = {
        "symbol": "EUR/USD",
        "timeframe": "1h",
        "market_sentiment": "BULLISH",
        "regime": "TREND_LOW_VOL",
    }
    AILearningData.objects.bulk_create(
        AILearningData(
            user=user,
            bot=bot,
            analysis_data={},
            market_conditions={},
            outcome="WIN" if i < wins else "LOSS",
            resolved_at=T0 + timedelta(weeks=week, minutes=next(_minutes)) + after + i * every,
            **{**defaults, **fields},
        )
        for i in range(n)
    )
    rebuild(user)  # bulk_create skips the running totals the cycle keeps
