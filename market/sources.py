"""Where candles come from. Every source returns the same thing: a pandas DataFrame with float columns
open, high, low, close, volume, indexed by the candle's open time (UTC, ascending, named "time"),
holding only candles that had closed by the moment asked for."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import numpy as np
import pandas as pd
from django.db.models import Count, Max
from django.utils import timezone

from .errors import NotEnoughCandlesError
from .models import Candle
from .timeframes import TIMEFRAME_PERIODS

COLUMNS = ["open", "high", "low", "close", "volume"]


@dataclass(frozen=True)
class Market:
    exchange: str
    symbol: str
    timeframe: str

    @property
    def period(self):
        return TIMEFRAME_PERIODS[self.timeframe]


class MarketDataSource(Protocol):
    def candles(self, market: Market, *, limit: int, until: datetime | None = None) -> pd.DataFrame:
        """The last `limit` candles that had closed by `until` (now when None)."""
        ...

    def open_at(self, market: Market, moment: datetime) -> float | None:
        """The open of the first candle that opened at or after `moment` (after it where the market paused,
        a currency pair's weekend), if the source has it: the price an order placed then fills at (a replay
        acts at the next candle's open); None when it does not (a live market's candle still forming)."""
        ...


def frame(rows, columns=("time", *COLUMNS)) -> pd.DataFrame:
    """Rows of (time, open, high, low, close, volume) as the DataFrame every source returns."""
    df = pd.DataFrame.from_records(list(rows), columns=list(columns))
    df["time"] = pd.to_datetime(df["time"], utc=True)
    df = df.set_index("time").sort_index()
    return df.astype(float)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# Ticks per microsecond of the units a DatetimeIndex may hold times in.
_PER_MICROSECOND = {"us": 1, "ns": 1000}


def in_ticks(moment: datetime | timedelta, unit: str) -> int:
    """A UTC moment (since the epoch) or a duration in ticks of `unit` ("us" or "ns"), exactly."""
    since = moment - EPOCH if isinstance(moment, datetime) else moment
    return since // timedelta(microseconds=1) * _PER_MICROSECOND[unit]


def position(index: pd.DatetimeIndex, moment: datetime, side: str = "left") -> int:
    """Where `moment` goes in the ascending `index` (its searchsorted), compared as integers: a replay asks
    a few times a cycle, and building a Timestamp for each was most of the asking."""
    if index.unit not in _PER_MICROSECOND:
        return int(index.searchsorted(moment, side=side))
    return int(index.asi8.searchsorted(in_ticks(moment, index.unit), side=side))


def float_columns(df: pd.DataFrame, *names: str) -> list[np.ndarray]:
    """The named columns as contiguous float arrays, from one conversion of the frame: taking them a column
    at a time costs more than the indicators computed from them."""
    values = df.to_numpy(dtype=float)
    return [np.ascontiguousarray(values[:, df.columns.get_loc(name)]) for name in names]


def require(df: pd.DataFrame, minimum: int, market: Market) -> pd.DataFrame:
    if len(df) < minimum:
        raise NotEnoughCandlesError(
            f"{market.exchange} {market.symbol} {market.timeframe}: {len(df)} candles, {minimum} needed"
        )
    return df


class StoredCandles:
    """Candles from the shared Candle table: simulation, demos, replays."""

    def candles(self, market: Market, *, limit: int, until: datetime | None = None) -> pd.DataFrame:
        until = until or timezone.now()
        # A candle has closed once its whole period lies before `until`.
        rows = (
            Candle.objects.filter(
                exchange=market.exchange,
                symbol=market.symbol,
                timeframe=market.timeframe,
                open_time__lte=until - market.period,
            )
            .order_by("-open_time")
            .values_list("open_time", *COLUMNS)[:limit]
        )
        return frame(reversed(list(rows)))

    def open_at(self, market: Market, moment: datetime) -> float | None:
        stored = Candle.objects.filter(
            exchange=market.exchange, symbol=market.symbol, timeframe=market.timeframe
        )
        return (
            stored.filter(open_time__gte=moment).order_by("open_time").values_list("open", flat=True).first()
        )


# The exchange of the shipped demo market (automation.demo): stored candles that keep going (SampleCandles).
SAMPLE_EXCHANGE = "sample"


class SampleCandles(StoredCandles):
    """The `sample` exchange's stored candles on the wall clock, so that a bot on it sees a market that moves.

    Up to its last stored candle a market is its history, exactly as `StoredCandles` reads it (replays and
    the demo's history run there). After it, every period of the wall clock gets the next candle of a loop
    over the N stored candles that plays them backwards, then forwards, then backwards again: the j-th period
    after the last stored candle (j = 1, 2, ...) gets the stored candle N - j (counted from 0) played
    backwards while (j - 1) mod 2N < N, else the stored candle (j - 1) mod 2N - N as it is. A candle played
    backwards swaps its open and close, so the loop turns around on the very price it reached, with no jump
    at either seam (nor where the history ends); the other steps move as the history moved, weekend gaps
    included. Deterministic: the same market and moment always give the same candles, with their times in
    the present, one every period, the market's weekends and holidays too."""

    def candles(self, market: Market, *, limit: int, until: datetime | None = None) -> pd.DataFrame:
        until = until or timezone.now()
        stored = Candle.objects.filter(
            exchange=market.exchange, symbol=market.symbol, timeframe=market.timeframe
        )
        span = stored.aggregate(last=Max("open_time"), n=Count("pk"))
        last, n = span["last"], span["n"]
        # How many periods after the last stored candle had closed by `until`.
        after = (until - market.period - last) // market.period if n else 0
        looped = min(max(after, 0), limit)
        history = super().candles(market, limit=limit - looped, until=until) if looped < limit else None
        if not looped:
            return history
        steps = np.arange(after - looped + 1, after + 1)
        turn = (steps - 1) % (2 * n)
        backwards = turn < n
        index = np.where(backwards, n - 1 - turn, turn - n)
        # Consecutive periods take neighbouring stored candles, so they are one slice of the stored ones.
        low, high = int(index.min()), int(index.max())
        rows = stored.order_by("open_time").values_list(*COLUMNS)[low : high + 1]
        values = np.array(list(rows), dtype=float).reshape(-1, len(COLUMNS))[index - low]
        opens, closes = COLUMNS.index("open"), COLUMNS.index("close")
        values[np.ix_(backwards, [opens, closes])] = values[np.ix_(backwards, [closes, opens])]
        times = [last + int(step) * market.period for step in steps]
        loop = frame((time, *row) for time, row in zip(times, values, strict=True))
        return loop if history is None else pd.concat([history, loop])
