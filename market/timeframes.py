"""The candle periods the platform trades on."""

from datetime import timedelta

TIMEFRAMES = ("15m", "1h", "4h", "1d")
TIMEFRAME_PERIODS = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "1d": timedelta(days=1),
}

_UNITS = {"m": "minute", "h": "hour", "d": "day", "w": "week"}


def timeframe_name(timeframe: str) -> str:
    """'15m' -> '15 minutes', '1h' -> '1 hour': how the pages and forms say a timeframe."""
    count, unit = timeframe[:-1], _UNITS.get(timeframe[-1:])
    if not count.isdigit() or unit is None:
        return timeframe
    return f"{count} {unit}{'' if count == '1' else 's'}"
