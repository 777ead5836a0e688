"""The `sample` exchange's candles: the stored history up to its end, then a loop over it on the wall clock
that plays the candles backwards, then forwards, with no jump at its seams."""

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from market.exchanges import source_for
from market.models import Candle
from market.sources import Market, SampleCandles, StoredCandles
from tests.factories import import_eurusd

HOUR = timedelta(hours=1)
FIRST = datetime(2024, 1, 1, tzinfo=UTC)
N = 5
TINY = Market("sample", "TINY/USD", "1h")


@pytest.fixture
def tiny(db):
    """Five hourly candles, each opening where the one before closed: (open, high, low, close, volume)."""
    closes = [10.0, 11.0, 13.0, 12.0, 15.0]
    opens = [9.0, *closes[:-1]]
    Candle.objects.bulk_create(
        Candle(
            exchange=TINY.exchange, symbol=TINY.symbol, timeframe=TINY.timeframe, open_time=FIRST + i * HOUR,
            open=o, high=max(o, c) + 0.5, low=min(o, c) - 0.5, close=c, volume=100.0 + i,
        )
        for i, (o, c) in enumerate(zip(opens, closes, strict=True))
    )  # fmt: skip
    return pd.DataFrame(
        {"open": opens, "close": closes, "volume": [100.0 + i for i in range(N)]},
    )


LAST = FIRST + (N - 1) * HOUR  # the last stored candle's open time


def test_up_to_its_last_candle_the_sample_is_its_stored_history(tiny):
    for until in (FIRST + 3 * HOUR, LAST + HOUR, LAST + HOUR + timedelta(minutes=59)):
        expected = StoredCandles().candles(TINY, limit=3, until=until)
        pd.testing.assert_frame_equal(SampleCandles().candles(TINY, limit=3, until=until), expected)


def test_after_its_end_the_sample_plays_its_candles_backwards_then_forwards_one_an_hour(tiny):
    hours = 3 * N + 3
    df = SampleCandles().candles(TINY, limit=100, until=LAST + (1 + hours) * HOUR)

    # One candle an hour, from the first stored one to the last hour closed by `until`.
    assert list(df.index) == [FIRST + i * HOUR for i in range(N + hours)]
    forwards = [(i, 1) for i in range(N)]
    backwards = [(i, -1) for i in reversed(range(N))]
    played = forwards + backwards + forwards + backwards + forwards[:3]
    assert len(played) == len(df)
    for (i, direction), (_, row) in zip(played, df.iterrows(), strict=True):
        opened, closed = tiny.loc[i, "open"], tiny.loc[i, "close"]
        assert (row["open"], row["close"]) == ((opened, closed) if direction == 1 else (closed, opened))
        assert row["volume"] == tiny.loc[i, "volume"]
        assert row["low"] < min(row["open"], row["close"]) and row["high"] > max(row["open"], row["close"])
    # Each candle opens where the one before closed: at the end of the history and at both turns.
    assert (df["open"].iloc[1:].to_numpy() == df["close"].iloc[:-1].to_numpy()).all()


def test_the_sample_serves_the_last_candles_closed_by_the_moment_asked_for(tiny):
    until = LAST + 40 * HOUR + timedelta(minutes=30)
    df = SampleCandles().candles(TINY, limit=3, until=until)
    assert list(df.index) == [LAST + 37 * HOUR, LAST + 38 * HOUR, LAST + 39 * HOUR]
    # The same hours asked for again, on their own or in a longer window, are the same candles.
    longer = SampleCandles().candles(TINY, limit=30, until=LAST + 40 * HOUR)
    pd.testing.assert_frame_equal(longer.iloc[-3:], df)
    # The 39th candle of the loop, which turns every 2N = 10 hours: the 9th of a turn, in its forward half.
    assert (df["open"].iloc[-1], df["close"].iloc[-1]) == (tiny.loc[3, "open"], tiny.loc[3, "close"])


def test_the_sample_exchange_is_read_through_the_loop_and_other_stored_markets_as_stored(tiny):
    assert isinstance(source_for(TINY), SampleCandles)
    other = Market("csvs", "TINY/USD", "1h")
    Candle.objects.create(
        exchange="csvs", symbol="TINY/USD", timeframe="1h", open_time=FIRST, open=1, high=1, low=1, close=1,
        volume=1,
    )  # fmt: skip
    assert type(source_for(other)) is StoredCandles
    assert SampleCandles().candles(Market("sample", "NONE/USD", "1h"), limit=5).empty


def test_the_shipped_hours_loop_without_a_jump_at_their_seams(db):
    import_eurusd()
    market = Market("sample", "EUR/USD", "1h")
    stored = StoredCandles().candles(market, limit=5000, until=datetime(2030, 1, 1, tzinfo=UTC))
    n, last = len(stored), stored.index[-1].to_pydatetime()
    source = SampleCandles()
    # Across the end of the history, the turn at the first candle and the turn at the last one.
    for after in (3, n + 3, 2 * n + 3):
        df = source.candles(market, limit=6, until=last + (after + 1) * HOUR)
        assert list(df.index) == [last + (after - 5 + i) * HOUR for i in range(6)]
        assert df["open"].iloc[3] == df["close"].iloc[2]
    # Now: the hour just closed is a candle of the loop, with its time.
    now = datetime.now(UTC)
    df = source.candles(market, limit=2)
    assert now - 2 * HOUR <= df.index[-1] <= now - HOUR and df.index[-1] - df.index[-2] == HOUR
