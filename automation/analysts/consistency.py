"""An analysis whose levels contradict its own recommendation is kept but not traded (docs/architecture.md,
"Steps 1-4 of the cycle")."""

from core.values import Recommendation

from .schema import Analysis


def level_problem(analysis: Analysis) -> str | None:
    """Why a BUY or SELL cannot be traded as stated, or None when its levels are consistent."""
    rec, entry, stop, target = (
        analysis.recommendation,
        analysis.entry,
        analysis.stop_loss,
        analysis.take_profit,
    )
    if rec == Recommendation.HOLD:
        return None
    if entry is None or stop is None or target is None:
        return f"{rec} without entry, stop-loss and take-profit"
    if rec == Recommendation.BUY:
        if stop >= entry:
            return f"BUY with stop-loss {stop} not below entry {entry}"
        if target <= entry:
            return f"BUY with take-profit {target} not above entry {entry}"
    else:
        if stop <= entry:
            return f"SELL with stop-loss {stop} not above entry {entry}"
        if target >= entry:
            return f"SELL with take-profit {target} not below entry {entry}"
    return None


def enforce_consistent_levels(analysis: Analysis) -> tuple[Analysis, str | None]:
    """The analysis as it may be traded: unchanged, or turned into HOLD with the reason."""
    problem = level_problem(analysis)
    if problem is None:
        return analysis, None
    return analysis.model_copy(update={"recommendation": "HOLD"}), problem
