from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from market.importers import CandleFileError, parse_csv
from market.models import Candle


def test_parses_pandas_style_iso_times_and_any_header_case():
    [bar] = parse_csv(",Open,High,Low,Close,Volume\n2017-04-19 09:00:00,1.0716,1.0722,1.07083,1.07219,1413\n")
    assert bar.open_time == datetime(2017, 4, 19, 9, tzinfo=UTC)
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (1.0716, 1.0722, 1.07083, 1.07219, 1413)


def test_parses_epoch_seconds_and_milliseconds():
    text = "timestamp,open,high,low,close,volume\n1700000000,1,2,0.5,1.5,10\n1700003600000,1,2,0.5,1.5,10\n"
    first, second = parse_csv(text)
    assert first.open_time == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert (second.open_time - first.open_time).total_seconds() == 3600


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("time,open,high,low,close\n", "no 'volume' column"),
        ("time,open,high,low,close,volume\nnot-a-date,1,2,0.5,1,1\n", "line 2"),
        ("time,open,high,low,close,volume\n2024-01-01,1,2,0.5,x,1\n", "line 2"),
        (
            "time,open,high,low,close,volume\n2024-01-01,1,2,0.5,1,1\n2024-01-02,1,0.4,0.5,1,1\n",
            "line 3: high",
        ),
        (
            "time,open,high,low,close,volume\n2024-01-01,1,2,0.5,1,1\n2024-01-02,1,2,0.5,1,1\n2024-01-01,1,2,0.5,1,1\n",
            r"line 4: time 2024-01-01T00:00:00\+00:00 repeats line 2",
        ),
    ],
)
def test_bad_files_name_the_line_and_the_reason(text, message):
    with pytest.raises(CandleFileError, match=message):
        list(parse_csv(text))


def test_import_command_is_idempotent_and_writes_nothing_from_a_bad_file(db, tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("Date,Open,High,Low,Close,Volume\n2024-01-01,1,2,0.5,1.5,10\n2024-01-02,1.5,2,1,1.8,12\n")
    args = ["--exchange", "Binance", "--symbol", "btc/usdt", "--timeframe", "1d"]
    call_command("import_candles", str(good), *args, stdout=open("/dev/null", "w"))  # noqa: SIM115
    call_command("import_candles", str(good), *args, stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert Candle.objects.filter(exchange="binance", symbol="BTC/USDT", timeframe="1d").count() == 2

    bad = tmp_path / "bad.csv"
    bad.write_text("Date,Open,High,Low,Close,Volume\n2024-01-03,1,2,0.5,1.5,10\n2024-01-04,1,2,0.5,oops,10\n")
    with pytest.raises(CommandError, match="line 3"):
        call_command("import_candles", str(bad), *args)
    assert Candle.objects.count() == 2
