from django.core.management.base import BaseCommand, CommandError

from core.cli import iso_time
from market.errors import MarketDataError
from market.exchanges import CcxtCandles
from market.importers import store_bars
from market.names import normalise_market
from market.sources import Market
from market.timeframes import TIMEFRAMES


class Command(BaseCommand):
    help = (
        "Fetch closed OHLCV candles from an exchange through ccxt and store them in the Candle table. "
        "Idempotent: candles already stored are updated, not repeated."
    )

    def add_arguments(self, parser):
        parser.add_argument("--exchange", required=True, help="a ccxt exchange id, e.g. binance")
        parser.add_argument("--symbol", required=True, help="e.g. BTC/USDT")
        parser.add_argument("--timeframe", required=True, choices=TIMEFRAMES)
        parser.add_argument("--since", required=True, type=iso_time, help="first candle's open time (UTC)")
        parser.add_argument("--until", type=iso_time, help="store candles closed by then (default: now)")

    def handle(self, *args, exchange, symbol, timeframe, since, until, **options):
        if until and until <= since:
            raise CommandError(f"--until {until.isoformat()} is not after --since {since.isoformat()}")
        market = Market(*normalise_market(exchange, symbol), timeframe)
        try:
            bars = CcxtCandles(market.exchange).history(market, since, until)
        except MarketDataError as e:
            # The message says whether to try again later (TemporaryMarketDataError) or fix the request.
            raise CommandError(str(e)) from None
        count = store_bars(market.exchange, market.symbol, market.timeframe, bars)
        span = (
            f" from {bars[0].open_time:%Y-%m-%d %H:%M} to {bars[-1].open_time:%Y-%m-%d %H:%M} UTC"
            if bars
            else ""
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Stored {count} candles for {market.exchange} {market.symbol} {timeframe}{span}."
            )
        )
