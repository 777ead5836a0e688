"""CcxtCandles and fetch_candles with the real ccxt client, over real HTTP, against a Binance stand-in."""

import io
import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from market.errors import MarketDataError, TemporaryMarketDataError, UnknownMarketError
from market.exchanges import CcxtCandles
from market.management.commands.fetch_candles import Command as FetchCandles
from market.models import Candle
from market.sources import COLUMNS, Market
from tests.stand_ins.exchange_server import (
    EXCHANGE_INFO,
    INVALID_SYMBOL,
    KLINES,
    LISTINGS,
    RATE_LIMITED,
    UNAVAILABLE,
    kline,
)

BTC_1H = Market("binance", "BTC/USDT", "1h")
HOUR = timedelta(hours=1)
HOUR_MS = 3_600_000
PROJECT = Path(__file__).resolve().parents[2]


def hours(start: datetime, count: int) -> list[datetime]:
    return [start + i * HOUR for i in range(count)]


def test_candles_are_the_last_closed_ones_as_a_frame(binance):
    # At 12:30 the 12:00 candle is still open: the last closed one opened at 11:00.
    df = binance.candles(BTC_1H, limit=24, until=datetime(2025, 3, 10, 12, 30, tzinfo=UTC))

    assert list(df.index) == hours(datetime(2025, 3, 9, 12, tzinfo=UTC), 24)
    assert df.index.name == "time"
    assert str(df.index.tz) == "UTC"
    assert list(df.columns) == COLUMNS
    assert all(dtype == "float64" for dtype in df.dtypes)
    last_served = kline(LISTINGS[0], int(df.index[-1].timestamp() * 1000), HOUR_MS)
    assert df.iloc[-1].tolist() == [float(value) for value in last_served[1:6]]


def test_candles_leave_out_the_candle_still_open_now(binance):
    this_hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    since_ms = int((this_hour - 3 * HOUR).timestamp() * 1000)
    served = binance.client.fetch_ohlcv("BTC/USDT", "1h", since=since_ms)
    assert served[-1][0] == int(this_hour.timestamp() * 1000), "the exchange serves the open candle"

    df = binance.candles(BTC_1H, limit=3)

    assert list(df.index) == hours(this_hour - 3 * HOUR, 3)


def test_history_pages_through_every_candle_once_in_order(binance, exchange_stand_in):
    since, until = datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 6, 1, tzinfo=UTC)

    bars = binance.history(BTC_1H, since, until)

    assert [bar.open_time for bar in bars] == hours(since, 2880)
    pages = exchange_stand_in.requests_to(KLINES)
    assert len(pages) == 3  # Binance serves at most 1000 candles a request
    assert [int(page.params["startTime"]) for page in pages] == [
        int((since + n * HOUR).timestamp() * 1000) for n in (0, 1000, 2000)
    ]


def test_markets_are_loaded_once_per_source(binance, exchange_stand_in):
    until = datetime(2025, 3, 10, tzinfo=UTC)
    binance.candles(BTC_1H, limit=5, until=until)
    binance.candles(Market("binance", "ETH/USDT", "4h"), limit=5, until=until)

    assert len(exchange_stand_in.requests_to(EXCHANGE_INFO)) == 1
    assert len(exchange_stand_in.requests_to(KLINES)) == 2


def test_fetch_candles_stores_them_and_a_second_run_adds_nothing(db, exchange_stand_in):
    args = ["--exchange", "Binance", "--symbol", "btc/usdt", "--timeframe", "1h"]
    span = ["--since", "2025-03-01", "--until", "2025-04-20T00:00:00Z"]
    out = io.StringIO()

    call_command("fetch_candles", *args, *span, stdout=out)
    call_command("fetch_candles", *args, *span, stdout=out)

    stored = Candle.objects.filter(exchange="binance", symbol="BTC/USDT", timeframe="1h")
    assert list(stored.values_list("open_time", flat=True)) == hours(datetime(2025, 3, 1, tzinfo=UTC), 1200)
    assert out.getvalue().count("Stored 1200 candles for binance BTC/USDT 1h") == 2
    assert len(exchange_stand_in.requests_to(KLINES)) == 4  # two pages a run


def test_an_unknown_symbol_is_an_unknown_market_and_costs_no_candle_request(binance, exchange_stand_in):
    with pytest.raises(UnknownMarketError, match=r"binance has no market 'BTC/USD'; did you mean BTC/USDT"):
        binance.candles(Market("binance", "BTC/USD", "1h"), limit=5)
    assert exchange_stand_in.requests_to(KLINES) == []


def test_a_symbol_the_exchange_rejects_is_an_unknown_market(binance, exchange_stand_in):
    binance.candles(BTC_1H, limit=1, until=datetime(2025, 3, 10, tzinfo=UTC))  # markets loaded
    exchange_stand_in.delist("BTCUSDT")

    with pytest.raises(UnknownMarketError, match="Invalid symbol") as raised:
        binance.candles(BTC_1H, limit=1, until=datetime(2025, 3, 10, tzinfo=UTC))
    assert type(raised.value.__cause__).__name__ == "BadSymbol"


def test_an_unknown_exchange_id_is_an_unknown_market():
    with pytest.raises(UnknownMarketError, match="'nosuchexchange' is not an exchange id ccxt knows"):
        CcxtCandles("nosuchexchange")


@pytest.mark.parametrize(
    ("path", "status", "body", "error"),
    [
        (KLINES, 429, RATE_LIMITED, TemporaryMarketDataError),
        (KLINES, 503, UNAVAILABLE, TemporaryMarketDataError),
        (EXCHANGE_INFO, 503, UNAVAILABLE, TemporaryMarketDataError),
        (
            KLINES,
            400,
            {"code": -1100, "msg": "Illegal characters found in parameter 'symbol'."},
            MarketDataError,
        ),
        (KLINES, 400, INVALID_SYMBOL, UnknownMarketError),
    ],
)
def test_exchange_failures_become_market_data_errors(binance, exchange_stand_in, path, status, body, error):
    exchange_stand_in.fail_next(path, status, body)

    with pytest.raises(MarketDataError) as raised:
        binance.candles(BTC_1H, limit=5)
    assert type(raised.value) is error
    assert type(raised.value.__cause__).__module__.startswith("ccxt.")
    assert "\n" not in str(raised.value)

    # Nothing sticks: the same source works once the exchange answers again.
    assert len(binance.candles(BTC_1H, limit=5)) == 5


def test_a_slow_exchange_times_out_as_a_temporary_error(binance, exchange_stand_in):
    exchange_stand_in.stall_next(KLINES, seconds=5)
    started = time.monotonic()

    with pytest.raises(TemporaryMarketDataError, match="RequestTimeout"):
        binance.candles(BTC_1H, limit=5)
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("script", "symbol", "message"),
    [
        ((KLINES, 429, RATE_LIMITED), "BTC/USDT", "CommandError: binance, try again later: DDoSProtection: "),
        (None, "DOGE/EUR", "CommandError: binance has no market 'DOGE/EUR'"),
    ],
)
def test_the_command_reports_errors_on_one_line_without_traceback(
    exchange_stand_in, capsys, script, symbol, message
):
    if script:
        exchange_stand_in.fail_next(*script)
    argv = ["manage.py", "fetch_candles", "--exchange", "binance", "--symbol", symbol, "--timeframe", "1h"]

    with pytest.raises(SystemExit) as exited:
        FetchCandles().run_from_argv([*argv, "--since", "2025-03-01"])

    assert exited.value.code == 1
    stderr = capsys.readouterr().err
    assert stderr.startswith(message)
    assert stderr.count("\n") == 1
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("span", "message"),
    [
        (["--since", "yesterday"], "'yesterday' is not an ISO time such as 2018-01-15"),
        (
            ["--since", "2025-03-02", "--until", "2025-03-01"],
            "--until 2025-03-01T00:00:00+00:00 is not after",
        ),
    ],
)
def test_the_command_rejects_a_bad_time_span(exchange_stand_in, span, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command(
            "fetch_candles", "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1h", *span
        )
    assert exchange_stand_in.requests == []


def test_no_module_but_market_exchanges_imports_ccxt():
    importers = set()
    for folder, subfolders, files in os.walk(PROJECT):
        # Dependencies, the tests and hidden folders are not the project's modules.
        subfolders[:] = [name for name in subfolders if name not in {".venv", "tests"} and name[0] != "."]
        for name in files:
            path = Path(folder, name)
            if name.endswith(".py") and re.search(
                r"^\s*(import|from)\s+ccxt\b", path.read_text(), re.MULTILINE
            ):
                importers.add(path.relative_to(PROJECT).as_posix())
    assert importers == {"market/exchanges.py"}
