"""Loading candles from CSV files into the shared Candle table, idempotently."""

import csv
import io
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
        return datetime.fromtimestamp(seconds, tz=UTC)
    parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_csv(text: str) -> Iterator[Bar]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
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
    for line_no, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            values = {name: row[i] for name, i in positions.items()}
            bar = Bar(
                open_time=_parse_time(values["time"]),
                **{k: float(values[k]) for k in ("open", "high", "low", "close", "volume")},
            )
        except (IndexError, ValueError, OverflowError) as e:
            raise CandleFileError(f"line {line_no}: {e}") from None
        if bar.high < bar.low:
            raise CandleFileError(f"line {line_no}: high {bar.high} is below low {bar.low}")
        if bar.open_time in first_seen:
            raise CandleFileError(
                f"line {line_no}: time {bar.open_time.isoformat()} repeats line {first_seen[bar.open_time]}"
            )
        first_seen[bar.open_time] = line_no
        yield bar


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
