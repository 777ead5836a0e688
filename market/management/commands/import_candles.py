from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from market.importers import CandleFileError, parse_csv_lines
from market.names import normalise_market
from market.splits import find_splits, store_with_splits
from market.timeframes import TIMEFRAMES


class Command(BaseCommand):
    help = (
        "Load OHLCV candles from a CSV file (header: time, open, high, low, close, volume). Idempotent. "
        "A file with a stock split in it (an overnight move of a split's ratio that holds) is refused unless "
        "told to back-adjust it (--adjust-splits) or to take the move as real (--no-split-check)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--exchange", required=True)
        parser.add_argument("--symbol", required=True)
        parser.add_argument("--timeframe", required=True, choices=TIMEFRAMES)
        found = parser.add_mutually_exclusive_group()
        found.add_argument(
            "--adjust-splits",
            action="store_true",
            help="divide the prices before each split found by its ratio and multiply the volumes by it, and "
            "record the splits with the market",
        )
        found.add_argument(
            "--no-split-check",
            action="store_true",
            help="store the prices as they are: the moves that look like splits are real",
        )

    def handle(self, *args, file: Path, exchange: str, symbol: str, timeframe: str, **options):
        exchange, symbol = normalise_market(exchange, symbol)
        try:
            # UTF-8 whatever the locale, so that a file imports the same on every machine.
            lines = list(parse_csv_lines(file.read_text(encoding="utf-8")))
        except OSError as e:
            raise CommandError(f"cannot read {file}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise CommandError(f"{file}: not UTF-8 text (byte {e.start}: {e.reason})") from None
        except CandleFileError as e:
            raise CommandError(f"{file}: {e}") from None
        bars = [bar for _, bar in lines]
        splits = find_splits(lines)
        adjusting = options["adjust_splits"]
        if splits and not (adjusting or options["no_split_check"]):
            raise CommandError(
                f"{file}: {'; '.join(map(str, splits))}; import with --adjust-splits to back-adjust, or with "
                "--no-split-check if the move is a real one"
            )
        count, older = store_with_splits(exchange, symbol, timeframe, bars, splits, adjusting=adjusting)
        done = (
            f", adjusted for {len(splits)} split(s): {'; '.join(map(str, splits))}"
            if adjusting and splits
            else ""
        )
        if older:
            done += f"; the {older} candles stored before the file rescaled to match"
        self.stdout.write(
            self.style.SUCCESS(f"Stored {count} candles for {exchange} {symbol} {timeframe}{done}.")
        )
