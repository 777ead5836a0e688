"""Steps 9-10 of the cycle (docs/learning.md): every analysis gets an outcome. A traded one when its trade
closes; an untraded one (HOLD, below the threshold, refused by a risk limit) once its time limit has passed,
against what the price did, so that learning is not limited to, and biased by, the trades taken. An
untraded BUY or SELL is scored by the paper trade it would have been, so that traded or not a call says
what trading it earns."""

import logging
from datetime import datetime, timedelta
from decimal import Decimal

import pandas as pd
from django.conf import settings
from django.db import transaction
from django.db.models import Q

from core.values import BUY_OR_SELL, Outcome
from trades.brokers.simulation import paper_costs
from trades.outcomes import Bars, Costs, accuracy_score, paper_trade, time_limit

from .counters import count_policy, count_resolved
from .models import AILearningData

logger = logging.getLogger(__name__)


def resolve_traded(trade) -> bool:
    """The closed trade's analysis takes the trade's outcome. False if there is none or it was resolved."""
    if trade.analysis_id is None:
        return False
    return settle(trade.analysis, traded_fields(trade.analysis, trade))


def traded_fields(analysis: AILearningData, trade) -> dict:
    """The outcome fields an analysis takes from its closed trade."""
    conditions = analysis.market_conditions
    return dict(
        feedback_data={**analysis.feedback_data, "cost_r": trade.learning_data.get("cost_r")},
        outcome=trade.outcome,
        actual_price=trade.exit_price,
        accuracy_score=accuracy_score(
            analysis.recommendation,
            conditions["close"],
            _float(analysis.predicted_price),
            float(trade.exit_price),
            conditions.get("atr") or 0.0,
        ),
        outcome_r=_float(trade.actual_rr),
        untraded=False,
        resolved_at=trade.closed_at,
    )


def settle(analysis: AILearningData, fields: dict) -> bool:
    """Write the outcome once (compare-and-swap on the empty outcome) and count it in the insights' running
    totals in the same transaction."""
    with transaction.atomic():
        if not AILearningData.objects.filter(pk=analysis.pk, outcome="").update(**fields):
            return False
        for name, value in fields.items():
            setattr(analysis, name, value)
        count_resolved(analysis)
        count_policy(analysis)
    return True


def resolve_untraded(bot, candles: pd.DataFrame, period: timedelta, now: datetime) -> int:
    """Resolve the bot's untraded analyses whose time limit has passed by `now`, from `candles` (which must
    reach back to the oldest of them; those it does not cover wait). Returns how many were resolved."""
    waiting = [(analysis, due_at(analysis, period)) for analysis in awaiting(bot).order_by("created_at")]
    return resolve_due(waiting, Bars(candles), period, now, settle, paper_costs(bot.exchange, bot.symbol))


def resolve_due(
    waiting, bars: Bars, period: timedelta, now: datetime, settle, costs: Costs, forget=None
) -> int:
    """Settle each of `waiting`, (analysis, when its time limit passes at the earliest) pairs wherever they
    are kept (the database, a replay's books), whose time limit the candles `bars` cover by `now`, with
    `settle(analysis, fields)` (which returns whether it wrote them), scoring a BUY or SELL at the market's
    `costs`; one older than the candles is handed to `forget`, when given: the look-back only moves on, so
    this caller will never resolve it. Returns how many were resolved."""
    if not len(bars):
        return 0
    first_open = bars.times[0]
    resolved = 0
    for analysis, due in list(waiting):
        if due > now:
            continue  # what due_window says first, without reading the analysis again
        window = due_window(analysis, bars, first_open, period, now)
        if window is None:
            if forget is not None and out_of_reach(analysis, first_open):
                forget(analysis)
            # Else its time limit fell in a market's pause, and the candles after it are still to come.
        elif settle(analysis, untraded_fields(analysis, bars, window, period, costs)):
            resolved += 1
    return resolved


def awaiting(bot):
    """The bot's analyses without an outcome and without a trade that will give them one: untraded, or
    whose live order the exchange never took (its trade CANCELLED, trades.entries), which were not traded
    either."""
    return AILearningData.objects.filter(bot=bot, outcome="").filter(
        Q(trade__isnull=True) | Q(trade__status="CANCELLED")
    )


def due_window(analysis: AILearningData, bars: Bars, first_open, period, now) -> tuple[int, int] | None:
    """Where the candles of the analysis's time limit (`limit_of`) lie in `bars` (which start at
    `first_open`), [start, end), once they have all closed by `now` and `bars` hold them; else None."""
    if due_at(analysis, period) > now or out_of_reach(analysis, first_open):
        return None  # not due; or older than the candles at hand: a monitor pass with a longer look-back
    # Counted in candles, as the monitor counts a trade's: where the market paused (a currency pair's
    # weekend) the limit runs on in the candles after the pause, and the call waits for them.
    start = bars.at(datetime.fromisoformat(analysis.market_conditions["as_of"]))
    end = start + limit_of(analysis)
    return (start, end) if end <= len(bars) else None


def out_of_reach(analysis: AILearningData, first_open) -> bool:
    """Whether the analysis is older than candles that start at `first_open`: no window of them can score
    it (a longer look-back may)."""
    return datetime.fromisoformat(analysis.market_conditions["as_of"]) < first_open


def due_at(analysis: AILearningData, period: timedelta) -> datetime:
    """The earliest its time limit can have passed: later where the market paused (`due_window`)."""
    return datetime.fromisoformat(analysis.market_conditions["as_of"]) + limit_of(analysis) * period


def limit_of(analysis: AILearningData) -> int:
    """How many candles the call is scored over: its trade's time limit (`trades.outcomes.time_limit`)."""
    return time_limit(analysis.analysis_data.get("horizon"), settings.MAX_HOLDING_CANDLES)


def untraded_fields(
    analysis: AILearningData, bars: Bars, window: tuple[int, int], period: timedelta, costs: Costs
) -> dict:
    """The outcome fields of an untraded analysis over the candles of its time limit (`due_window`'s
    `window` of `bars`), a BUY or SELL scored at the market's `costs`."""
    a, conditions = analysis.analysis_data, analysis.market_conditions
    reference = float(conditions["close"])
    fields = {"untraded": True, "resolved_at": bars.closed_at(window[1] - 1, period)}
    recommendation = analysis.recommendation
    if recommendation in BUY_OR_SELL and a.get("stop_loss") is not None:
        # What its paper trade would have written (`trades.outcomes.paper_trade`): the window ends at the
        # time limit, so there is an exit.
        exit, result = paper_trade(
            recommendation,
            Decimal(str(a["stop_loss"])),
            _decimal(a.get("take_profit")),
            datetime.fromisoformat(conditions["as_of"]),
            bars,
            period,
            limit_of(analysis),
            costs,
            settings.BREAKEVEN_BAND_PCT,
            window,
        )
        fields |= {
            "resolved_at": exit.at,
            "outcome": result.outcome,
            "actual_price": exit.price,
            "outcome_r": _float(result.actual_rr),
            "feedback_data": {
                **analysis.feedback_data,
                "exit_reason": exit.reason,
                "pnl_percent": float(result.pnl_percent),
                "cost_r": _float(result.cost_r),
            },
        }
    else:
        # HOLD said the price would not move much: right if it ended within one ATR of where it was.
        actual = bars.close[window[1] - 1]
        band = float(conditions.get("atr") or 0.0)
        fields |= {
            "outcome": Outcome.WIN if abs(actual - reference) <= band else Outcome.LOSS,
            "actual_price": Decimal(str(actual)),
        }
    fields["accuracy_score"] = accuracy_score(
        recommendation,
        reference,
        _float(analysis.predicted_price),
        float(fields["actual_price"]),
        float(conditions.get("atr") or 0.0),
    )
    return fields


def _float(value) -> float | None:
    return None if value is None else float(value)


def _decimal(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))
