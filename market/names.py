"""How an exchange and a symbol are written when stored, compared or looked up: the one place that says it.

An exchange is a ccxt id (lower case, `binance`) or the name of a stored market (`sample`); a symbol is the
exchange's BASE/QUOTE in capitals (`BTC/USDT`). Every command, form, API field and filter that takes one
passes it through here, so `Sample` and `eur/usd` typed anywhere find what `sample EUR/USD` stored."""


def normalise_exchange(exchange: str) -> str:
    return exchange.strip().lower()


def normalise_symbol(symbol: str) -> str:
    return symbol.strip().upper()


def normalise_market(exchange: str, symbol: str) -> tuple[str, str]:
    """(exchange, symbol) as stored."""
    return normalise_exchange(exchange), normalise_symbol(symbol)
