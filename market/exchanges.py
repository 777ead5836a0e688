"""What the platform knows about markets. The only module that imports ccxt (lazily: it takes a second)."""

from functools import cache

from .models import Candle

TIMEFRAMES = ("15m", "1h", "4h", "1d")


@cache
def ccxt_exchange_ids() -> frozenset[str]:
    import ccxt

    return frozenset(ccxt.exchanges)


def is_ccxt_exchange(exchange_id: str) -> bool:
    return exchange_id in ccxt_exchange_ids()


def has_stored_candles(exchange: str, symbol: str | None, timeframe: str | None) -> bool:
    """Whether candles are stored for this market, e.g. the shipped sample market."""
    return Candle.objects.filter(exchange=exchange, symbol=symbol, timeframe=timeframe).exists()
