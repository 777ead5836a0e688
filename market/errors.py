"""Market-data errors. As in freqtrade: "try again later" is separate from "needs a human"."""


class MarketDataError(Exception):
    """Needs a human: the market does not exist, the symbol is wrong, the request is invalid."""


class TemporaryMarketDataError(MarketDataError):
    """Try again later: network failure, timeout, rate limit, exchange unavailable."""


class UnknownMarketError(MarketDataError):
    """The exchange or the symbol is not one the source knows."""


class NotEnoughCandlesError(MarketDataError):
    """Fewer candles are available than the analysis needs."""
