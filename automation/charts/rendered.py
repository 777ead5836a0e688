"""The default chart: drawn by the platform with mplfinance, the way a trader would look at it."""

import io

import matplotlib

matplotlib.use("Agg")  # no display on servers and workers; must precede pyplot's import by mplfinance

import mplfinance as mpf
import pandas as pd
import talib
from django.conf import settings
from matplotlib import pyplot as plt

from market.indicators import EMA_PERIODS, Indicators
from market.sources import Market

DPI = 100
# The analyst sees the recent past in detail; older candles only feed the EMAs.
VISIBLE_CANDLES = 120
EMA_COLOURS = {20: "#2454d6", 50: "#e07b00", 200: "#7a3db8"}
STYLE = mpf.make_mpf_style(
    base_mpf_style="charles", gridstyle=":", facecolor="white", rc={"font.size": 10, "axes.labelsize": 10}
)


def render_chart(df: pd.DataFrame, market: Market, indicators: Indicators) -> bytes:
    """PNG bytes, CHART_WIDTH by CHART_HEIGHT: candles, volume, EMA 20/50/200 and support/resistance lines."""
    close = df["close"].to_numpy(dtype=float)
    visible = df.iloc[-VISIBLE_CANDLES:].rename(columns=str.capitalize)
    addplots = []
    for period in EMA_PERIODS:
        ema = pd.Series(talib.EMA(close, period), index=df.index).iloc[-VISIBLE_CANDLES:]
        if ema.notna().any():
            addplots.append(
                mpf.make_addplot(ema, color=EMA_COLOURS[period], width=1.1, label=f"EMA {period}")
            )
    levels = list(indicators.support) + list(indicators.resistance)
    colours = ["#127a3e"] * len(indicators.support) + ["#b42318"] * len(indicators.resistance)
    kwargs = {}
    if levels:
        kwargs["hlines"] = {"hlines": levels, "colors": colours, "linestyle": "--", "linewidths": 0.9}
    fig, axes = mpf.plot(
        visible,
        type="candle",
        volume=True,
        style=STYLE,
        addplot=addplots,
        figsize=(settings.CHART_WIDTH / DPI, settings.CHART_HEIGHT / DPI),
        ylabel="Price",
        ylabel_lower="Volume",
        returnfig=True,
        # Room for the price labels on the right and the dates below, which tight_layout would cut.
        scale_padding={"left": 0.4, "right": 1.1, "top": 0.9, "bottom": 1.2},
        **kwargs,
    )
    try:
        axes[0].set_title(
            f"{market.symbol} · {market.timeframe} · {market.exchange}", loc="left", fontsize=12
        )
        if addplots:
            axes[0].legend(loc="upper left", fontsize=8)
        buffer = io.BytesIO()
        # No bbox "tight": it would change the size the analyst's prompt and the page promise.
        fig.savefig(buffer, format="png", dpi=DPI)
        return buffer.getvalue()
    finally:
        plt.close(fig)
