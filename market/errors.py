"""Market-data errors. As in freqtrade: "try again later" is separate from "needs a human"."""


class MarketDataError(Exception):
    """Needs a human: the market does not exist, the symbol is wrong, the request is invalid."""


class TemporaryMarketDataError(MarketDataError):
    """Try again later: network failure, timeout, rate limit, exchange unavailable."""


class UnknownMarketError(MarketDataError):
    """The exchange or the symbol is not one the source knows."""


class NotEnoughCandlesError(MarketDataError):
    """Fewer candles are available than the analysis needs."""


class ExchangeAuthError(MarketDataError):
    """The exchange refused the account's keys: wrong, revoked, or without the permission for the call."""


class OrderRejectedError(MarketDataError):
    """The exchange refused the order: invalid for the market, or not enough funds."""


class OrderNotFoundError(MarketDataError):
    """The exchange has no order with the id asked for: for a client order id, it was never placed."""
