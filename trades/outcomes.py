"""What happened after an analysis, as numbers (formulas in docs/learning.md): where a position exits, and
what that result was. Pure functions over plain values and candles, so each is pinned by a test with a
known answer (the example trade of docs/learning.md among them). One rule scores every call, traded or
not: the monitor closes paper trades by it, and learning scores the calls that were not traded by the paper
trade they would have been (`paper_trade`), so it lives here, below learning."""

import bisect
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import pandas as pd

from core.values import Outcome, Recommendation, Side
from market.sources import EPOCH, float_columns

PRICE_STEP = Decimal("0.000000000001")
ONE_UNIT = Decimal(1)


@dataclass(frozen=True)
class TradeResult:
    outcome: str
    pnl_percent: Decimal  # net of fees, of the position's entry value
    actual_rr: Decimal | None  # the move in units of the initial risk (entry to stop), net of fees
    entry_accuracy: str  # GOOD / FAIR / POOR: how far the price went against the entry first
    market_behavior: str  # AS_EXPECTED / REVERSED / PARTIAL / STALLED / AGAINST
    costs: Decimal = Decimal(0)  # the fees and the slippage, in the quote currency
    cost_r: Decimal | None = None  # the same in units of the initial risk: actual_rr + cost_r is the gross R


@dataclass(frozen=True)
class Exit:
    price: Decimal  # the fill: `level`, less the slippage for a stop's or a time exit's market order
    at: datetime  # close time of the candle that triggered it
    reason: str  # STOP_LOSS, TAKE_PROFIT or TIME_EXIT
    worst: Decimal | None = None  # the most adverse price on the way (lowest low of a long), if known
    level: Decimal | None = None  # the price before slippage: the stop (or the open that gapped through
    # it), the target, the close; None when only the fill is known (an exchange's)

    def slippage(self, side: str, amount: Decimal) -> Decimal:
        """What the exit lost to slippage against the level, for a position of `side` and `amount`."""
        if self.level is None:
            return Decimal(0)
        direction = 1 if side == Side.BUY else -1
        return direction * (self.level - self.price) * amount


@dataclass(frozen=True)
class Costs:
    """What a paper fill costs (`trades.brokers.simulation.paper_costs` says how much, per market): the taker
    fee on each fill, and a market order's price moved against it by the slippage (half the market's spread).
    The entry and a stop's or a time exit's order are market orders; a target is a limit order and fills at
    its level."""

    fee_pct: Decimal  # of the fill's value, on entry and on exit
    slippage_pct: Decimal  # of the price, against the order

    def fill_price(self, side: str, price: Decimal) -> Decimal:
        direction = 1 if side == Side.BUY else -1
        return (price * (1 + direction * self.slippage_pct / 100)).quantize(PRICE_STEP)

    def fee(self, price: Decimal, amount: Decimal) -> Decimal:
        return (price * amount * self.fee_pct / 100).quantize(PRICE_STEP)


def time_limit(horizon: int | None, max_candles: int) -> int:
    """The most candles a position is held: the call's horizon, at most `max_candles`; `max_candles` for a
    trade without one (opened by hand)."""
    return min(int(horizon), max_candles) if horizon else max_candles


class Bars:
    """Candles as plain floats, with their open times as datetimes, converted from a frame once: the monitor
    and learning walk a few candles at a time, many times a cycle, and slicing the frame for each walk (and
    boxing each candle's time) cost more than the walks."""

    def __init__(self, candles: pd.DataFrame):
        self.times: list[datetime] = candles.index.to_pydatetime().tolist()
        columns = float_columns(candles, "open", "low", "high", "close")
        self.open, self.low, self.high, self.close = (c.tolist() for c in columns)

    def __len__(self) -> int:
        return len(self.times)

    def __getitem__(self, span: slice) -> "Bars":
        """The bars of the candles at positions `span`, as Bars of a frame of just those would hold them: a
        look-back's taken from its market's whole history converted once (300 candles: 14 µs, where
        converting their frame takes 220 µs, their times as datetimes most of it)."""
        part = Bars.__new__(Bars)  # not copy.copy, a third of the slicing's time: every attribute is set here
        part.times, part.open, part.low, part.high, part.close = (
            self.times[span],
            self.open[span],
            self.low[span],
            self.high[span],
            self.close[span],
        )
        return part

    def at(self, moment: datetime) -> int:
        """Where `moment` goes among the open times (the position of the candle that opened then, if one
        did)."""
        return bisect.bisect_left(self.times, moment)

    def entry(self, entered_at: datetime, period) -> int:
        """The position of the candle the entry fell in: the one that opened at the entry floored to the
        period."""
        return self.at(entered_at - (entered_at - EPOCH) % period)

    def closed_at(self, at: int, period) -> datetime:
        return self.times[at] + period


def first_exit(
    side: str,
    stop: Decimal | None,
    target: Decimal | None,
    entered_at: datetime,
    candles: "Bars | pd.DataFrame",
    period,
    max_candles: int,
    costs: Costs,
) -> Exit | None:
    """The first exit among `candles` opened at or after the entry, or None while the position stays open:
    the monitor's rule for open trades (trades.monitor), and so `paper_trade`'s (`exit_among`). A cycle
    hands over the Bars it walks anyway; a frame is converted."""
    bars = candles if isinstance(candles, Bars) else Bars(candles)
    return exit_among(
        bars, bars.entry(entered_at, period), len(bars), side, stop, target, period, max_candles, costs
    )


def exit_among(
    bars: Bars,
    begin: int,
    end: int,
    side: str,
    stop: Decimal | None,
    target: Decimal | None,
    period,
    max_candles: int,
    costs: Costs,
) -> Exit | None:
    """`first_exit` over the candles `bars[begin:end]`, the first of them the one the entry fell in. A stop
    fills at the stop, or at the candle's open when the price gapped through it (the open already beyond the
    stop), less the slippage; a target fills at the target; the time exit at the close, less the
    slippage."""
    buy = side == Side.BUY
    leaving = Side.SELL if buy else Side.BUY  # the side of the order that closes the position
    worst = None  # the most adverse price so far, as a float: ordered as its exact decimal is
    opens, lows, highs, closes = bars.open, bars.low, bars.high, bars.close
    for at in range(begin, end):
        open_, low, high, close = opens[at], lows[at], highs[at], closes[at]
        extreme = low if buy else high
        worst = extreme if worst is None else min(worst, extreme) if buy else max(worst, extreme)
        if stop is not None and (low <= stop if buy else high >= stop):
            gapped = open_ <= stop if buy else open_ >= stop
            reason, level = "STOP_LOSS", Decimal(str(open_)) if gapped else stop
            price = costs.fill_price(leaving, level)
        elif target is not None and (high >= target if buy else low <= target):
            reason, level = "TAKE_PROFIT", target
            price = target
        elif at - begin + 1 >= max_candles:
            reason, level = "TIME_EXIT", Decimal(str(close))
            price = costs.fill_price(leaving, level)
        else:
            continue
        return Exit(price, bars.closed_at(at, period), reason, Decimal(str(worst)), level)
    return None


def paper_trade(
    side: str,
    stop: Decimal | None,
    target: Decimal | None,
    entered_at: datetime,
    bars: Bars,
    period,
    max_candles: int,
    costs: Costs,
    band_pct: Decimal,
    within: tuple[int, int] | None = None,
) -> tuple[Exit, TradeResult] | None:
    """The paper trade of a call acted on at `entered_at` (when the candle it saw closed), as the replay's
    cycle opens it (at the open of the candle then starting, plus the slippage: the paper broker's fill) and
    the monitor closes it (`first_exit`, the fee out), among the candles `within` (positions [start, end) of
    `bars`; all of them by default): its exit and what it wrote, per unit (the amount cancels out of the
    percentage and R); None while it would still be open."""
    start, end = within or (0, len(bars))
    begin = max(bars.entry(entered_at, period), start)
    exit = exit_among(bars, begin, end, side, stop, target, period, max_candles, costs)
    if exit is None:
        return None
    opened = Decimal(str(bars.open[begin]))
    entry = costs.fill_price(side, opened)
    direction = 1 if side == Side.BUY else -1
    return exit, trade_result(
        side=side,
        entry=entry,
        exit=exit.price,
        amount=ONE_UNIT,
        fees=costs.fee(entry, ONE_UNIT) + costs.fee(exit.price, ONE_UNIT),
        stop=stop,
        exit_reason=exit.reason,
        worst=exit.worst,
        band_pct=band_pct,
        slippage=direction * (entry - opened) + exit.slippage(side, ONE_UNIT),
    )


def outcome_of(pnl_percent: Decimal, band_pct: Decimal) -> str:
    """WIN or LOSS outside a band around zero, BREAKEVEN inside it (fees make a tiny win a loss of time)."""
    if abs(pnl_percent) <= band_pct:
        return Outcome.BREAKEVEN
    return Outcome.WIN if pnl_percent > 0 else Outcome.LOSS


def trade_result(
    *,
    side: str,
    entry: Decimal,
    exit: Decimal,
    amount: Decimal,
    fees: Decimal,
    stop: Decimal | None,
    exit_reason: str,
    worst: Decimal | None = None,
    band_pct: Decimal = Decimal("0.1"),
    slippage: Decimal = Decimal(0),
) -> TradeResult:
    """`worst` is the most adverse price between entry and exit (the lowest low of a long), if known;
    `slippage` what the fills lost against the prices they were placed at, with the fees the trade's costs."""
    direction = 1 if side == Side.BUY else -1
    cost = entry * amount
    pnl = direction * (exit - entry) * amount - fees
    pnl_percent = pnl / cost * 100
    risk = abs(entry - stop) * amount if stop is not None and stop != entry else None
    actual_rr = pnl / risk if risk else None
    costs = fees + slippage
    return TradeResult(
        outcome=outcome_of(pnl_percent, band_pct),
        pnl_percent=pnl_percent.quantize(Decimal("0.0001")),
        actual_rr=actual_rr.quantize(Decimal("0.0001")) if actual_rr is not None else None,
        entry_accuracy=entry_accuracy(side, entry, stop, worst),
        market_behavior=market_behavior(exit_reason, pnl_percent, band_pct),
        costs=costs.quantize(PRICE_STEP),
        cost_r=(costs / risk).quantize(Decimal("0.0001")) if risk else None,
    )


def entry_accuracy(side: str, entry: Decimal, stop: Decimal | None, worst: Decimal | None) -> str:
    """GOOD when the price went less than a third of the way to the stop before the exit, FAIR under two
    thirds, POOR beyond (or stopped out). Unknown without a stop or the path: FAIR."""
    if stop is None or worst is None or stop == entry:
        return "FAIR"
    adverse = max(Decimal(0), (entry - worst) if side == Side.BUY else (worst - entry))
    share = adverse / abs(entry - stop)
    return "GOOD" if share < Decimal(1) / 3 else "FAIR" if share < Decimal(2) / 3 else "POOR"


def market_behavior(exit_reason: str, pnl_percent: Decimal, band_pct: Decimal) -> str:
    if exit_reason == "TAKE_PROFIT":
        return "AS_EXPECTED"
    if exit_reason == "STOP_LOSS":
        return "REVERSED"
    # Left at the time limit (or by hand): how far the market went the predicted way.
    if abs(pnl_percent) <= band_pct:
        return "STALLED"
    return "PARTIAL" if pnl_percent > 0 else "AGAINST"


def accuracy_score(
    recommendation: str, reference: float, predicted: float | None, actual: float, hold_band: float
) -> float:
    """0-1: how right the analysis was about where the price went, direction and distance both counting.

    BUY/SELL: half for the direction (the price moved from `reference`, the close the analysis saw, the way
    the prediction said), half for the distance: 1 - |actual - predicted| / |predicted - reference|, floored
    at 0. Seed: reference 146.50, predicted 152.43, actual 151.20 -> 0.5 + 0.5 * (1 - 1.23 / 5.93) = 0.896.
    HOLD (or no predicted move): 1 - |actual - reference| / (2 * hold_band), floored at 0: full marks when
    the price stayed put, none once it moved twice the band (an ATR) either way."""
    if recommendation == Recommendation.HOLD or predicted is None or predicted == reference:
        return max(0.0, 1 - abs(actual - reference) / (2 * hold_band)) if hold_band > 0 else 0.0
    direction = 1.0 if (actual - reference) * (predicted - reference) > 0 else 0.0
    distance = max(0.0, 1 - abs(actual - predicted) / abs(predicted - reference))
    return round(0.5 * direction + 0.5 * distance, 4)
