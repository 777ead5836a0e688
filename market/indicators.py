"""Indicators from TA-Lib, reduced to the values of the last closed candle, plus swing-pivot support and
resistance and a regime label. Computed once per (market, candle) and shared: see `indicators_for`."""

import contextlib
import math
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import talib
from django.db import IntegrityError, transaction

from core.values import Regime

from .models import IndicatorSet
from .sources import Market, float_columns

# Periods are the textbook defaults the analysts and users know.
RSI_PERIOD, ATR_PERIOD, ADX_PERIOD = 14, 14, 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
EMA_PERIODS = (20, 50, 200)
BB_PERIOD, BB_STDDEV = 20, 2.0
VOLUME_WINDOW = 20
# A pivot is a bar whose high (low) is the highest (lowest) of PIVOT_SPAN bars on each side.
PIVOT_SPAN = 3
# ADX above this reads as a trend (Wilder's own threshold).
TREND_ADX = 25.0
# Volatility is "high" when ATR/close is above its median over this many bars.
VOLATILITY_WINDOW = 100
MAX_LEVELS = 3
# The fewest candles for which every indicator but EMA 200 is defined.
MIN_CANDLES = MACD_SLOW + MACD_SIGNAL


@dataclass(frozen=True)
class Indicators:
    time: str  # ISO open time of the last candle
    close: float
    rsi: float | None
    macd: float | None
    macd_signal: float | None
    macd_hist: float | None
    ema20: float | None
    ema50: float | None
    ema200: float | None
    atr: float | None
    bb_upper: float | None
    bb_middle: float | None
    bb_lower: float | None
    volume_z: float | None
    support: tuple[float, ...]
    resistance: tuple[float, ...]
    adx: float | None
    regime: str  # TREND_HIGH_VOL, TREND_LOW_VOL, RANGE_HIGH_VOL, RANGE_LOW_VOL or UNKNOWN

    def to_dict(self) -> dict:
        # Shallow: every value is a number, a string or a tuple of numbers (asdict's deep copy cost more).
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["support"], d["resistance"] = list(self.support), list(self.resistance)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Indicators":
        return cls(**{**d, "support": tuple(d["support"]), "resistance": tuple(d["resistance"])})


def _last(values: np.ndarray) -> float | None:
    value = float(values[-1]) if len(values) else math.nan
    return None if math.isnan(value) else round(value, 10)


def pivot_levels(high: np.ndarray, low: np.ndarray, close: float, atr: float | None) -> tuple[tuple, tuple]:
    """Swing highs and lows merged when closer than half an ATR; nearest first on each side of the close."""
    span, width = PIVOT_SPAN, 2 * PIVOT_SPAN + 1
    levels: list[float] = []
    if len(high) >= width:
        # A candle is a swing high (low) when it is the highest (lowest) of the candles `span` either side.
        centre = slice(span, len(high) - span)
        highs, lows = high[centre], low[centre]
        swing_highs = highs[highs == _rolling(np.maximum, high, width)]
        swing_lows = lows[lows == _rolling(np.minimum, low, width)]
        levels = np.concatenate([swing_highs, swing_lows]).tolist()
    tolerance = (atr or 0) / 2
    merged: list[float] = []
    for level in sorted(levels):
        if merged and level - merged[-1] <= tolerance:
            merged[-1] = (merged[-1] + level) / 2
        else:
            merged.append(level)
    support = sorted((lv for lv in merged if lv < close), reverse=True)[:MAX_LEVELS]
    resistance = sorted(lv for lv in merged if lv > close)[:MAX_LEVELS]
    return tuple(round(v, 10) for v in support), tuple(round(v, 10) for v in resistance)


def _rolling(extreme: np.ufunc, values: np.ndarray, width: int) -> np.ndarray:
    """The highest (np.maximum) or lowest (np.minimum) of each run of `width` values: the shifted copies
    reduced at once, several times faster than a sliding window view for the few widths used here."""
    count = len(values) - width + 1
    return extreme.reduce([values[i : i + count] for i in range(width)])


def regime_label(adx: float | None, atr_pct: np.ndarray) -> str:
    recent = atr_pct[~np.isnan(atr_pct)][-VOLATILITY_WINDOW:]
    if adx is None or len(recent) < 2:
        return Regime.UNKNOWN.value
    trend = "TREND" if adx >= TREND_ADX else "RANGE"
    volatility = "HIGH_VOL" if recent[-1] > np.median(recent) else "LOW_VOL"
    return Regime(f"{trend}_{volatility}").value


def compute(df: pd.DataFrame) -> Indicators:
    """Indicators of the last candle of `df` (columns open, high, low, close, volume; ascending time)."""
    high, low, close, volume = float_columns(df, "high", "low", "close", "volume")
    macd, signal, hist = talib.MACD(close, MACD_FAST, MACD_SLOW, MACD_SIGNAL)
    upper, middle, lower = talib.BBANDS(close, BB_PERIOD, BB_STDDEV, BB_STDDEV)
    atr = talib.ATR(high, low, close, ATR_PERIOD)
    adx = _last(talib.ADX(high, low, close, ADX_PERIOD))
    last_atr = _last(atr)

    volume_z = None
    if len(volume) >= VOLUME_WINDOW:
        window = volume[-VOLUME_WINDOW:]
        std = window.std()
        volume_z = round(float((volume[-1] - window.mean()) / std), 10) if std > 0 else 0.0

    support, resistance = pivot_levels(high, low, float(close[-1]), last_atr)
    emas = {f"ema{p}": _last(talib.EMA(close, p)) for p in EMA_PERIODS}
    return Indicators(
        time=df.index[-1].isoformat(),
        close=float(close[-1]),
        rsi=_last(talib.RSI(close, RSI_PERIOD)),
        macd=_last(macd),
        macd_signal=_last(signal),
        macd_hist=_last(hist),
        **emas,
        atr=last_atr,
        bb_upper=_last(upper),
        bb_middle=_last(middle),
        bb_lower=_last(lower),
        volume_z=volume_z,
        support=support,
        resistance=resistance,
        adx=adx,
        regime=regime_label(adx, atr / close),
    )


def indicators_for(market: Market, df: pd.DataFrame) -> Indicators:
    """The indicators of `df`'s last candle, computed by the first bot on this market to ask for them and
    read back by every other. `df` must be the same window for every caller (the cycle's fixed lookback)."""
    open_time = df.index[-1].to_pydatetime()
    key = {"exchange": market.exchange, "symbol": market.symbol, "timeframe": market.timeframe}
    stored = IndicatorSet.objects.filter(**key, open_time=open_time, candles=len(df)).first()
    if stored:
        return Indicators.from_dict(stored.values)
    result = compute(df)
    # Another worker may have stored the same values first; a savepoint keeps the caller's transaction usable.
    with contextlib.suppress(IntegrityError), transaction.atomic():
        IndicatorSet.objects.create(**key, open_time=open_time, candles=len(df), values=result.to_dict())
    return result
