"""Loading candles from CSV files into the shared Candle table, idempotently."""

import csv
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import transaction

from .models import Candle

COLUMNS = ("time", "open", "high", "low", "close", "volume")
# Names seen in the wild for the time column; an unnamed first column (pandas' index) also counts.
TIME_ALIASES = {"time", "timestamp", "date", "datetime", "open_time", ""}
BATCH = 1000


class CandleFileError(ValueError):
    """The CSV cannot be read as candles; the message names the line and the reason."""


@dataclass(frozen=True)
class Bar:
    open_time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


def _parse_time(raw: str) -> datetime:
    raw = raw.strip()
    if raw.replace(".", "", 1).isdigit():
        value = float(raw)
        # Epoch seconds or milliseconds (ccxt's unit); anything past year 5000 in seconds is ms.
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        # Past the platform's time_t: an OverflowError, or on Linux an OSError ("Value too large ...").
        except (OverflowError, OSError):
            raise ValueError(f"epoch time {raw} is out of range") from None
    parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    # In UTC here, so that a time with no UTC equivalent (year 1 at +01:00) is refused with its line rather
    # than failing in the database.
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_number(name: str, raw: str) -> float:
    value = float(raw)
    # float() reads "nan" and "inf" and overflows "1e999" to inf: none is a price, and SQLite stores NaN as
    # NULL, which the database refuses.
    if not math.isfinite(value):
        raise ValueError(f"{name} {raw.strip()!r} is not a finite number")
    return value


def _inconsistency(bar: Bar) -> str | None:
    """What makes the bar no candle: a high below its low, a price not above zero (low is the least of
    them), an open or close outside the range, a negative volume."""
    if bar.high < bar.low:
        return f"high {bar.high} is below low {bar.low}"
    if bar.low <= 0:
        return f"low {bar.low} is not a price above zero"
    for name in ("open", "close"):
        value = getattr(bar, name)
        if not bar.low <= value <= bar.high:
            return f"{name} {value} is outside the range from low {bar.low} to high {bar.high}"
    if bar.volume < 0:
        return f"volume {bar.volume} is negative"
    return None


def _records(reader) -> Iterator[list[str]]:
    """The reader's rows, with the csv module's own errors (a stray carriage return, a field over its size
    limit) as the file's error at the line they were met."""
    try:
        yield from reader
    except csv.Error as e:
        raise CandleFileError(f"line {reader.line_num}: {e}") from None


def parse_csv(text: str) -> Iterator[Bar]:
    """The file's bars, in its order: times in UTC and each once, numbers finite, prices above zero with
    the open and close between the low and the high, volumes not negative. A BOM (Excel's "CSV UTF-8") is
    ignored; anything else wrong is a CandleFileError."""
    for _, bar in parse_csv_lines(text):
        yield bar


def parse_csv_lines(text: str) -> Iterator[tuple[int, Bar]]:
    """parse_csv's bars, each with the line of the file it was read from."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    records = _records(reader)
    try:
        header = [h.strip().lower() for h in next(records)]
    except StopIteration:
        raise CandleFileError("the file is empty") from None
    positions = {}
    for name in COLUMNS:
        aliases = TIME_ALIASES if name == "time" else {name}
        found = [i for i, h in enumerate(header) if h in aliases]
        if not found:
            raise CandleFileError(f"line 1: no '{name}' column in the header {header}")
        positions[name] = found[0]
    first_seen: dict[datetime, int] = {}
    last_read = max(positions.values())
    for line_no, row in enumerate(records, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= last_read:
            raise CandleFileError(f"line {line_no}: only {len(row)} cells, the header has {len(header)}")
        try:
            values = {name: row[i] for name, i in positions.items()}
            bar = Bar(
                open_time=_parse_time(values["time"]),
                **{k: _parse_number(k, values[k]) for k in ("open", "high", "low", "close", "volume")},
            )
        except (ValueError, OverflowError) as e:
            raise CandleFileError(f"line {line_no}: {e}") from None
        if problem := _inconsistency(bar):
            raise CandleFileError(f"line {line_no}: {problem}")
        if bar.open_time in first_seen:
            raise CandleFileError(
                f"line {line_no}: time {bar.open_time.isoformat()} repeats line {first_seen[bar.open_time]}"
            )
        first_seen[bar.open_time] = line_no
        yield line_no, bar


@transaction.atomic
def store_bars(exchange: str, symbol: str, timeframe: str, bars: Iterable[Bar]) -> int:
    """Insert or update bars; importing the same file twice leaves one row per candle. Returns the count."""
    count = 0
    batch: list[Candle] = []

    def flush():
        Candle.objects.bulk_create(
            batch,
            update_conflicts=True,
            unique_fields=["exchange", "symbol", "timeframe", "open_time"],
            update_fields=["open", "high", "low", "close", "volume"],
        )
        batch.clear()

    for bar in bars:
        batch.append(Candle(exchange=exchange, symbol=symbol, timeframe=timeframe, **bar.__dict__))
        count += 1
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    return count
