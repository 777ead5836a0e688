"""What the platform knows about markets. The only module that imports ccxt (lazily: it takes a second)."""

from datetime import timedelta
from functools import cache

from .models import Candle

TIMEFRAMES = ("15m", "1h", "4h", "1d")
TIMEFRAME_PERIODS = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "1d": timedelta(days=1),
}


@cache
def ccxt_exchange_ids() -> frozenset[str]:
    import ccxt

    return frozenset(ccxt.exchanges)


def is_ccxt_exchange(exchange_id: str) -> bool:
    return exchange_id in ccxt_exchange_ids()


def has_stored_candles(exchange: str, symbol: str | None, timeframe: str | None) -> bool:
    """Whether candles are stored for this market, e.g. the shipped sample market."""
    return Candle.objects.filter(exchange=exchange, symbol=symbol, timeframe=timeframe).exists()
