"""The default chart: drawn by the platform with mplfinance, the way a trader would look at it."""

import functools
import struct
import threading
import zlib

import matplotlib

matplotlib.use("Agg")  # no display on servers and workers; must precede pyplot's import by mplfinance

import mplfinance as mpf
import numpy as np
import pandas as pd
import talib
from django.conf import settings
from matplotlib import pyplot as plt
from matplotlib.backends.backend_agg import FigureCanvasAgg

from market.indicators import EMA_PERIODS, Indicators
from market.sources import Market

DPI = 100
# The analyst sees the recent past in detail; older candles only feed the EMAs.
VISIBLE_CANDLES = 120
EMA_COLOURS = {20: "#2454d6", 50: "#e07b00", 200: "#7a3db8"}
UP, DOWN = "#127a3e", "#b42318"
STYLE = mpf.make_mpf_style(base_mpf_style="charles", gridstyle=":", facecolor="white", rc={"font.size": 10})
# Axes rectangles (left, bottom, width, height) in figure fractions: price above, volume below.
PRICE_BOX, VOLUME_BOX = (0.05, 0.32, 0.87, 0.60), (0.05, 0.12, 0.87, 0.18)
# The PNG's compression: zlib's level 3 on rows left unfiltered (png_rgb says why).
PNG_LEVEL = 3
# The figure and its axes are kept for the process and drawn on again (_canvas), under this lock: one
# figure cannot be drawn by two threads at once, and the cycle queue's worker runs threads.
_RENDER_LOCK = threading.Lock()


def render_chart(df: pd.DataFrame, market: Market, indicators: Indicators) -> bytes:
    """PNG bytes, CHART_WIDTH by CHART_HEIGHT: candles, volume, EMA 20/50/200, support and resistance."""
    visible = df.iloc[-VISIBLE_CANDLES:].rename(columns=str.capitalize)
    with _RENDER_LOCK:
        fig, ax_price, ax_volume = _canvas(settings.CHART_WIDTH, settings.CHART_HEIGHT)
        try:
            _draw_price(ax_price, visible, df["close"].to_numpy(dtype=float), market, indicators)
            _draw_volume(ax_volume, visible)
            fig.canvas.draw()
            return png_rgb(np.asarray(fig.canvas.buffer_rgba()))
        finally:
            _wipe(ax_price, ax_volume)


def png_rgb(rgba: np.ndarray) -> bytes:
    """The PNG of an opaque RGBA canvas, written as RGB: the alpha channel is opaque everywhere and would
    be a quarter of what is compressed. Written here rather than by Pillow, whose encoder picks a filter for
    every row and spent 17 ms of a 105 ms chart on it (with the copy out of the RGBA buffer, 22 ms): on a
    chart, mostly flat white with thin lines, unfiltered rows at zlib's level 3 compress as well (73 KB
    against Pillow's 80 KB at level 1) in 5 ms. The same pixels (tests/automation/test_analysis.py)."""
    height, width, _ = rgba.shape
    rows = np.empty((height, 1 + width * 3), dtype=np.uint8)
    rows[:, 0] = 0  # each row's filter type: none
    rows[:, 1:].reshape(height, width, 3)[...] = rgba[..., :3]
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits a channel, RGB, not interlaced
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(rows.data, PNG_LEVEL)),
            _png_chunk(b"IEND", b""),
        )
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.cache
def _canvas(width: int, height: int):
    """The figure and its price and volume axes, made once per process and size. A new figure for each
    chart cost a fifth of the render: the figure, two axes and every tick of their four axis lines built
    again, though only the candles, lines and labels on them change (bench/bench_analysis.py)."""
    fig = mpf.figure(figsize=(width / DPI, height / DPI), style=STYLE)
    # Out of pyplot's registry, on a canvas of its own: a plt.close("all") anywhere in the process would
    # otherwise close the kept figure under the next chart.
    plt.close(fig)
    FigureCanvasAgg(fig)
    ax_price = fig.add_axes(PRICE_BOX)
    ax_volume = fig.add_axes(VOLUME_BOX, sharex=ax_price)
    # Neither date axis has a label; left to place one, matplotlib measures every tick label of both
    # axes at each draw to find room for it.
    ax_price.xaxis.set_label_coords(0.5, 0)
    ax_volume.xaxis.set_label_coords(0.5, 0)
    return fig, ax_price, ax_volume


def _wipe(*axes) -> None:
    """Everything one chart drew on the axes taken off again, and their limits set free, so that the next
    chart starts from the axes _canvas made (tests/automation/test_analysis.py renders one chart twice
    with another in between and gets the same bytes)."""
    for ax in axes:
        for artist in [*ax.lines, *ax.collections, *ax.patches, *ax.texts]:
            artist.remove()
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        ax.relim()
        ax.set_autoscale_on(True)  # _draw_price and _draw_volume set limits, which turns autoscaling off


def _draw_price(ax, visible: pd.DataFrame, close: np.ndarray, market: Market, indicators: Indicators) -> None:
    levels = [*indicators.support, *indicators.resistance]
    extra = {}
    if levels:
        colours = [UP] * len(indicators.support) + [DOWN] * len(indicators.resistance)
        extra["hlines"] = {"hlines": levels, "colors": colours, "linestyle": "--", "linewidths": 0.9}
    mpf.plot(visible, ax=ax, type="candle", ylabel="Price", **extra)
    # The EMAs drawn here, on the candles' x (their positions, as mplfinance places them), rather than as
    # mplfinance addplots: an addplot is validated, and given a legend of its own that the one below
    # replaces (4 ms of an 80 ms chart). The same pixels.
    x = np.arange(len(visible))
    emas = []
    for period in EMA_PERIODS:
        ema = talib.EMA(close, period)[-len(visible) :]
        if np.count_nonzero(~np.isnan(ema)) > 1:  # an EMA needs a stretch of history to be worth a line
            emas += ax.plot(x, ema, color=EMA_COLOURS[period], linewidth=1.1, label=f"EMA {period}")
    # Placed at the top, where it always fits: left to place it, matplotlib measures the axes' tick labels
    # at each draw for a title that could collide with ticks on top, which this chart does not have.
    ax.set_title(f"{market.symbol} · {market.timeframe} · {market.exchange}", y=1, pad=6)
    # Keep the nearest support and resistance in view, even when the candles have not reached them.
    low, high = ax.get_ylim()
    nearest = [*indicators.support[:1], *indicators.resistance[:1]]
    if nearest:
        pad = (high - low) * 0.03
        ax.set_ylim(min(low, min(nearest) - pad), max(high, max(nearest) + pad))
    plt.setp(ax.get_xticklabels(), visible=False)  # the volume panel below carries the dates
    if emas:
        ax.legend(loc="upper left", fontsize=8)


def _draw_volume(ax, visible: pd.DataFrame) -> None:
    # One line collection instead of mplfinance's bar patches: the patches cost more than the whole
    # rest of the chart, and the chart is drawn for every bot every period.
    n = len(visible)
    rising = visible["Close"].to_numpy() >= visible["Open"].to_numpy()
    bar_points = 0.7 * (VOLUME_BOX[2] * settings.CHART_WIDTH / n) * 72 / DPI
    ax.vlines(
        np.arange(n), 0, visible["Volume"].to_numpy(), colors=np.where(rising, UP, DOWN), linewidth=bar_points
    )
    ax.set_ylim(0, max(visible["Volume"].max(), 1) * 1.05)
    ax.yaxis.tick_right()
    ax.yaxis.set_label_position("right")
    ax.set_ylabel("Volume")
