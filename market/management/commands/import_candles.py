from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from market.importers import CandleFileError, parse_csv, store_bars
from market.timeframes import TIMEFRAMES


class Command(BaseCommand):
    help = "Load OHLCV candles from a CSV file (header: time, open, high, low, close, volume). Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--exchange", required=True)
        parser.add_argument("--symbol", required=True)
        parser.add_argument("--timeframe", required=True, choices=TIMEFRAMES)

    def handle(self, *args, file: Path, exchange: str, symbol: str, timeframe: str, **options):
        try:
            # UTF-8 whatever the locale, so that a file imports the same on every machine.
            bars = list(parse_csv(file.read_text(encoding="utf-8")))
        except OSError as e:
            raise CommandError(f"cannot read {file}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise CommandError(f"{file}: not UTF-8 text (byte {e.start}: {e.reason})") from None
        except CandleFileError as e:
            raise CommandError(f"{file}: {e}") from None
        count = store_bars(exchange.lower(), symbol.upper(), timeframe, bars)
        self.stdout.write(self.style.SUCCESS(f"Stored {count} candles for {exchange} {symbol} {timeframe}."))
