"""Backtests: the replay (automation.replay) of a stored market between two slots with a user's policy
settings, run by `run_backtest_task` on the default queue (CPU work, no outside calls), its progress written
on the `Backtest` row as it goes and its report (automation.evaluation's figures) stored there when done.

Each backtest replays into an account of its own under `replay.invalid` (inactive, no password), like the
`replay` command's, so its cycles, analyses and trades are not the owner's: they never show in the owner's
bots, insights or trades, nor count against the owner's cycles a day. The technical analyst only: it is
deterministic and costs nothing, where an OpenAI backtest of thousands of cycles would spend the month's cap
in an afternoon. Starting one is automation/backtest_start.py, above the task it sends."""

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.core.serializers.json import DjangoJSONEncoder
from django.db import InterfaceError, OperationalError
from django.db.models import Count, Max, Min
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from market.indicators import MIN_CANDLES
from market.models import Candle
from market.timeframes import TIMEFRAME_PERIODS

from .evaluation import evaluate
from .models import Backtest, Bot
from .replay import Progress, ReplaySpec, replay, replay_account_bot

logger = logging.getLogger(__name__)

# The analyst of every backtest (see above).
ANALYST = "technical"
# The replay reports its progress after each chunk of 100 cycles, a second or less, and the evaluation
# takes seconds: a RUNNING backtest that has not moved for this long lost its worker.
STALE_BACKTEST = timedelta(minutes=15)
# What a backtest may take (its task's soft time limit): the plan's candles at a replay's few hundred cycles a
# second take minutes, so this is reached only by a worker far slower or far busier than it should be.
TIME_LIMIT = timedelta(minutes=30)
# Failures that are the database's, not the backtest's: the task retries them (the replay resumes where
# it stopped, a slot's run being unique per bot).
TRANSIENT = (OperationalError, InterfaceError)


@dataclass(frozen=True)
class StoredRange:
    """A market with stored candles, and which of its slots a backtest can replay: from the close of the
    MIN_CANDLES-th candle (the indicators need that many before a slot) to the last candle's close."""

    exchange: str
    symbol: str
    timeframe: str
    first_open: datetime
    last_open: datetime
    candles: int

    @property
    def key(self) -> str:
        return f"{self.exchange}|{self.symbol}|{self.timeframe}"

    @property
    def period(self) -> timedelta:
        return TIMEFRAME_PERIODS[self.timeframe]

    @property
    def last_slot(self) -> datetime:
        return self.last_open + self.period

    def first_slot(self) -> datetime | None:
        """None when the market has too few candles for a single slot."""
        opens = self.candle_rows().order_by("open_time").values_list("open_time", flat=True)
        warmed = opens[MIN_CANDLES - 1 : MIN_CANDLES]
        return warmed[0] + self.period if warmed else None

    def slots_between(self, start: datetime, end: datetime) -> int:
        """The candles whose close falls within [start, end]: the cycles a backtest of that range runs, or
        a few more where the range starts before the first slot."""
        return (
            self.candle_rows()
            .filter(open_time__gte=start - self.period, open_time__lte=end - self.period)
            .count()
        )

    def candle_rows(self):
        return Candle.objects.filter(exchange=self.exchange, symbol=self.symbol, timeframe=self.timeframe)


def stored_markets() -> list[StoredRange]:
    """Every market with stored candles, with their first and last open times and count: one GROUP BY over
    the candles' unique index."""
    rows = (
        Candle.objects.values("exchange", "symbol", "timeframe")
        .annotate(first_open=Min("open_time"), last_open=Max("open_time"), candles=Count("pk"))
        .order_by("exchange", "symbol", "timeframe")
    )
    return [StoredRange(**row) for row in rows]


def backtest_bot(backtest: Backtest) -> Bot:
    """The backtest's own account and paper bot, with its settings; made once, so that a task delivered again
    goes on in them."""
    return replay_account_bot(
        f"backtest-{backtest.pk}",
        f"Backtest {backtest.pk}",
        f"Backtest {backtest.pk}",
        exchange=backtest.exchange,
        symbol=backtest.symbol,
        timeframe=backtest.timeframe,
        analyst=Bot.Analyst.TECHNICAL,
        starting_balance=backtest.starting_balance,
        risk_per_trade_pct=backtest.risk_per_trade_pct,
        max_open_trades=backtest.max_open_trades,
        daily_loss_limit_pct=backtest.daily_loss_limit_pct,
        min_confidence=backtest.min_confidence,
    )


def backtest_run(backtest_id: int) -> None:
    """Replay the backtest, then store its report; a failure is stored in words. A backtest QUEUED, or RUNNING
    when its task is delivered again after its worker was lost, is run (on from where it stopped); one over
    is left alone."""
    now = timezone.now()
    claimed = Backtest.objects.filter(
        pk=backtest_id, status__in=(Backtest.Status.QUEUED, Backtest.Status.RUNNING)
    ).update(status=Backtest.Status.RUNNING, updated_at=now)
    if not claimed:
        return
    Backtest.objects.filter(pk=backtest_id, started_at__isnull=True).update(started_at=now)
    backtest = Backtest.objects.get(pk=backtest_id)
    try:
        if backtest.bot is None:
            backtest.bot = backtest_bot(backtest)
            Backtest.objects.filter(pk=backtest.pk).update(bot=backtest.bot)
        spec = ReplaySpec(
            backtest.exchange, backtest.symbol, backtest.timeframe, ANALYST, backtest.start, backtest.end
        )
        replay(spec, bot=backtest.bot, progress=lambda p: _progress(backtest.pk, p))
        figures = evaluate(backtest.bot, start=backtest.start, end=backtest.end)
        Backtest.objects.filter(pk=backtest.pk, status=Backtest.Status.RUNNING).update(
            status=Backtest.Status.DONE,
            # As the report's report.json has it: times as ISO 8601 text (report_figures reads them back).
            report=json.loads(json.dumps(figures, cls=DjangoJSONEncoder)),
            finished_at=timezone.now(),
        )
    except TRANSIENT:
        raise
    except SoftTimeLimitExceeded:
        backtest_fail(
            backtest.pk,
            f"Stopped after {TIME_LIMIT}, longer than a backtest may take, at cycle {_done(backtest.pk)}: "
            "choose a shorter range.",
        )
    except Exception as e:
        logger.exception("backtest %s failed", backtest.pk)
        backtest_fail(backtest.pk, f"The replay stopped on an error: {type(e).__name__}: {e}")


def _done(backtest_id: int) -> int:
    return Backtest.objects.filter(pk=backtest_id).values_list("cycles_done", flat=True).get()


def _progress(backtest_id: int, progress: Progress) -> None:
    """One UPDATE per chunk of cycles (automation.replay.CHUNK), after the chunk's commit."""
    Backtest.objects.filter(pk=backtest_id, status=Backtest.Status.RUNNING).update(
        cycles_done=progress.done,
        cycles_total=progress.total,
        cycles_failed=progress.failed,
        updated_at=timezone.now(),
    )


def backtest_fail(backtest_id: int, error: str) -> bool:
    """Mark a backtest that has not ended FAILED with `error`; False when it had ended."""
    return bool(
        Backtest.objects.filter(
            pk=backtest_id, status__in=(Backtest.Status.QUEUED, Backtest.Status.RUNNING)
        ).update(status=Backtest.Status.FAILED, error=error, finished_at=timezone.now())
    )


def fail_lost_backtests() -> int:
    """Backtests left RUNNING by a worker that died (their progress stopped moving), failed with the reason,
    so that they no longer hold their owner's place; returns how many. Run by the recovery sweep."""
    cutoff = timezone.now() - STALE_BACKTEST
    lost = Backtest.objects.filter(status=Backtest.Status.RUNNING, updated_at__lt=cutoff)
    failed = 0
    for pk, done in lost.values_list("pk", "cycles_done"):
        failed += backtest_fail(
            pk,
            f"The worker running it stopped after {done} cycles: no progress for {STALE_BACKTEST}. "
            "Start a new one.",
        )
    return failed


def backtest_progress(backtest: Backtest) -> dict:
    """Where a backtest stands, for its page's progress bar and the API."""
    return {
        "status": backtest.status,
        "status_display": backtest.get_status_display(),
        "cycles_done": backtest.cycles_done,
        "cycles_total": backtest.cycles_total,
        "cycles_failed": backtest.cycles_failed,
        "error": backtest.error,
    }


def report_figures(backtest: Backtest) -> dict:
    """The stored report with the times the report's template formats as datetimes again."""
    figures = json.loads(json.dumps(backtest.report))  # a copy, whatever the page does with it
    window = figures["window"]
    for name in ("first_slot", "last_slot"):
        window[name] = window[name] and parse_datetime(window[name])
    for trade in figures["costs"]["trades"]:
        trade["closed_at"] = trade["closed_at"] and parse_datetime(trade["closed_at"])
    return figures
