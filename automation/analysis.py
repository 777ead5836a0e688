"""Steps 1-4 of the cycle (docs/architecture.md): market data, indicators, chart, analysis. Each step is
timed, so a cycle run can say where its time went."""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from django.core.files.storage import default_storage
from django.db import connection

from market.indicators import MIN_CANDLES, Indicators, indicators_for
from market.sources import Market, MarketDataSource, require

from .analysts.base import AnalysisRequest, Analyst, AnalystResult
from .analysts.service import analyse
from .charts.rendered import render_chart
from .charts.storage import private_chart_name, rendered_chart_name, save_chart

# Enough candles for EMA 200 to settle; the chart shows the most recent of them.
LOOKBACK = 300

ChartMaker = Callable[[pd.DataFrame, Market, Indicators], bytes]
# One lock per chart name, so that threads draw each shared chart once. Names are per market and candle, a
# few thousand a day at most, so the dictionary is left to grow with the process.
_CHART_LOCKS: dict[str, threading.Lock] = {}
_CHART_LOCKS_GUARD = threading.Lock()


@dataclass
class MarketAnalysis:
    market: Market
    candles: pd.DataFrame
    indicators: Indicators
    as_of: datetime  # when the last candle closed: the moment the analysis is for
    chart: str  # storage name of the PNG
    result: AnalystResult
    # The price an order on it fills at: the open of the next candle (opening at as_of, or after the
    # market's pause) where the source has it (a replay, which acts after the candle closed as a live cycle
    # does), else the last close.
    price: float
    timings: dict[str, float] = field(default_factory=dict)


class StepTimer:
    """Times each step and remembers which one is running, so a failure can be laid at its step.
    `on_step(name)`, when given, is told as each step starts: what a process that dies mid-step leaves
    behind for others to read."""

    def __init__(self, on_step: Callable[[str], None] | None = None):
        self.timings: dict[str, float] = {}
        self.current = ""
        self.on_step = on_step

    def step(self, name: str, fn, *args):
        self.current = name
        if self.on_step:
            self.on_step(name)
        started = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.timings[name] = round(time.perf_counter() - started, 4)


def shared_chart(
    candles: pd.DataFrame, market: Market, indicators: Indicators, as_of: datetime
) -> tuple[bytes, str]:
    """The rendered chart depends only on the market's candles, so, like the indicators, it is drawn once
    per market and candle and shared by every bot on that market: a thousand bots on twenty markets draw
    twenty charts. Two workers racing may both draw it; the storage keeps both, nothing breaks. Only a
    rendered chart is ever found again here: its name is one no other kind of chart is stored under."""
    name = rendered_chart_name(market, as_of)
    # The first thread of this process to need the chart draws it; the others on that market wait for it
    # rather than drawing their own copy.
    with _CHART_LOCKS_GUARD:
        lock = _CHART_LOCKS.setdefault(name, threading.Lock())
    with lock:
        if default_storage.exists(name):
            with default_storage.open(name, "rb") as stored:
                return stored.read(), name
        png = render_chart(candles, market, indicators)
        return png, save_chart(png, name)


def analyse_market(
    market: Market,
    *,
    source: MarketDataSource,
    analyst: Analyst,
    until: datetime | None = None,
    insights: str = "",
    chart: ChartMaker | None = None,
    chart_owner: str = "adhoc",  # whose `chart` it is (a bot, in a cycle); the rendered chart is everyone's
    draw_chart: bool = True,
    timer: StepTimer | None = None,
    indicators_of: Callable[[Market, pd.DataFrame], Indicators] = indicators_for,
) -> MarketAnalysis:
    timer = timer or StepTimer()
    candles = timer.step(
        "market_data",
        lambda: require(source.candles(market, limit=LOOKBACK, until=until), MIN_CANDLES, market),
    )
    indicators = timer.step("indicators", indicators_of, market, candles)
    as_of = (candles.index[-1] + market.period).to_pydatetime()
    opened = source.open_at(market, as_of)
    price = indicators.close if opened is None else opened
    if not draw_chart:
        png, name = b"", ""
    elif chart is None:  # the platform's rendered chart, shared by every bot on the market
        png, name = timer.step("chart", shared_chart, candles, market, indicators, as_of)
    else:
        png = timer.step("chart", chart, candles, market, indicators)
        # Another chart (a bot's TradingView page) is its owner's alone, stored where no one else looks.
        name = timer.step("chart_store", save_chart, png, private_chart_name(chart_owner, market, as_of))
    request = AnalysisRequest(market=market, indicators=indicators, chart_png=png, insights=insights)
    release_database_connection()
    result = timer.step("analysis", analyse, analyst, request)
    return MarketAnalysis(market, candles, indicators, as_of, name, result, price, timer.timings)


def release_database_connection() -> None:
    """Before the analyst's seconds-long wait: a thread that held its connection through it would make
    database connections, not threads, the limit on how many cycles wait at once. With the PostgreSQL pool
    the connection goes back to the pool and the next query takes one again. Inside a transaction (a test's)
    the connection stays, since closing it would end the transaction."""
    if not connection.in_atomic_block:
        connection.close()
