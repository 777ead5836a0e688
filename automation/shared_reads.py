"""What the cycles of one market read alike, read once per worker process and kept a minute.

A thousand bots on twenty markets make fifty cycles per market and slot, and in a worker process each read
the same stored candles (300 rows made into a DataFrame), the same next candle's open, the same stored
indicators and the same answer to whether the market's candles are stored: some 6 ms of a cycle's 18 ms of
CPU in bench/bench_cycles.py's serial sample. Kept here, per process, keyed by everything that decides them:

- the candles of a stored market up to a moment: closed candles of the past, which an import only adds to;
  the one rewrite, a split's back-adjustment (market/splits.py), is seen by the cycles a minute later at
  most, which before it read the same unadjusted candles;
- the open of the candle after a moment, once stored (not its absence: the candle may be stored later);
- the indicators of a market's candles, which are stored once per market, last candle and length and then
  only read (market.indicators.indicators_for);
- that a market's candles are stored (market.exchanges.source_for): not that they are not, so a market
  whose candles are imported while bots run on it is read from them at once.

Nothing here is money, quotas or a claim: those are read afresh each time (automation/reads.py).
The first thread to need a value reads it; the others on the same key wait for it rather than reading their
own copy. Each cycle is handed a copy of the candles, so that no cycle can change another's."""

import threading
import time
from collections.abc import Callable
from datetime import datetime

import pandas as pd

from market.exchanges import source_for
from market.indicators import Indicators, indicators_for
from market.sources import Market, MarketDataSource, StoredCandles

SECONDS = 60.0

_values: dict[tuple, tuple[float, object]] = {}
_locks: dict[tuple, threading.Lock] = {}
_guard = threading.Lock()


def _kept(key: tuple, read: Callable[[], object], keep: Callable[[object], bool] = lambda value: True):
    """The value kept for `key`, or `read()`'s, kept for SECONDS when `keep(value)`."""
    found = _values.get(key)
    if found is not None and found[0] > time.monotonic():
        return found[1]
    with _guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        found = _values.get(key)
        if found is not None and found[0] > time.monotonic():
            return found[1]
        value = read()
        if keep(value):
            with _guard:
                _forget_expired()
                _values[key] = (time.monotonic() + SECONDS, value)
        return value


def _forget_expired() -> None:
    now = time.monotonic()
    for key in [key for key, (until, _) in _values.items() if until <= now]:
        del _values[key]
        _locks.pop(key, None)


def clear() -> None:
    """Forget everything kept (the tests' markets change from one test to the next)."""
    with _guard:
        _values.clear()
        _locks.clear()


def source_of(market: Market) -> MarketDataSource:
    """`source_for(market)`, a stored market's reads kept (SharedCandles). An exchange's source, which holds
    a client of its own, is made for each cycle as before."""
    source = _kept(
        ("source", market), lambda: source_for(market), lambda found: isinstance(found, StoredCandles)
    )
    return SharedCandles(source) if isinstance(source, StoredCandles) else source


class SharedCandles:
    """A stored market's source (`StoredCandles`, `SampleCandles`) whose reads are kept."""

    def __init__(self, source: StoredCandles):
        self.source = source

    def candles(self, market: Market, *, limit: int, until: datetime | None = None) -> pd.DataFrame:
        if until is None:  # now: a moment no other cycle asks for
            return self.source.candles(market, limit=limit, until=until)
        key = ("candles", type(self.source), market, limit, until)
        return _kept(key, lambda: self.source.candles(market, limit=limit, until=until)).copy()

    def open_at(self, market: Market, moment: datetime) -> float | None:
        key = ("open", type(self.source), market, moment)
        return _kept(key, lambda: self.source.open_at(market, moment), lambda found: found is not None)


def indicators_of(market: Market, df: pd.DataFrame) -> Indicators:
    """`indicators_for(market, df)`, kept by what its stored row is keyed by."""
    key = ("indicators", market, df.index[-1], len(df))
    return _kept(key, lambda: indicators_for(market, df))
