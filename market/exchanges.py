"""What the platform knows about markets. The only module that imports ccxt (lazily: it takes a second)."""

from functools import cache

TIMEFRAMES = ("15m", "1h", "4h", "1d")
TIMEFRAME_SECONDS = {"15m": 15 * 60, "1h": 3600, "4h": 4 * 3600, "1d": 86400}


@cache
def ccxt_exchange_ids() -> frozenset[str]:
    import ccxt

    return frozenset(ccxt.exchanges)


def is_ccxt_exchange(exchange_id: str) -> bool:
    return exchange_id in ccxt_exchange_ids()


def has_stored_candles(exchange: str, symbol: str | None, timeframe: str | None) -> bool:
    """Whether candles are stored for this market, e.g. the shipped sample market."""
    from .models import Candle

    return Candle.objects.filter(exchange=exchange, symbol=symbol, timeframe=timeframe).exists()
