"""Replay: the whole loop (analyst, policy, broker, monitor, outcome, learning) over stored candles with a
simulated clock, into an account of its own, so that what the learning does can be measured on history.

It runs the bot's cycles one slot after another on its books (`replay_book.Book`: the cycle's steps with
their bookkeeping in memory, written in bulk once a simulated day; tested equal to `run_cycle`), and the
outcome model's daily retraining (`learning.ml.retrain`) on the simulated clock. The candles are read from
memory instead of one query per cycle (`PreloadedCandles`, which hands out exactly what `StoredCandles`
would), and an analyst that reads numbers only gets no chart drawn. No lookahead, by construction: at a
slot the cycle sees the candles that had closed by then and nothing else; the insights, the policy and the
outcomes are computed from what was learned before.

Resumable: a slot's run is unique per bot, so a replay started again skips the slots that ran."""

import bisect
import contextlib
import gc
import multiprocessing
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from django.conf import settings
from django.db import transaction

from accounts.models import User
from core import plain_sql as sql
from learning.ml import retrain
from market.indicators import MIN_CANDLES
from market.models import Candle
from market.sources import COLUMNS, Market, StoredCandles, frame
from trades.outcomes import Bars

from .analysis import Candles
from .analysts.service import get_analyst
from .models import AutomationSession, Bot, CycleRun
from .replay_ahead import WorkedAhead
from .replay_asks import AskedAhead
from .replay_book import Book
from .replay_snapshots import MadeBehind
from .services import session_close

# Replay accounts live under a reserved top-level domain (RFC 2606): no one can sign up with such an address,
# and they cannot log in (inactive, no usable password).
REPLAY_DOMAIN = "replay.invalid"
# Cycles per transaction: one commit per chunk instead of per row keeps SQLite fast, and an interrupted
# replay loses at most one chunk, which it runs again when started again. Fewer when charts are drawn (a
# fifth of a second each), so that SQLite's write lock is not held for long against the site's processes.
CHUNK, CHUNK_WITH_CHARTS = 100, 10
# From this many slots a worker process computes the technical analyses ahead (replay_ahead); below it,
# starting one costs more than it saves.
AHEAD_FROM = 500


@dataclass(frozen=True)
class ReplaySpec:
    exchange: str
    symbol: str
    timeframe: str
    analyst: str = "technical"  # technical | openai
    start: datetime | None = None  # the first slot; None: as early as the candles allow
    end: datetime | None = None  # the last slot; None: the last candle's close

    @property
    def market(self) -> Market:
        return Market(self.exchange, self.symbol, self.timeframe)


class PreloadedCandles(StoredCandles):
    """The market's stored candles read once: each cycle gets the slice `StoredCandles` would have queried,
    the candles whose period ended by `until`."""

    def __init__(self, candles: pd.DataFrame):
        self.frame = candles
        self.all_bars = Bars(candles)

    @classmethod
    def load(cls, market: Market) -> "PreloadedCandles":
        rows = Candle.objects.filter(
            exchange=market.exchange, symbol=market.symbol, timeframe=market.timeframe
        ).values_list("open_time", *COLUMNS)
        return cls(frame(rows))

    def candles(self, market: Market, *, limit: int, until: datetime | None = None) -> pd.DataFrame:
        start, end = self._span(market, limit, until)
        return self.frame.iloc[start:end]

    def open_at(self, market: Market, moment: datetime) -> float | None:
        at = self.all_bars.at(moment)
        return self.all_bars.open[at] if at < len(self.all_bars) else None

    def window(self, market: Market, limit: int, until: datetime | None) -> Candles:
        """`Candles(self.candles(market, limit=limit, until=until))`, their bars cut from the market's
        converted once and their frame made only if asked for."""
        start, end = self._span(market, limit, until)
        return Candles(bars=self.all_bars[start:end], make_frame=lambda: self.frame.iloc[start:end])

    def _span(self, market: Market, limit: int, until: datetime | None) -> tuple[int, int]:
        """Where the `limit` candles whose period ended by `until` lie, [start, end): found among the bars'
        times (a datetime each), without asking pandas for the index's integers and unit each cycle."""
        if until is None:
            raise ValueError("a replay's candles are always asked for as of a slot")
        end = bisect.bisect_right(self.all_bars.times, until - market.period)
        return max(0, end - limit), end


def replay_bot(spec: ReplaySpec) -> Bot:
    """The replay's own account and paper bot, made once per market and analyst; a second replay of the same
    market goes on in them (and skips the slots already run)."""
    slug = re.sub(r"[^a-z0-9]+", "-", f"{spec.exchange} {spec.symbol} {spec.timeframe}".lower()).strip("-")
    return replay_account_bot(
        f"{slug}.{spec.analyst}",
        f"Replay of {spec.symbol} {spec.timeframe}",
        f"Replay {spec.symbol} {spec.timeframe} ({spec.analyst})",
        exchange=spec.exchange,
        symbol=spec.symbol,
        timeframe=spec.timeframe,
        analyst=spec.analyst.upper(),
    )


def replay_account_bot(local_part: str, display_name: str, bot_name: str, **settings) -> Bot:
    """A paper bot with `settings` in an account of its own under REPLAY_DOMAIN (inactive, no password), so
    that what a replay or a backtest runs never mixes with a user's own; both made once, so that a replay
    started again goes on in them."""
    user, made = User.objects.get_or_create(
        email=f"{local_part}@{REPLAY_DOMAIN}", defaults={"is_active": False, "display_name": display_name}
    )
    if made:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    bot, _ = Bot.objects.get_or_create(
        owner=user, name=bot_name, defaults={"mode": Bot.Mode.SIMULATION, **settings}
    )
    return bot


def slots(spec: ReplaySpec, source: PreloadedCandles) -> list[datetime]:
    """The slot at each candle's close, from the first with enough candles before it for the indicators,
    within the spec's start and end."""
    period = spec.market.period
    closes = [t.to_pydatetime() + period for t in source.frame.index[MIN_CANDLES - 1 :]]
    return [
        s for s in closes if (spec.start is None or s >= spec.start) and (spec.end is None or s <= spec.end)
    ]


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    failed: int


def replay(
    spec: ReplaySpec,
    *,
    bot: Bot | None = None,
    progress: Callable[[Progress], None] | None = None,
    draw_charts: bool | None = None,
    chunk: int | None = None,
    ask_concurrency: int | None = None,
) -> Bot:
    """Run the cycles of every slot of `spec` not run yet, in order, into `bot` (by default the replay's own
    account). Charts are drawn for an analyst that looks at them, or when `draw_charts` says so (a demo's
    pages show them). `chunk`: cycles per transaction, when the site's processes must not wait on them for
    long (CHUNK or CHUNK_WITH_CHARTS otherwise). An analyst that asks a model is asked `ask_concurrency`
    calls at a time (REPLAY_ASK_CONCURRENCY by default; 1: one call at a time, by each cycle). Returns the
    bot."""
    bot = bot or replay_bot(spec)
    source = PreloadedCandles.load(spec.market)
    todo = not_run(bot, slots(spec, source))
    if not todo:
        return bot
    analyst = get_analyst(spec.analyst)
    # The technical analyst reads numbers; drawing thousands of charts it never looks at would be most of
    # the replay's time.
    draw = spec.analyst != "technical" if draw_charts is None else draw_charts
    with _running(bot), _fewer_full_collections(), _worked_ahead(spec, source, todo, draw) as ahead:
        if ahead:
            book = Book(
                bot, source, ahead.analyst, indicators_of=ahead.indicators_of, candles_of=source.window
            )
        else:
            book = Book(bot, source, analyst, draw_charts=draw, candles_of=source.window)
        with _made_behind(book, ahead), _asked_ahead(book, todo, draw, ask_concurrency) as asking:
            _run(bot, book, todo, asking, chunk or (CHUNK_WITH_CHARTS if draw else CHUNK), progress)
    return bot


def _run(
    bot: Bot,
    book: Book,
    todo: list[datetime],
    asking: AskedAhead | None,
    size: int,
    progress: Callable[[Progress], None] | None,
) -> None:
    """The cycles of `todo` in order, in transactions of `size` of them."""
    failed, day = 0, None
    for done, chunk in _chunks(todo, size):
        with transaction.atomic():
            for slot in chunk:
                if slot.date() != day:
                    day = slot.date()
                    book.flush()
                    _resume(bot)
                    # What beat does every hour in production, on the replay's clock: the outcome model is
                    # checked, and retrained once a day, on what had resolved by then.
                    retrain(bot.owner, slot)
                    book.new_day()
                if asking:
                    asking.before(slot)
                run = book.cycle(slot)
                failed += run.status == CycleRun.Status.FAILED
            book.flush()
        if progress:
            progress(Progress(done, len(todo), failed))


@contextlib.contextmanager
def _fewer_full_collections():
    """The garbage collector's full passes a hundred times rarer while the replay runs: each walks every
    object the process holds (Django's, pandas', the books'), and the cycles make so many short-lived ones
    that those passes were a twentieth of a replay's time (0.55 s of 10.6 s CPU on 5,000 hours; 0.2 s
    so, with the same peak memory). Garbage that outlives the young generations waits for a later full
    pass, or the first after the replay."""
    young, middle, full = gc.get_threshold()
    gc.set_threshold(young, middle, full * 100)
    try:
        yield
    finally:
        gc.set_threshold(young, middle, full)


def _asked_ahead(book: Book, todo: list[datetime], draw: bool, concurrency: int | None):
    """The calls of each refresh window asked together ahead of its cycles (replay_asks), for an analyst
    that asks a model and more than one call at a time; else nothing to enter."""
    concurrency = settings.REPLAY_ASK_CONCURRENCY if concurrency is None else concurrency
    if hasattr(book.analyst, "request_parts") and concurrency > 1:
        return AskedAhead(book, todo, concurrency, draw=draw)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _made_behind(book: Book, ahead: WorkedAhead | None):
    """Where a worker computes ahead, another makes the books' snapshots behind (replay_snapshots) while
    this is entered; else the books make them."""
    if ahead is None:
        yield
        return
    with MadeBehind(book.scope, book.figures) as behind:
        book.make_snapshots_behind(behind)
        yield


def _worked_ahead(spec: ReplaySpec, source: PreloadedCandles, todo: list[datetime], draw: bool):
    """A worker process computing the indicators and the technical analyst's answers ahead, for a long enough
    replay with that analyst and no charts; else nothing to enter. Not from a daemonic process, which may
    start none: a Celery prefork pool's, where a backtest runs (automation.backtests); there the worker's
    other pool processes have the second core."""
    daemonic = multiprocessing.current_process().daemon
    if spec.analyst == "technical" and not draw and len(todo) >= AHEAD_FROM and not daemonic:
        return WorkedAhead(source, spec.market, todo)
    return contextlib.nullcontext()


def not_run(bot: Bot, wanted: list[datetime]) -> list[datetime]:
    ran = set(CycleRun.objects.filter(bot=bot).values_list("slot", flat=True))
    return [slot for slot in wanted if slot not in ran]


def _chunks(items: list, size: int) -> Iterator[tuple[int, list]]:
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        yield start + len(chunk), chunk


class _running:
    """The bot runs, in a session of its own, while the replay does, and is left as it was."""

    def __init__(self, bot: Bot):
        self.bot = bot

    def __enter__(self):
        self.status = Bot.objects.get(pk=self.bot.pk).status
        self.opened = not AutomationSession.objects.filter(bot=self.bot, stopped_at__isnull=True).exists()
        if self.opened:
            AutomationSession.objects.create(bot=self.bot)
        Bot.objects.filter(pk=self.bot.pk).update(status=Bot.Status.RUNNING)
        return self

    def __exit__(self, *exc):
        if self.opened:
            session_close(self.bot, "replay finished")
        Bot.objects.filter(pk=self.bot.pk).update(status=self.status)


def _resume(bot: Bot) -> None:
    """On each new day: the daily loss limit pauses a bot for the rest of its day; its owner would start it
    again the next day, and so does the replay."""
    # As Bot.objects.filter(...).update(...), in plain SQL (core.plain_sql): 0.18 ms -> 0.04 ms a day.
    if sql.update(Bot, {"id": bot.pk, "status": Bot.Status.PAUSED}, {"status": Bot.Status.RUNNING}):
        AutomationSession.objects.create(bot=bot)
