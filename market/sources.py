"""Where candles come from. Every source returns the same thing: a pandas DataFrame with float columns
open, high, low, close, volume, indexed by the candle's open time (UTC, ascending, named "time"),
holding only candles that had closed by the moment asked for."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import numpy as np
import pandas as pd
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
