"""Stock splits in unadjusted candles: found by the overnight move they leave, taken out by back-adjusting.

A 2:1 split halves the price from one bar to the next and the price stays there; a crash of the same size
is followed by a market that goes on moving, and a bad tick jumps back. So a split is a move from one bar's
close to the next bar's open (or close, for data whose open repeats the last close) that matches a split
ratio within `TOLERANCE`, with the bars after it staying near the new level (within what the market's own
volatility allows, and never a third of the split's size away) and the bars before it not already there.
Real volatility of the size of a ratio (a 50 % crash that recovers) is thus not taken for one, which the
tests check on the shipped EUR/USD hours and on adjusted stock data. A real move that looks exactly like a
split (a crash to half that holds) cannot be told from one by prices alone: the importer names it, and the
user says which it is (`import_candles --adjust-splits` or `--no-split-check`)."""

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from fractions import Fraction

from django.db import transaction
from django.db.models import F

from .importers import Bar, store_bars
from .models import Candle, IndicatorSet, StoredMarket

# Shares after : shares before. Neighbours are at least 13 % apart (7:1 and 8:1), far more than TOLERANCE.
FORWARD = ((3, 2), (2, 1), (5, 2), (3, 1), (4, 1), (5, 1), (6, 1), (7, 1), (8, 1), (10, 1), (15, 1), (20, 1))
REVERSE = ((1, 2), (1, 3), (1, 4), (1, 5), (1, 8), (1, 10), (1, 15), (1, 20), (1, 25), (1, 30), (1, 50))
RATIOS = tuple(Fraction(after, before) for after, before in FORWARD + REVERSE)
# How far (in log price) the overnight move may be from the ratio: the day's ordinary move on top of it.
TOLERANCE = 0.05
# Bars after the move that must stay at the new level, and bars before it that must not be there already.
WINDOW = 5
# How far a bar after the move may wander from the new level: this many of the market's typical moves
# (scaled by the square root of the bars since the split), at least MIN_BAND, at most a third of the split.
BAND_MOVES, MIN_BAND = 4, 0.05


@dataclass(frozen=True)
class Split:
    time: datetime  # open time of the first bar at the new price
    line: int  # the file's line of that bar
    ratio: Fraction  # shares after per share before: the price before over the price after
    close_before: float
    price_after: float
    price_after_is: str  # "open" or "close"

    @property
    def ratio_text(self) -> str:
        return f"{self.ratio.numerator}:{self.ratio.denominator}"

    @property
    def when(self) -> str:
        return (
            f"{self.time:%Y-%m-%d}"
            if self.time.time() == datetime.min.time()
            else f"{self.time:%Y-%m-%d %H:%M}"
        )

    def __str__(self) -> str:
        return (
            f"line {self.line}: a {self.ratio_text} split on {self.when} "
            f"(close {self.close_before:g} -> {self.price_after_is} {self.price_after:g})"
        )

    def record(self, timeframe: str) -> dict:
        """What StoredMarket.splits keeps of it."""
        return {"date": self.when, "ratio": self.ratio_text, "line": self.line, "timeframe": timeframe}


def find_splits(lines: Sequence[tuple[int, Bar]]) -> list[Split]:
    """The splits in the file's bars (each with its line, in any order), oldest first."""
    ordered = sorted(lines, key=lambda line_bar: line_bar[1].open_time)
    closes = [bar.close for _, bar in ordered]
    sigma = _typical_move(closes)
    found = []
    for i in range(1, len(ordered)):
        before = closes[i - 1]
        line, bar = ordered[i]
        for name in ("open", "close"):
            after = getattr(bar, name)
            ratio = _ratio(before / after)
            if ratio is not None and _holds(closes, i, before / float(ratio), ratio, sigma):
                found.append(Split(bar.open_time, line, ratio, before, after, name))
                break
    return found


def adjust(bars: Sequence[Bar], splits: Sequence[Split]) -> list[Bar]:
    """The bars as if every split had always been in force: prices before a split divided by its ratio,
    volumes multiplied by it, so that the last prices are as traded."""
    adjusted = []
    for bar in bars:
        factor = math.prod(float(s.ratio) for s in splits if bar.open_time < s.time)
        if factor == 1:
            adjusted.append(bar)
            continue
        adjusted.append(
            replace(
                bar,
                open=bar.open / factor,
                high=bar.high / factor,
                low=bar.low / factor,
                close=bar.close / factor,
                volume=bar.volume * factor,
            )
        )
    return adjusted


def _typical_move(closes: Sequence[float]) -> float:
    """The standard deviation of one bar's log move, from the median absolute move so that the splits in
    the file (a handful of huge moves) do not count."""
    moves = [abs(math.log(b / a)) for a, b in itertools.pairwise(closes)]
    return 1.4826 * statistics.median(moves) if moves else 0.0


def _ratio(move: float) -> Fraction | None:
    logged = math.log(move)
    for ratio in RATIOS:
        if abs(logged - math.log(ratio)) <= TOLERANCE:
            return ratio
    return None


def _holds(closes: Sequence[float], i: int, level: float, ratio: Fraction, sigma: float) -> bool:
    """Whether the price stays at `level` (the old price in the new units) for WINDOW bars from i on, and
    was not there in the WINDOW bars before: a split, not a crash that recovers or a bad tick."""
    cap = abs(math.log(ratio)) / 3
    for k, close in enumerate(closes[i : i + WINDOW + 1]):
        band = min(cap, max(MIN_BAND, BAND_MOVES * sigma * math.sqrt(k + 1)))
        if abs(math.log(close / level)) > band:
            return False
    old = closes[i - 1]
    return all(
        abs(math.log(close / level)) > abs(math.log(close / old))
        for close in closes[max(0, i - WINDOW - 1) : i]
    )


@transaction.atomic
def store_with_splits(
    exchange: str,
    symbol: str,
    timeframe: str,
    bars: Sequence[Bar],
    splits: Sequence[Split],
    *,
    adjusting: bool,
) -> tuple[int, int]:
    """Store the file's bars, back-adjusted for the splits found in them when `adjusting`, else as they are
    (the moves are real), and keep the market's other candles of `timeframe` in the same units.

    The market's record (StoredMarket.splits) says which splits its stored candles are adjusted for. A split
    adjusted for and not yet recorded rescales the candles stored before it and is recorded; a recorded split
    whose move this file shows and is told to keep (`adjusting` false) is taken out of them again and out of
    the record. A recorded split the file does not show (its data already adjusted) stays. Returns (candles
    stored from the file, stored candles before the file rescaled)."""
    if not bars:
        return 0, 0
    market = StoredMarket.objects.select_for_update().filter(exchange=exchange, symbol=symbol).first()
    if market is None:
        market = StoredMarket(exchange=exchange, symbol=symbol)
    known = {_key(r) for r in market.splits_for(timeframe)}
    if adjusting:
        rescale = [(s.time, float(s.ratio)) for s in splits if _key(s.record(timeframe)) not in known]
    else:
        rescale = [(s.time, 1 / float(s.ratio)) for s in splits if _key(s.record(timeframe)) in known]
    candles = Candle.objects.filter(exchange=exchange, symbol=symbol, timeframe=timeframe)
    older = candles.filter(open_time__lt=min(b.open_time for b in bars)).count() if rescale else 0
    for time, factor in rescale:
        # The file's own candles among them are written over next.
        candles.filter(open_time__lt=time).update(
            open=F("open") / factor,
            high=F("high") / factor,
            low=F("low") / factor,
            close=F("close") / factor,
            volume=F("volume") * factor,
        )
    count = store_bars(exchange, symbol, timeframe, adjust(bars, splits) if adjusting else bars)
    if splits:
        # Found again (its line may differ) or kept as real: either way the old entry goes.
        found = {_key(s.record(timeframe)) for s in splits}
        kept = [r for r in market.splits if r["timeframe"] != timeframe or _key(r) not in found]
        added = [s.record(timeframe) for s in splits] if adjusting else []
        market.splits = sorted([*kept, *added], key=_time)
        market.save()
    if rescale:
        IndicatorSet.objects.filter(exchange=exchange, symbol=symbol, timeframe=timeframe).delete()
    return count, older


def _key(record: dict) -> tuple[str, str]:
    return record["date"], record["ratio"]


def _time(record: dict) -> datetime:
    return datetime.fromisoformat(record["date"]).replace(tzinfo=UTC)
