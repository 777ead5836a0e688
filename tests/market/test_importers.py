from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from market.importers import CandleFileError, parse_csv
from market.models import Candle

HEADER = "time,open,high,low,close,volume\n"


def test_parses_pandas_style_iso_times_and_any_header_case():
    [bar] = parse_csv(",Open,High,Low,Close,Volume\n2017-04-19 09:00:00,1.0716,1.0722,1.07083,1.07219,1413\n")
    assert bar.open_time == datetime(2017, 4, 19, 9, tzinfo=UTC)
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (1.0716, 1.0722, 1.07083, 1.07219, 1413)


def test_a_byte_order_mark_is_not_part_of_the_header():
    # Excel's "CSV UTF-8" starts with one; it used to make the first column "\ufefftime", not found.
    [bar] = parse_csv("\ufeffDate,Open,High,Low,Close,Volume\n2024-01-01,1,2,0.5,1.5,10\n")
    assert bar.open_time == datetime(2024, 1, 1, tzinfo=UTC)


def test_times_with_an_offset_are_read_in_utc():
    [bar] = parse_csv(f"{HEADER}2024-01-01T02:00:00+02:00,1,2,0.5,1.5,10\n")
    assert bar.open_time.utcoffset().total_seconds() == 0
    assert bar.open_time == datetime(2024, 1, 1, tzinfo=UTC)


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
        # Found by tests/market/test_importers_properties.py: each was another exception, or a row the
        # database then refused.
        (f"{HEADER}2024-01-01,nan,2,0.5,1,1\n", "line 2: open 'nan' is not a finite number"),
        (f"{HEADER}2024-01-01,1,1e999,0.5,1,1\n", "line 2: high '1e999' is not a finite number"),
        (
            f"{HEADER}99999999999999999999,1,2,0.5,1,1\n",
            "line 2: epoch time 99999999999999999999 is out of range",
        ),
        (f"{HEADER}0001-01-01T00:00:00+01:00,1,2,0.5,1,1\n", "line 2: date value out of range"),
        (f"{HEADER}2024-01-01,1,2\n", "line 2: only 3 cells, the header has 6"),
        (f'{HEADER}"{"9" * 200_000}",1,2,0.5,1,1\n', "line 2: field larger than field limit"),
        (
            f"{HEADER}2024-01-01,1,2,0.5,1,1\n2024-01-02,1,2,0.5,1,1\r2024-01-03\n",
            "line 3: new-line character",
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


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # Not UTF-8: was a UnicodeDecodeError out of the command.
        (
            "Date,Open,High,Low,Close,Volume\n2024-01-01,1,2,0.5,1.5,10 \u20ac\n".encode("cp1252"),
            "not UTF-8 text",
        ),
        # NaN: was an IntegrityError from SQLite, which stores NaN as NULL.
        (
            b"Date,Open,High,Low,Close,Volume\n2024-01-01,1,2,0.5,1.5,10\n2024-01-02,NaN,2,0.5,1.5,10\n",
            "line 3",
        ),
    ],
)
def test_import_command_refuses_a_file_it_cannot_store_with_a_command_error(db, tmp_path, content, message):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    with pytest.raises(CommandError, match=message):
        call_command("import_candles", str(bad), "--exchange", "x", "--symbol", "A/B", "--timeframe", "1h")
    assert not Candle.objects.exists()
