"""A replay's analyst calls asked ahead of its cycles, a refresh window of the prompt at a time (issue 21).

A replay with a model as analyst waited on one call per slot: each prompt carried what had been learned up to
its slot, so the next could not be written before the last was answered (5,000 hours at 2 s a call: almost
three hours). The learned section now changes once per window of market time (`steps.prompt_section`, a day
by default), so at a window's start every request of the window is known: its charts, its numbers, and the
section of what was learned before the window began. They are asked together (at most
REPLAY_ASK_CONCURRENCY at once) and stored (`analysts.asked_once.store_answer`); then the window's cycles run
in slot order as before, each taking its stored answer instead of asking, and learn and decide one after
another. The section is computed by the function the cycles call, on the same books before any cycle of the
window has run, so the answers are the ones the cycles would have asked for: no lookahead, and the same
decisions as a replay asking one call at a time (tests/automation/test_replay_asks.py).

What takes the time besides the calls, a second of charts for every few slots, is done ahead as well: forked
processes draw the charts of the windows to come while this one waits on the calls of the current one. They
never touch the database (a forked process ends with os._exit, closing no connection it shares with this one);
the charts are stored here, under the names the cycle looks for (`charts.storage.rendered_chart_name`).

Only this process's thread writes the database: the calls' threads only ask, which keeps SQLite's one writer
(the replay's transaction) the only one."""

import logging
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal

from django.core.files.storage import default_storage

from accounts.quotas import quotas_of
from market.indicators import MIN_CANDLES, compute
from market.sources import Market, MarketDataSource

from .analysis import LOOKBACK, Candles
from .analysts.asked_once import request_key, store_answer, stored_answers
from .analysts.base import OPERATOR, AnalysisRequest, Analyst, AnalystError, AnalystResult
from .analysts.service import storable_result
from .charts.rendered import render_chart
from .charts.storage import rendered_chart_name, save_chart
from .replay_book import Book
from .schedule import prompt_window
from .steps import prompt_section

logger = logging.getLogger(__name__)
# Charts per task of the chart processes: a window's charts shared among them, rather than a window per
# process, so that the window the replay waits for is drawn by every process at once (the first window,
# and the last, were drawn by one of them while the others had nothing left to draw).
DRAW_BATCH = 4

_SOURCE: MarketDataSource | None = None  # the candles, in a chart process


def _remember(source: MarketDataSource) -> None:
    global _SOURCE
    _SOURCE = source


def _draw(market: Market, slots: list[datetime]) -> dict[datetime, bytes]:
    """In a chart process: the charts of `slots`, as the cycle would draw them; a slot left out (too few
    candles, an error) is drawn by its cycle, which fails at its own step if it must."""
    charts = {}
    for slot in slots:
        try:
            candles = _SOURCE.candles(market, limit=LOOKBACK, until=slot)
            if len(candles) >= MIN_CANDLES:
                charts[slot] = render_chart(candles, market, compute(candles))
        except Exception:  # the cycle draws this one itself
            logger.debug("chart of %s not drawn ahead", slot, exc_info=True)
    return charts


class AskedAhead:
    """The calls of each refresh window among `slots` asked together when the replay reaches the window
    (`before(slot)`, called before each cycle). Use as a context manager."""

    def __init__(self, book: Book, slots: list[datetime], concurrency: int, *, draw: bool = True):
        self.book, self.market, self.analyst, self.draw = book, book.market, book.analyst, draw
        self.windows: dict[tuple[datetime, datetime], list[datetime]] = {}
        for slot in slots:
            self.windows.setdefault(prompt_window(slot), []).append(slot)
        self.current: tuple[datetime, datetime] | None = None
        self.asked = 0  # calls made here; the cycles made none for the answers stored
        self.cost: Decimal | None = None  # the dearest call so far
        self.calls = ThreadPoolExecutor(concurrency, thread_name_prefix="replay-ask")
        # Every chart task sent now, before the calls' threads exist: a fork copies only the forking thread.
        self.charts: ProcessPoolExecutor | None = None
        self.drawn: dict[tuple[datetime, datetime], list[Future]] = {}
        undrawn = {
            window: [
                s for s in window_slots if (name := self._chart_name(s)) and not default_storage.exists(name)
            ]
            for window, window_slots in self.windows.items()
        }
        if draw and any(undrawn.values()):
            self.charts = ProcessPoolExecutor(
                os.cpu_count() or 1,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_remember,
                initargs=(book.source,),
            )
            self.drawn = {
                window: [
                    self.charts.submit(_draw, self.market, slots[start : start + DRAW_BATCH])
                    for start in range(0, len(slots), DRAW_BATCH)
                ]
                for window, slots in undrawn.items()
                if slots
            }

    def __enter__(self) -> "AskedAhead":
        return self

    def __exit__(self, *exc) -> None:
        if self.charts is not None:
            self.charts.shutdown(wait=True, cancel_futures=True)
        self.calls.shutdown(wait=True, cancel_futures=True)

    def before(self, slot: datetime) -> None:
        """At the first slot of a window: its charts stored, its calls asked and their answers stored."""
        window = prompt_window(slot)
        if window == self.current:
            return
        self.current = window
        section = prompt_section(self.book, slot)
        drawn = {}
        for batch in self.drawn.pop(window, []):
            drawn.update(batch.result())
        requests: dict[str, AnalysisRequest] = {}
        for later in self.windows.pop(window, []):
            request = self._request(later, section, drawn.get(later))
            if request is not None:
                requests.setdefault(request_key(self.analyst, request), request)
        stored = stored_answers(list(requests))
        unasked = [key for key in requests if key not in stored]
        if self.book.paid and self.cost is None and unasked and self._affordable(1):
            # What a call costs is learned from the first, before the spend cap is counted on it.
            self._ask(unasked[:1], requests)
            unasked = unasked[1:]
        self._ask(unasked[: self._affordable(len(unasked))], requests)

    def _ask(self, keys: list[str], requests: dict[str, AnalysisRequest]) -> None:
        results = self.calls.map(lambda key: _asked(self.analyst, requests[key]), keys)
        for key, result in zip(keys, results, strict=True):
            if result is not None:
                self.asked += 1
                self.cost = max(self.cost or Decimal(0), result.cost_usd)
                store_answer(key, result, billed_to=getattr(self.analyst, "billed_to", OPERATOR))

    def _affordable(self, wanted: int) -> int:
        """How many of `wanted` calls to ask ahead within the plan's monthly spend cap, as the books count
        it (automation.quotas): no call is asked ahead for a cycle the cap will skip. The cycles of the
        window left unasked ask for themselves, one at a time, and stop at the cap as they always did."""
        if not self.book.paid:
            return wanted
        room = quotas_of(self.book.bot.owner).monthly_llm_usd - self.book.spent
        if room <= 0:
            return 0
        return wanted if not self.cost else min(wanted, int(room / self.cost))

    def _request(self, slot: datetime, section: str, png: bytes | None) -> AnalysisRequest | None:
        """The request the cycle of `slot` will make: its candles, numbers and chart, and the window's
        section. None where the cycle must see for itself (no chart drawn, too few candles)."""
        candles = self.book.source.candles(self.market, limit=LOOKBACK, until=slot)
        if len(candles) < MIN_CANDLES:
            return None
        name = self._chart_name(slot, candles)
        if not self.draw:
            png = b""  # as the cycle sends when it draws no chart
        elif png is not None:
            if not default_storage.exists(name):
                save_chart(png, name)
        elif default_storage.exists(name):
            with default_storage.open(name, "rb") as stored:
                png = stored.read()
        else:
            return None
        indicators = self.book.indicators_of(self.market, Candles(candles))
        return AnalysisRequest(market=self.market, indicators=indicators, chart_png=png, insights=section)

    def _chart_name(self, slot: datetime, candles=None) -> str:
        """The name analysis.analyse_market stores the slot's chart under ("" with no candle before it)."""
        if candles is None:
            candles = self.book.source.candles(self.market, limit=1, until=slot)
        if candles.empty:
            return ""
        return rendered_chart_name(self.market, (candles.index[-1] + self.market.period).to_pydatetime())


def _asked(analyst: Analyst, request: AnalysisRequest) -> AnalystResult | None:
    """The call, in a thread of the pool. Any failure is left to the slot's cycle, which asks again and
    records its own failure, at its step, if it fails too."""
    try:
        return storable_result(analyst.analyse(request))  # as service.analyse keeps it (PostgreSQL's JSON)
    except Exception as e:
        log = logger.warning if isinstance(e, AnalystError) else logger.exception
        log("a replay's call asked ahead failed; its cycle asks again: %s", e)
        return None
