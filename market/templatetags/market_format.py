"""Prices, amounts and timeframes as the pages write them (market.precision, market.timeframes)."""

from django import template

from market.precision import format_amount, format_price
from market.timeframes import timeframe_name

register = template.Library()


def _market_of(obj) -> tuple[str, str]:
    # A trade or an analysis names its symbol, and its exchange through its bot; a bot names both.
    exchange = getattr(obj, "exchange", None) or getattr(getattr(obj, "bot", None), "exchange", "")
    return exchange, obj.symbol


@register.filter
def price(value, obj):
    """`{{ trade.price|price:trade }}`: the price at the precision of the market of `obj`."""
    if value is None or value == "":
        return "—"
    return format_price(value, *_market_of(obj))


@register.filter
def amount(value, price):
    """`{{ trade.amount|amount:trade.price }}`: to the hundredth of the quote currency's worth."""
    if value is None or value == "":
        return "—"
    return format_amount(value, price)


@register.filter
def timeframe(value):
    """`{{ bot.timeframe|timeframe }}`: "1 hour" for "1h"."""
    return timeframe_name(value)
