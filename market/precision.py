"""How many decimals a market's prices and amounts are written with on the pages.

A price is written to the decimals the market's own prices are quoted in: the most any of its latest stored
candles has (candles are stored for every market a bot trades, `market.sources`), 1.07219 for EUR/USD,
64250.5 for BTC/USDT. An amount is written to a hundredth of the quote currency's worth: finer digits of
2041.824448720000 EUR move the trade's value by less than a cent. A market with no stored candles yet gets
six significant digits."""

import math
from decimal import Decimal

from .models import Candle

SAMPLE_CANDLES = 50  # the latest candles whose decimals are counted
MAX_DECIMALS = 8
SIGNIFICANT = 6
_known: dict[tuple[str, str], int] = {}  # per process; a market's quoting does not change


def price_decimals(exchange: str, symbol: str) -> int | None:
    """The decimals of the market's quoted prices, or None while none of its candles is stored."""
    key = (exchange, symbol)
    if key not in _known:
        closes = Candle.objects.filter(exchange=exchange, symbol=symbol).order_by("-open_time")
        closes = list(closes.values_list("close", flat=True)[:SAMPLE_CANDLES])
        if not closes:
            return None  # not remembered: the first candles may be stored any minute
        _known[key] = min(MAX_DECIMALS, max(_decimals(repr(close)) for close in closes))
    return _known[key]


def _decimals(text: str) -> int:
    exponent = Decimal(text).normalize().as_tuple().exponent
    return max(0, -exponent)


def _significant(value: Decimal) -> int:
    if not value:
        return 2
    return min(MAX_DECIMALS, max(0, SIGNIFICANT - 1 - math.floor(math.log10(abs(value)))))


def format_price(value, exchange: str, symbol: str) -> str:
    value = Decimal(str(value))
    decimals = price_decimals(exchange, symbol)
    return _fixed(value, _significant(value) if decimals is None else decimals)


def format_amount(value, price) -> str:
    """`value` units at `price` each, to the decimal that is worth a hundredth of the quote currency."""
    value, price = Decimal(str(value)), abs(Decimal(str(price or 0)))
    if not price:
        return _fixed(value, _significant(value))
    decimals = max(0, math.ceil(math.log10(price * 100)))
    return _fixed(value, min(MAX_DECIMALS, decimals))


def _fixed(value: Decimal, decimals: int) -> str:
    return f"{value:,.{decimals}f}"
