"""The candle periods the platform trades on."""

from datetime import timedelta

TIMEFRAMES = ("15m", "1h", "4h", "1d")
TIMEFRAME_PERIODS = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "1d": timedelta(days=1),
}
