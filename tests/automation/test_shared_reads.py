"""What the cycles of one market read alike is read once per process and kept a minute
(automation/shared_reads.py): the same values as reading them again, each cycle its own copy of the
candles, and never an absence kept (a candle not stored yet, a market without stored candles)."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from automation import shared_reads
from market.exchanges import source_for
from market.indicators import indicators_for
from market.sources import Market, SampleCandles
from tests.factories import import_eurusd

SAMPLE = Market("sample", "EUR/USD", "1h")
UNTIL = datetime(2018, 1, 15, 12, tzinfo=UTC)


@pytest.fixture
def stored(db):
    import_eurusd()


def test_a_stored_markets_candles_next_open_and_indicators_are_read_once(stored):
    source = shared_reads.source_of(SAMPLE)
    assert isinstance(source.source, SampleCandles)
    with CaptureQueriesContext(connection) as first:
        candles = source.candles(SAMPLE, limit=300, until=UNTIL)
        opened = source.open_at(SAMPLE, UNTIL)
        indicators = shared_reads.indicators_of(SAMPLE, candles)
    with CaptureQueriesContext(connection) as again:
        other = shared_reads.source_of(SAMPLE)
        same = other.candles(SAMPLE, limit=300, until=UNTIL)
        assert other.open_at(SAMPLE, UNTIL) == opened == source_for(SAMPLE).open_at(SAMPLE, UNTIL)
        assert shared_reads.indicators_of(SAMPLE, same) == indicators
    assert len(first) > 0 and len(again) == 2  # only source_for's own two, above
    assert same.equals(candles) and same.equals(source_for(SAMPLE).candles(SAMPLE, limit=300, until=UNTIL))
    assert indicators == indicators_for(SAMPLE, candles)
    same.iloc[-1, 0] = -1.0  # a cycle's copy is its own
    assert source.candles(SAMPLE, limit=300, until=UNTIL).equals(candles)


def test_what_is_not_stored_yet_is_read_again(stored):
    exchange = Market("binance", "BTC/USDT", "1h")  # no candles stored: ccxt's, a client for each cycle
    assert shared_reads.source_of(exchange) is not shared_reads.source_of(exchange)
    later = datetime(2031, 1, 1, tzinfo=UTC)  # no candle stored after it
    source = shared_reads.source_of(SAMPLE)
    assert source.open_at(SAMPLE, later) is None
    with CaptureQueriesContext(connection) as queries:
        assert source.open_at(SAMPLE, later) is None
    assert len(queries) == 1
