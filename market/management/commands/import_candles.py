from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from market.costs import check_pct
from market.importers import CandleFileError, parse_csv_lines
from market.models import StoredMarket
from market.names import normalise_market
from market.splits import find_splits, store_with_splits
from market.timeframes import TIMEFRAMES


class Command(BaseCommand):
    help = (
        "Load OHLCV candles from a CSV file (header: time, open, high, low, close, volume). Idempotent. "
        "A file with a stock split in it (an overnight move of a split's ratio that holds) is refused unless "
        "told to back-adjust it (--adjust-splits) or to take the move as real (--no-split-check). "
        "--fee-pct, --spread and --asset-class record what trading the market costs (docs/learning.md)."
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
        parser.add_argument("--fee-pct", help="taker fee, %% of each fill's value (0.1 is 0.1 %%)")
        parser.add_argument(
            "--spread", help="bid-ask spread, %% of the price (a market order pays half of it)"
        )
        parser.add_argument(
            "--asset-class",
            choices=StoredMarket.AssetClass.values,
            help="what the market is, for the default costs of the figures not given",
        )

    def handle(self, *args, file: Path, exchange: str, symbol: str, timeframe: str, **options):
        exchange, symbol = normalise_market(exchange, symbol)
        fee_pct = cost_pct("--fee-pct", options["fee_pct"])
        spread_pct = cost_pct("--spread", options["spread"])
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
        recorded = record_costs(exchange, symbol, fee_pct, spread_pct, options["asset_class"])
        done = (
            f", adjusted for {len(splits)} split(s): {'; '.join(map(str, splits))}"
            if adjusting and splits
            else ""
        )
        if older:
            done += f"; the {older} candles stored before the file rescaled to match"
        if recorded:
            done += f"; costs recorded: {recorded}"
        self.stdout.write(
            self.style.SUCCESS(f"Stored {count} candles for {exchange} {symbol} {timeframe}{done}.")
        )


def cost_pct(flag: str, value) -> Decimal | None:
    """The flag's value as a cost in %, or None when not given; a CommandError with the reason when it is no
    cost (market.costs.check_pct), before anything is stored."""
    if value is None:
        return None
    try:
        return check_pct(flag, Decimal(str(value).strip()))
    except InvalidOperation:
        raise CommandError(f"{flag} must be a number in %, not '{value}'") from None
    except ValueError as e:
        raise CommandError(str(e)) from None


def record_costs(exchange: str, symbol: str, fee_pct, spread_pct, asset_class) -> str:
    """The costs given, recorded with the market (the others it has are kept); what was recorded, in words."""
    given = {"fee_pct": fee_pct, "spread_pct": spread_pct, "asset_class": asset_class}
    given = {name: value for name, value in given.items() if value is not None}
    if not given:
        return ""
    StoredMarket.objects.update_or_create(exchange=exchange, symbol=symbol, defaults=given)
    return ", ".join(
        [
            *([f"fee {fee_pct} %"] if fee_pct is not None else []),
            *([f"spread {spread_pct} %"] if spread_pct is not None else []),
            *([f"asset class {asset_class}"] if asset_class else []),
        ]
    )
