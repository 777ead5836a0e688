"""Steps 1-4 of the cycle (docs/architecture.md): market data, indicators, chart, analysis. Each step is
timed, so a cycle run can say where its time went, and the calls that wait on the outside world (the chart,
the analyst) can be given a deadline."""

import contextvars
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from django.core.files.storage import default_storage
from django.db import connection, connections

from market.indicators import MIN_CANDLES, Indicators, indicators_for
from market.sources import Market, MarketDataSource, require
from trades.outcomes import Bars

from .analysts.base import AnalysisRequest, Analyst, AnalystDeadlineError, AnalystResult
from .analysts.service import analyse
from .charts.errors import ChartDeadlineError
from .charts.rendered import render_chart
from .charts.storage import private_chart_name, rendered_chart_name, save_chart

# Enough candles for EMA 200 to settle; the chart shows the most recent of them.
LOOKBACK = 300

ChartMaker = Callable[[pd.DataFrame, Market, Indicators], bytes]
# One lock per chart name, so that threads draw each shared chart once. Names are per market and candle, a
# few thousand a day at most, so the dictionary is left to grow with the process.
_CHART_LOCKS: dict[str, threading.Lock] = {}
_CHART_LOCKS_GUARD = threading.Lock()


class Candles:
    """The candles a cycle reads up to its moment: `frame`, as the indicators and the chart take them, and
    `bars`, as the monitor and learning walk them, each made once, when first asked for. A replay's are cut
    from its market's whole history loaded once (automation.replay.PreloadedCandles.window), and their frame
    is made only when something computes from it or draws it: with the technical analyses worked out ahead
    (automation/replay_ahead.py), nothing does, and making one a cycle was 0.45 s of a 5,000-hour replay's
    CPU."""

    def __init__(
        self,
        frame: pd.DataFrame | None = None,
        *,
        bars: Bars | None = None,
        make_frame: Callable[[], pd.DataFrame] | None = None,
    ):
        if frame is None and (bars is None or make_frame is None):
            raise ValueError("candles are a frame, or bars with a way to make their frame")
        self._frame, self._bars, self._make_frame = frame, bars, make_frame

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame = self._make_frame()
        return self._frame

    @property
    def bars(self) -> Bars:
        if self._bars is None:
            self._bars = Bars(self._frame)
        return self._bars

    def __len__(self) -> int:
        return len(self._bars) if self._bars is not None else len(self._frame)


def frame_indicators(market: Market, candles: Candles) -> Indicators:
    """`indicators_for` of the candles' frame: the stored indicators of a live cycle."""
    return indicators_for(market, candles.frame)


@dataclass
class MarketAnalysis:
    market: Market
    candles: Candles
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
    behind for others to read. `limits` gives a step's outside call (`bounded`) its deadline in seconds."""

    def __init__(self, on_step: Callable[[str], None] | None = None, limits: dict[str, float] | None = None):
        self.timings: dict[str, float] = {}
        self.current = ""
        self.on_step = on_step
        self.limits = limits or {}

    def step(self, name: str, fn, *args):
        self.current = name
        if self.on_step:
            self.on_step(name)
        started = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.timings[name] = round(time.perf_counter() - started, 4)

    def bounded(self, name: str, fn: Callable) -> Callable:
        """`fn`, given the deadline `limits[name]` when there is one (see `within`)."""
        if name not in self.limits:
            return fn
        return lambda *args: within(self.limits[name], LATE[name], fn, *args)


# What a call that missed its deadline fails its step with: an error the outside world is expected to cause
# now and then (automation.steps.EXPECTED_ERRORS), logged in a line. The analyst's call is bounded by the
# analysis step itself (_analyst_call_within), which may wait for another's call first.
LATE = {"chart": ChartDeadlineError}


def within(seconds: float, late: type[Exception], fn: Callable, *args, deadline: float | None = None):
    """`fn(*args)` in a thread of its own, waited for `seconds` at most; past them `late` is raised, naming
    `deadline` when the seconds are what was left of it, and the call is left to end on its own (a thread
    cannot be stopped). Celery applies time limits on its prefork pool only, so on the io queue's threads
    this is what bounds a hung call. The call must only compute and return (a chart's bytes, an analysis):
    whatever it gives back after its deadline is dropped, so an abandoned call writes nothing. The cycle's
    log fields and Sentry scope go with it (its context)."""
    done = threading.Event()
    outcome: dict = {}
    context = contextvars.copy_context()

    def call() -> None:
        try:
            outcome["result"] = context.run(fn, *args)
        except BaseException as e:  # handed to the caller, which raises it as its own
            outcome["error"] = e
        finally:
            connections.close_all()  # this thread's own, if the call opened any
            done.set()

    threading.Thread(target=call, name=f"bounded-{getattr(fn, '__name__', 'call')}", daemon=True).start()
    if not done.wait(seconds):
        raise late(f"no answer within its deadline of {deadline or seconds:g} s; the call was abandoned")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _analyst_call_within(deadline: float) -> Callable:
    """The analyst's call bounded by what is left of the step's `deadline` (the step may first have waited
    for another worker's identical call)."""
    return lambda seconds, call: within(seconds, AnalystDeadlineError, call, deadline=deadline)


def shared_chart(
    candles: pd.DataFrame,
    market: Market,
    indicators: Indicators,
    as_of: datetime,
    render: ChartMaker = render_chart,
) -> tuple[bytes, str]:
    """The rendered chart depends only on the market's candles, so, like the indicators, it is drawn once
    per market and candle and shared by every bot on that market: a thousand bots on twenty markets draw
    twenty charts. Two workers racing may both draw it; the storage keeps both, nothing breaks. Only a
    rendered chart is ever found again here: its name is one no other kind of chart is stored under."""
    name = rendered_chart_name(market, as_of)
    # The first thread of this process to need the chart draws it; the others on that market wait for it
    # rather than drawing their own copy. Only `render` is bounded (StepTimer.bounded): the chart is saved
    # here, by the caller's thread, never by a render abandoned past its deadline.
    with _CHART_LOCKS_GUARD:
        lock = _CHART_LOCKS.setdefault(name, threading.Lock())
    with lock:
        if default_storage.exists(name):
            with default_storage.open(name, "rb") as stored:
                return stored.read(), name
        png = render(candles, market, indicators)
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
    indicators_of: Callable[[Market, Candles], Indicators] = frame_indicators,
    candles_of: Callable[[Market, int, datetime | None], Candles] | None = None,
) -> MarketAnalysis:
    """`candles_of(market, limit, until)`: where the candles come from when not as `source.candles`' frame
    (a replay's, cut from the whole history it loaded)."""
    timer = timer or StepTimer()

    def read() -> Candles:
        if candles_of is not None:
            return candles_of(market, LOOKBACK, until)
        return Candles(source.candles(market, limit=LOOKBACK, until=until))

    candles = timer.step("market_data", lambda: require(read(), MIN_CANDLES, market))
    indicators = timer.step("indicators", indicators_of, market, candles)
    as_of = candles.bars.times[-1] + market.period
    opened = source.open_at(market, as_of)
    price = indicators.close if opened is None else opened
    if not draw_chart:
        png, name = b"", ""
    elif chart is None:  # the platform's rendered chart, shared by every bot on the market
        render = timer.bounded("chart", render_chart)
        png, name = timer.step("chart", shared_chart, candles.frame, market, indicators, as_of, render)
    else:
        png = timer.step("chart", timer.bounded("chart", chart), candles.frame, market, indicators)
        # Another chart (a bot's TradingView page) is its owner's alone, stored where no one else looks.
        name = timer.step("chart_store", save_chart, png, private_chart_name(chart_owner, market, as_of))
    request = AnalysisRequest(market=market, indicators=indicators, chart_png=png, insights=insights)
    release_database_connection()
    # Asked once among identical requests (analysts/asked_once.py): the step may wait for another worker's
    # call instead of making its own, and both the wait and a call of its own count against its deadline.
    deadline = timer.limits.get("analysis")
    bound = None if deadline is None else _analyst_call_within(deadline)
    result = timer.step("analysis", analyse, analyst, request, deadline, bound)
    return MarketAnalysis(market, candles, indicators, as_of, name, result, price, timer.timings)


def release_database_connection() -> None:
    """Before the analyst's seconds-long wait: a thread that held its connection through it would make
    database connections, not threads, the limit on how many cycles wait at once. With the PostgreSQL pool
    the connection goes back to the pool and the next query takes one again. Inside a transaction (a test's)
    the connection stays, since closing it would end the transaction."""
    if not connection.in_atomic_block:
        connection.close()
