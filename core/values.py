"""The values the apps share, defined once: what an analysis recommends, how it reads the market, the side
of a trade, how it ended and the market's regime. The stored values are these strings (the models'
choices), so the database and the API read them as before."""

from django.db import models


class Outcome(models.TextChoices):
    WIN = "WIN", "Win"
    LOSS = "LOSS", "Loss"
    BREAKEVEN = "BREAKEVEN", "Breakeven"


class Sentiment(models.TextChoices):
    BULLISH = "BULLISH", "Bullish"
    BEARISH = "BEARISH", "Bearish"
    NEUTRAL = "NEUTRAL", "Neutral"


class Recommendation(models.TextChoices):
    BUY = "BUY", "Buy"
    SELL = "SELL", "Sell"
    HOLD = "HOLD", "Hold"


class Side(models.TextChoices):
    """The side of a trade: a recommendation that is acted on."""

    BUY = "BUY", "Buy"
    SELL = "SELL", "Sell"


class Regime(models.TextChoices):
    """The market's regime as the indicators label it: trend or range (ADX), high or low volatility
    (ATR against its median)."""

    TREND_HIGH_VOL = "TREND_HIGH_VOL", "Trend, high volatility"
    TREND_LOW_VOL = "TREND_LOW_VOL", "Trend, low volatility"
    RANGE_HIGH_VOL = "RANGE_HIGH_VOL", "Range, high volatility"
    RANGE_LOW_VOL = "RANGE_LOW_VOL", "Range, low volatility"
    UNKNOWN = "UNKNOWN", "Unknown"


# The recommendations that trade, as plain strings: read in the hot paths of the cycle and the replay, where
# `Side.values` would build its list again on every use.
BUY_OR_SELL = (Side.BUY.value, Side.SELL.value)
