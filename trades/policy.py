"""The decision (docs/architecture.md, "Steps 5-8"): whether an analysis becomes a trade, and how big. A pure
function over plain data, so every risk limit is a formula a test can pin down; the cycle gathers the data.

The learned values (minimum confidence, size factor, why its conditions refuse a call) come from
learning.policy, the outcome model's verdict from learning.ml."""

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from core.values import Recommendation

# Consecutive losses after which a bot waits before trading again, and for how many cycles.
COOLDOWN_AFTER_LOSSES = 3
COOLDOWN_CYCLES = 3


@dataclass(frozen=True)
class RiskLimits:
    min_confidence: float
    risk_per_trade_pct: Decimal
    max_position_pct: Decimal
    max_open_trades: int
    daily_loss_limit_pct: Decimal
    size_factor: Decimal = Decimal(1)  # learned from the bot's history (learning.policy); 0: no edge
    avoided: str = ""  # why the learned or pinned conditions keep this call out (learning.policy), or ""
    ml_gate: dict | None = None  # the outcome model's verdict (learning.ml.gate), when one is active


@dataclass(frozen=True)
class Situation:
    equity: Decimal  # what the bot's account is worth now, open positions at entry value
    cash: Decimal  # what it can spend now
    open_trades: int
    day_loss: Decimal  # realised losses today, as a positive amount
    losses_in_a_row: int
    cycles_since_last_loss: int
    halted_by: str = ""  # "global" or "user" kill switch, else empty


@dataclass(frozen=True)
class Decision:
    trade: bool
    reason: str
    amount: Decimal = Decimal(0)
    pause_bot: bool = False  # the daily loss limit was reached


def decide(
    recommendation: str,
    confidence: float,
    entry: Decimal | None,
    stop: Decimal | None,
    limits: RiskLimits,
    now: Situation,
    amount_step: Decimal = Decimal("0.00000001"),
) -> Decision:
    if now.halted_by:
        return Decision(False, f"trading halted by the {now.halted_by} kill switch")
    if now.day_loss >= now.equity * limits.daily_loss_limit_pct / 100 > 0:
        return Decision(
            False,
            f"daily loss {now.day_loss:.2f} reached the {limits.daily_loss_limit_pct}% limit",
            pause_bot=True,
        )
    if recommendation == Recommendation.HOLD:
        return Decision(False, "the analysis says HOLD")
    if confidence < limits.min_confidence:
        return Decision(False, f"confidence {confidence:g} below the minimum {limits.min_confidence:g}")
    if limits.size_factor <= 0:
        return Decision(False, "the learned size factor is 0: no condition with an edge beyond noise yet")
    if limits.avoided:
        return Decision(False, limits.avoided)
    if limits.ml_gate and not limits.ml_gate["pass"]:
        verdict = limits.ml_gate
        return Decision(
            False,
            f"the outcome model {verdict['model']} gives p(win) {verdict['p_win']:.2f}, below the "
            f"{verdict['needed']:.2f} a positive expectancy at this reward/risk needs",
        )
    if now.open_trades >= limits.max_open_trades:
        return Decision(
            False, f"{now.open_trades} open trade(s), the most allowed is {limits.max_open_trades}"
        )
    if now.losses_in_a_row >= COOLDOWN_AFTER_LOSSES and now.cycles_since_last_loss < COOLDOWN_CYCLES:
        return Decision(
            False,
            f"cooling down after {now.losses_in_a_row} losses in a row "
            f"({now.cycles_since_last_loss} of {COOLDOWN_CYCLES} cycles waited)",
        )
    if entry is None or stop is None or entry <= 0 or entry == stop:
        return Decision(False, "no usable entry and stop-loss to size the position from")

    # Lose risk_per_trade_pct of equity if the stop is hit, scaled by what the bot has learned.
    risk = now.equity * limits.risk_per_trade_pct / 100 * limits.size_factor
    amount = risk / abs(entry - stop)
    cap = now.equity * limits.max_position_pct / 100 / entry
    amount = min(amount, cap, now.cash / entry).quantize(amount_step, rounding=ROUND_DOWN)
    if amount <= 0:
        return Decision(False, "no cash left for a position")
    return Decision(True, f"{recommendation} {amount} at about {entry}", amount=amount)
