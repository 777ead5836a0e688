"""A long replay's indicators and technical analyses, worked out ahead in a second process.

For the technical analyst both depend on the candles alone: the analyst reads the indicators, not the prompt
the learning writes. A replay has every candle from the start, so a worker process computes them slot after
slot while this one runs the cycles, and a machine's second core does a fifth of the work. The cycle gets
exactly what computing them itself would give (the same `compute` and `TechnicalAnalyst` on the same
candles); what the worker could not compute (too few candles, an error) the cycle computes itself, failing at
its own step as it would have.

The worker is forked: it inherits the loaded candles instead of receiving them, and it never touches the
database (a forked process ends with os._exit, so it closes no connection it shares with its parent)."""

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime

from market.indicators import MIN_CANDLES, Indicators, compute
from market.sources import Market, MarketDataSource

from .analysis import LOOKBACK, Candles
from .analysts.base import AnalysisRequest, AnalystResult
from .analysts.technical import TechnicalAnalyst

# Slots per task sent to the worker: large enough that sending costs little, small enough that the first
# cycles wait for it only briefly.
BATCH = 100

_SOURCE: MarketDataSource | None = None  # the candles, in the worker


def _remember(source: MarketDataSource) -> None:
    global _SOURCE
    _SOURCE = source


def _work(market: Market, slots: list[datetime]) -> list[tuple[datetime, Indicators, AnalystResult] | None]:
    """In the worker: each slot's indicators and technical analysis, with its last candle's open time, or
    None where the cycle must see for itself (too few candles, an error it should meet at its own step)."""
    answers = []
    for slot in slots:
        try:
            candles = _SOURCE.candles(market, limit=LOOKBACK, until=slot)
            if len(candles) < MIN_CANDLES:
                answers.append(None)
                continue
            indicators = compute(candles)
            request = AnalysisRequest(market=market, indicators=indicators, chart_png=b"")
            last_open = candles.index[-1].to_pydatetime()
            answers.append((last_open, indicators, TechnicalAnalyst().analyse(request)))
        except Exception:  # the cycle computes this slot itself and fails at the step that fails
            answers.append(None)
    return answers


class WorkedAhead:
    """Answers for `slots` of `market` from a worker process. Use as a context manager; `indicators_of` and
    `analyst` stand in for `compute` and the technical analyst in the cycle."""

    def __init__(self, source: MarketDataSource, market: Market, slots: list[datetime]):
        self.market = market
        self.pool = ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("fork"), initializer=_remember, initargs=(source,)
        )
        # In slot order, as the cycles ask for them.
        self.batches: list[tuple[datetime, Future]] = [
            (batch[0], self.pool.submit(_work, market, batch))
            for batch in (slots[i : i + BATCH] for i in range(0, len(slots), BATCH))
        ]
        # The last candle's open time, as the cycle's bars hold it (a datetime, not a Timestamp to box) ->
        # the slot's answer, filled batch by batch.
        self.answers: dict[datetime, tuple[Indicators, AnalystResult]] = {}
        self.analyst = _Answering()

    def __enter__(self) -> "WorkedAhead":
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def indicators_of(self, market: Market, candles: Candles) -> Indicators:
        last_open = candles.bars.times[-1]
        if last_open not in self.answers and market == self.market:
            # Take in the batches that start by this slot: the cycles ask in slot order.
            while self.batches and self.batches[0][0] <= last_open + market.period:
                for answer in self.batches.pop(0)[1].result():
                    if answer is not None:
                        self.answers[answer[0]] = answer[1:]
        answer = self.answers.pop(last_open, None)
        self.analyst.given = answer
        return answer[0] if answer else compute(candles.frame)


class _Answering:
    """The technical analyst, answering from the worker's work for the indicators `WorkedAhead` handed out
    last, when the request is for those."""

    name = TechnicalAnalyst.name

    def __init__(self):
        self.given: tuple[Indicators, AnalystResult] | None = None
        self.answered = 0  # from the worker's work

    def analyse(self, request: AnalysisRequest) -> AnalystResult:
        given, self.given = self.given, None
        if given is not None and given[0] is request.indicators:
            self.answered += 1
            return given[1]
        return TechnicalAnalyst().analyse(request)
