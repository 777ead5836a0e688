from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from market.indicators import Indicators, compute, indicators_for, pivot_levels, regime_label
from market.models import IndicatorSet
from market.sources import Market

# StockCharts ChartSchool's worked examples (their tables round intermediate values, hence the tolerances).
RSI_CLOSES = [
    44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08, 45.89, 46.03, 45.61, 46.28, 46.28,
    46.00, 46.03, 46.41, 46.22, 45.64,
]  # fmt: skip
RSI_PUBLISHED = [70.53, 66.32, 66.55, 69.41, 66.36, 57.97]
EMA_CLOSES = [
    22.27, 22.19, 22.08, 22.17, 22.18, 22.13, 22.23, 22.43, 22.24, 22.29, 22.15, 22.39, 22.38, 22.61, 23.36,
]  # fmt: skip
EMA10_PUBLISHED = [22.22, 22.21, 22.24, 22.27, 22.33]


def bars(closes, *, spread=1.0, volume=None, start=datetime(2024, 1, 1, tzinfo=UTC)) -> pd.DataFrame:
    closes = np.asarray(closes, dtype=float)
    index = pd.DatetimeIndex([start + timedelta(hours=i) for i in range(len(closes))], name="time")
    return pd.DataFrame(
        {
            "open": closes,
            "high": closes + spread / 2,
            "low": closes - spread / 2,
            "close": closes,
            "volume": np.ones(len(closes)) * 100 if volume is None else np.asarray(volume, dtype=float),
        },
        index=index,
    )


def test_rsi_matches_the_published_example():
    import talib

    ours = talib.RSI(np.array(RSI_CLOSES), 14)[14:]
    assert ours == pytest.approx(RSI_PUBLISHED, abs=0.1)
    assert compute(bars(RSI_CLOSES * 2)).rsi is not None


def test_ema_matches_the_published_example():
    import talib

    assert talib.EMA(np.array(EMA_CLOSES), 10)[9:14] == pytest.approx(EMA10_PUBLISHED, abs=0.01)


def test_flat_market_has_flat_indicators():
    ind = compute(bars([100.0] * 250, spread=2.0))
    assert ind.close == 100.0
    assert (ind.ema20, ind.ema50, ind.ema200) == (100.0, 100.0, 100.0)
    assert ind.macd == pytest.approx(0) and ind.macd_hist == pytest.approx(0)
    assert ind.atr == pytest.approx(2.0)  # every bar's true range is the 2.0 spread
    assert ind.bb_upper == ind.bb_middle == ind.bb_lower == pytest.approx(100.0)
    assert ind.volume_z == 0.0


def test_volume_z_score_of_a_spike():
    volume = [100.0] * 19 + [500.0]
    window = np.array(volume)
    expected = (500 - window.mean()) / window.std()
    assert compute(bars(np.linspace(100, 120, 60), volume=[100.0] * 40 + volume)).volume_z == pytest.approx(
        expected
    )


def test_ema200_is_absent_until_there_are_200_candles():
    assert compute(bars(np.linspace(1, 2, 199))).ema200 is None
    assert compute(bars(np.linspace(1, 2, 200))).ema200 is not None


def test_swing_pivots_become_support_below_and_resistance_above_the_close():
    high = np.array([10, 11, 12, 15, 12, 11, 10, 9, 8, 9, 10, 11, 12, 13, 12, 11, 10, 11, 12], dtype=float)
    low = high - 1
    support, resistance = pivot_levels(high, low, close=11.5, atr=None)
    assert support == (7.0,)  # the swing low at index 8 (low 8 - 1)
    assert resistance == (13.0, 15.0)  # swing highs, nearest first


def test_nearby_pivots_merge_within_half_an_atr():
    high = np.array([1, 1, 1, 2, 5, 2, 1, 2, 5.2, 2, 1, 0.5, 1, 1], dtype=float)
    low = high - 0.1
    _, resistance = pivot_levels(high, low, close=3, atr=1.0)
    assert resistance == (pytest.approx(5.1),)


@pytest.mark.parametrize(
    ("adx", "atr_pct", "label"),
    [
        (30.0, [0.01] * 50 + [0.02], "TREND_HIGH_VOL"),
        (30.0, [0.02] * 50 + [0.01], "TREND_LOW_VOL"),
        (10.0, [0.01] * 50 + [0.02], "RANGE_HIGH_VOL"),
        (10.0, [0.02] * 50 + [0.01], "RANGE_LOW_VOL"),
        (None, [0.01] * 10, "UNKNOWN"),
    ],
)
def test_regime_labels(adx, atr_pct, label):
    assert regime_label(adx, np.array(atr_pct)) == label


def test_a_steady_rise_reads_as_a_trend():
    rng = np.random.default_rng(7)
    closes = np.cumsum(1 + rng.normal(0, 0.3, 300)) + 100
    ind = compute(bars(closes))
    assert ind.regime.startswith("TREND")
    assert ind.rsi > 60 and ind.ema20 > ind.ema50 > ind.ema200


def test_indicators_are_computed_once_per_market_candle_and_shared(db, django_assert_num_queries):
    market = Market("binance", "BTC/USDT", "1h")
    df = bars(np.linspace(100, 130, 300))
    first = indicators_for(market, df)
    assert IndicatorSet.objects.count() == 1
    with django_assert_num_queries(1):  # the second bot only reads
        second = indicators_for(market, df)
    assert second == first
    assert isinstance(Indicators.from_dict(first.to_dict()), Indicators)
