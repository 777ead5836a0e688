"""One cycle of one bot, top to bottom:

    claim the slot → the steps (automation.steps: prompt → market data → indicators → chart → analysis
    → record → monitor → learn → decide → execute) on the database's ledger → the run's outcome

The slot is claimed by creating its CycleRun (unique per bot and slot) and every state change is a
compare-and-swap on the run's status, so duplicate ticks, redeliveries, retries and a second worker find
the slot taken and do nothing. A failing step is recorded on the run with its reason; what was done before
it (the chart, the analysis) stays."""

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from core import plain_sql as sql
from core.log_context import log_context
from learning.counters import count_recorded
from learning.insights import latest as latest_insights
from learning.insights import snapshot
from learning.models import AILearningData, InsightSnapshot
from learning.policy import (
    CounterTable,
    keep_policy,
    policy_calls_resolved,
    policy_counters,
    policy_window,
)
from learning.resolution import due_at, resolve_traded, settle
from market.sources import Market, MarketDataSource, StoredCandles
from trades import accounting, entries
from trades.brokers.base import Broker, BrokerError, BrokerTemporaryError, Fill, OrderRequest
from trades.models import Trade
from trades.monitor import monitor_trades
from trades.policy import Decision
from trades.signals import trade_opened

from . import reads, shared_reads
from .analysis import ChartMaker, MarketAnalysis, StepTimer
from .analysts.base import Analyst, AnalystError
from .analysts.service import analyst_for
from .charts.tradingview import shared_capture
from .metrics import Tally, count_analyst, count_run
from .models import Bot, CycleRun
from .notices import run_failed
from .quotas import charged_to_operator, cycle_refusal
from .reads import Figures, figures_of
from .schedule import LATE_SHARE, STALE_RUN, offset_of
from .services import bot_pause
from .steps import halted_by, new_trade, order_for, paper_broker, run_steps

logger = logging.getLogger(__name__)

# Seconds between asking the broker again about an order whose fate it could not tell: 42 s in all, counted
# in what a cycle may take (schedule.STALE_RUN).
PLACE_RETRY_WAITS = (2, 10, 30)


@dataclass(frozen=True)
class Outside:
    """The outside world of a cycle; tests pass fakes, the defaults are the real ones."""

    source: MarketDataSource | None = None
    analyst: Analyst | None = None
    broker: Broker | None = None
    chart: ChartMaker | None = None  # None: the bot's own chart source (chart_for)
    draw_chart: bool = True  # False for an analyst that reads numbers only, in a replay


def claim(bot: Bot, slot: datetime, session_id: int | None) -> tuple[CycleRun, bool]:
    """The run of this slot, in the bot's open session (`session_id`, read with the bot), and whether this
    caller owns it now."""
    try:
        with transaction.atomic():
            return sql.insert(CycleRun(bot=bot, slot=slot, session_id=session_id)), True
    except IntegrityError:
        run = CycleRun.objects.get(bot=bot, slot=slot)
    # A worker that died between claiming and finishing leaves its run behind; take it over, once.
    cutoff = timezone.now() - STALE_RUN
    stale = (
        CycleRun.objects.filter(pk=run.pk)
        .filter(
            Q(status=CycleRun.Status.RUNNING, started_at__lt=cutoff)
            | Q(status=CycleRun.Status.CLAIMED, created_at__lt=cutoff)
        )
        .update(status=CycleRun.Status.CLAIMED)
    )
    run.refresh_from_db()
    return run, bool(stale)


def _move(run: CycleRun, old: str, new: str, **fields) -> bool:
    # As CycleRun.objects.filter(pk=run.pk, status=old).update(...), in plain SQL (core.plain_sql).
    where, values = {"id": run.pk, "status": old}, {"status": new, **fields}
    try:
        moved = sql.update(CycleRun, where, values)
    except (OperationalError, InterfaceError):
        # The server ended the connection (a restart, a failover, an operator): without a new one the run
        # would stay RUNNING and its slot taken for good. Once, and not inside a transaction (a replay's
        # chunk), which a new connection would silently leave; a second failure is the task's to retry.
        if connection.in_atomic_block:
            raise
        connection.close()
        moved = sql.update(CycleRun, where, values)
    if moved:
        # What was written, set on the run as it is: reading the row back cost a query, and dropped the run's
        # cached session, which recording the analysis and the trade then read again.
        run.status = str(new)  # as read back: the value, not the choice
        for name, value in fields.items():
            setattr(run, name, value)
    return bool(moved)


def _step_noter(run: CycleRun):
    # Ten steps a cycle: written as plain SQL, since building the same UPDATE through the ORM each time cost
    # more CPU than the rest of the note (bench/bench_cycles.py's profile).
    quote = connection.ops.quote_name
    meta = CycleRun._meta
    # Only the model's own names are formatted in; the values go as parameters.
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {quote(meta.get_field('step').column)} = %s "  # noqa: S608
        f"WHERE {quote(meta.pk.column)} = %s"
    )

    def note(step: str) -> None:
        # The analysis step starts after its connection was handed back for the analyst's wait
        # (analysis.release_database_connection); noting it must not hold one through that wait.
        released = connection.connection is None
        with connection.cursor() as cursor:
            cursor.execute(sql, [step, run.pk])
        run.step = step
        if released and not connection.in_atomic_block:
            connection.close()

    return note


def run_cycle(
    bot_id: int,
    slot: datetime,
    outside: Outside = Outside(),
    *,
    on_schedule: bool = True,
    running_only: bool = False,
) -> CycleRun | None:
    """Run the bot's cycle for `slot`. A scheduled run (`on_schedule`) that starts too long after it was due
    is skipped; a run the owner asked for (run-now) is never late. With `running_only` (a queued task's), a
    bot stopped or paused since then runs nothing: None, and no run."""
    # Whether it runs asked with the bot's own read rather than by a query of its own before it.
    bot, session_id = reads.bot_to_run(bot_id, running_only)
    if bot is None:
        return None
    run, owned = claim(bot, slot, session_id)
    if not owned:
        return run  # a duplicate: the slot is someone else's, running or done
    tally = Tally()  # what the run adds to the metrics (automation.metrics), saved once at its end
    try:
        with log_context(user=bot.owner_id, bot=bot.pk, run=run.pk, slot=slot.isoformat()):
            return _run_claimed(bot, run, slot, outside, on_schedule, tally)
    finally:
        tally.save()


def _end(tally: Tally, run: CycleRun, old: str, new: str, **fields) -> bool:
    """The run moved to where it ended, and counted, if it was still `old`."""
    if not _move(run, old, new, **fields):
        return False
    count_run(tally, run)
    return True


def _run_claimed(
    bot: Bot, run: CycleRun, slot: datetime, outside: Outside, on_schedule: bool, tally: Tally
) -> CycleRun:
    market = Market(bot.exchange, bot.symbol, bot.timeframe)
    source = outside.source or shared_reads.source_of(market)
    # Stored candles have a market clock, the slot; a live market is read as of now.
    stored = isinstance(source, StoredCandles | shared_reads.SharedCandles)
    clock = slot if stored else timezone.now()
    lateness = clock - (slot + offset_of(bot))
    if on_schedule and not stored:
        tally.observe("tradingai_cycle_lateness_seconds", max(lateness.total_seconds(), 0))
    if on_schedule and lateness > market.period * LATE_SHARE:
        late = f"started {clock - slot} after its slot; skipped rather than run late"
        _end(
            tally,
            run,
            CycleRun.Status.CLAIMED,
            CycleRun.Status.SKIPPED,
            finished_at=timezone.now(),
            error=late,
        )
        logger.info("cycle skipped: %s", late)
        return run
    # The plan's caps (cycles a day, the month's LLM spend), before anything is asked of the analyst.
    if refusal := cycle_refusal(run, charged_to_operator(bot, outside.analyst), timezone.now()):
        skipped = {"finished_at": timezone.now(), "error": refusal}
        _end(tally, run, CycleRun.Status.CLAIMED, CycleRun.Status.SKIPPED, **skipped)
        logger.info("cycle skipped: %s", refusal)
        return run
    if not _move(run, CycleRun.Status.CLAIMED, CycleRun.Status.RUNNING, started_at=timezone.now()):
        return run

    # Each step's start written on the run, so that a run whose worker died says where (automation.recovery);
    # the calls that wait on the outside world bounded (their deadlines are what schedule.STALE_RUN counts
    # on).
    limits = {"analysis": settings.ANALYST_DEADLINE_SECONDS, "chart": settings.CHART_DEADLINE_SECONDS}
    timer = StepTimer(on_step=_step_noter(run), limits=limits)
    try:
        analyst = outside.analyst or analyst_for(bot)
    except AnalystError as e:
        # No analyst to ask (no OPENAI_API_KEY, a model connection's key unreadable): the run fails at its
        # analysis, as a call refused for the same reason would, instead of leaving it RUNNING.
        logger.warning("cycle failed: %s", e)
        error = f"{type(e).__name__}: {e}"[:2000]
        failed = {"finished_at": timezone.now(), "failed_step": "analysis", "error": error}
        _end(tally, run, CycleRun.Status.RUNNING, CycleRun.Status.FAILED, **failed)
        return run
    ledger = DatabaseLedger(bot, market, outside.broker, run=run, clock=clock)
    failure = run_steps(
        ledger,
        run,
        clock,
        timer,
        source=source,
        analyst=analyst,
        chart=outside.chart or chart_for(bot),
        chart_owner=f"bot{bot.pk}",
        draw_chart=outside.draw_chart,
        indicators_of=lambda market, candles: shared_reads.indicators_of(market, candles.frame),
    )
    if failure is not None:
        _end(
            tally,
            run,
            CycleRun.Status.RUNNING,
            CycleRun.Status.FAILED,
            finished_at=timezone.now(),
            timings=timer.timings,
            failed_step=timer.current,
            error=f"{type(failure).__name__}: {failure}"[:2000],
        )
        count_analyst(tally, run, analyst.name, failure, ledger.recorded)
        run_failed(run, bot)
        return run
    _end(
        tally,
        run,
        CycleRun.Status.RUNNING,
        CycleRun.Status.SUCCEEDED,
        finished_at=timezone.now(),
        timings=timer.timings,
    )
    count_analyst(tally, run, analyst.name, None, ledger.recorded)
    logger.info("cycle succeeded; its steps took %.1f s", sum(timer.timings.values()))
    return run


class DatabaseLedger:
    """The steps' ledger (automation.steps.Ledger) of a live cycle: every read a query, every write a row
    written at once, as a worker among others, and the monitor task between cycles, must see them."""

    def __init__(
        self,
        bot: Bot,
        market: Market,
        broker: Broker | None,
        *,
        run: CycleRun | None = None,
        clock: datetime | None = None,
    ):
        self.bot, self.market, self.broker = bot, market, broker
        self.recorded: list[AILearningData] = []  # the analyses stored, for the run's metrics (count_analyst)
        # The figures of the bot's situation (steps.situation_of) for `run` at `clock`, read in one statement
        # when the decision asks for the first of them, and kept for the paper broker's cash moments later.
        # Read afresh after a monitor pass, which may close trades.
        self._run = run
        self._day = clock.replace(hour=0, minute=0, second=0, microsecond=0) if clock else None
        self._figures: Figures | None = None
        # What a read merged with the one before it gave for the next (automation.reads): the latest
        # insights read with the window's section, the latest snapshot's count with the resolved count.
        self._insights: tuple[dict | None] | None = None
        self._snapshot_resolved: int | None = None

    def insights(self) -> dict | None:
        if self._insights is not None:
            (insights,), self._insights = self._insights, None
            return insights
        return latest_insights(self.bot.owner, bot=self.bot)

    def window_section(self, window: tuple[datetime, datetime]) -> str | None:
        section, insights = reads.window_section(self.bot, window)
        self._insights = None if section is not None else (insights,)
        return section

    def prompt_version(self, section: str):
        return reads.prompt_version(section)

    def add_record(self, record: AILearningData) -> AILearningData:
        # Counted in the insights' running totals in the same transaction.
        with transaction.atomic():
            sql.insert(record)
            count_recorded(record)
        self.recorded.append(record)
        return record

    def monitor(self, bars) -> None:
        self._figures = None
        period, watched = self.market.period, reads.watched(self.bot)
        monitor_trades(self.bot, bars, period, resolve=resolve_traded, open_trades=watched)

    def awaiting(self) -> list:
        period = self.market.period
        return [(analysis, due_at(analysis, period)) for analysis in reads.awaiting(self.bot)]

    def settle(self, analysis: AILearningData, fields: dict) -> bool:
        return settle(analysis, fields)

    def forget(self, analysis: AILearningData) -> None:
        pass  # read again each cycle; a monitor pass with a longer look-back may still resolve it

    def resolved_count(self) -> int:
        resolved, self._snapshot_resolved = reads.resolved_counts(self.bot)
        return resolved

    def snapshot_resolved(self) -> int:
        if self._snapshot_resolved is not None:
            at_snapshot, self._snapshot_resolved = self._snapshot_resolved, None
            return at_snapshot
        bot = self.bot
        last = InsightSnapshot.objects.filter(user=bot.owner, bot=bot).order_by("-computed_at", "-pk").first()
        return last.resolved_count if last else 0

    def snapshot(self) -> None:
        snapshot(self.bot.owner, bot=self.bot)

    def policy_counters(self) -> tuple[dict, CounterTable]:
        return policy_counters(self.bot)

    def policy_window(self, bot_ids: list[int]) -> dict:
        return policy_window(bot_ids)

    def policy_calls(self) -> int:
        return policy_calls_resolved(self.bot)

    def keep_policy(self, policy, new: bool) -> None:
        keep_policy(policy, new)

    def realised(self) -> Decimal:
        return self._read_figures().realised

    def holding(self) -> list:
        return self._read_figures().holding

    def _read_figures(self) -> "Figures":
        if self._figures is None:
            self._figures = figures_of(self.bot, self._run, self._day or timezone.now())
        return self._figures

    def closed_pnls(self, since: datetime) -> list[Decimal]:
        if since != self._day:
            return accounting.closed_pnls(self.bot, since)
        return self._read_figures().day_pnls

    def latest_outcomes(self) -> list[str]:
        return self._read_figures().latest_outcomes

    def last_loss(self) -> datetime | None:
        return self._read_figures().last_loss

    def runs_after(self, moment: datetime, run: CycleRun) -> int:
        figures = self._read_figures()
        if run is not self._run or moment != figures.last_loss:
            return CycleRun.objects.filter(bot=self.bot, slot__gt=moment).exclude(pk=run.pk).count()
        return figures.runs_since_loss

    def halted_by(self) -> str:
        return halted_by(self.bot, engaged=self._read_figures().kill_switch)

    def latest_policy(self):
        return reads.latest_policy(self.bot)

    def outcome_model(self):
        return reads.active_model(self.bot)

    def noted(self, record: AILearningData) -> None:
        # As record.save(update_fields=["feedback_data", "updated_at"]), in plain SQL (core.plain_sql).
        record.updated_at = timezone.now()
        sql.update(
            AILearningData,
            {"id": record.pk},
            {"feedback_data": record.feedback_data, "updated_at": record.updated_at},
        )

    def pause(self, reason: str) -> None:
        bot_pause(self.bot, reason)

    def execute(self, run, record, done, decision, clock) -> Trade:
        return _execute(self, run, record, done, decision, clock)


def chart_for(bot: Bot) -> ChartMaker | None:
    """A screenshot of the bot's TradingView chart page, or None: the platform's rendered chart, shared by
    every bot on the market."""
    if bot.chart_source != Bot.ChartSource.TRADINGVIEW:
        return None
    url = bot.tradingview_url
    return lambda candles, market, indicators: shared_capture().capture(url)


def _execute(
    ledger: DatabaseLedger, run: CycleRun, record, done: MarketAnalysis, decision: Decision, clock
) -> Trade:
    bot, broker = ledger.bot, ledger.broker
    order = order_for(bot, run, done, decision)
    existing = reads.trade_of(order.client_order_id)
    if existing and existing.status != Trade.Status.PENDING:
        return existing  # a retry of this run already recorded its order
    if bot.mode != Bot.Mode.LIVE:
        trade = new_trade(bot, run, record, done, order, _place(broker or paper_broker(ledger, clock), order))
        sql.insert(trade)
        trade_opened.send(sender=Trade, trade=trade)
        return trade
    if broker is None:
        from trades.brokers.live import LiveBroker

        broker = LiveBroker(bot.exchange_account)
    # Written ahead of the order (trades.entries): a fill the exchange made is never a position we do not see.
    trade = existing or new_trade(bot, run, record, done, order, None)
    if trade.pk is None:
        trade.save()
    try:
        fill = _place(broker, order)
    except BrokerTemporaryError:
        raise  # whether it was taken is unknown: PENDING, counted, settled from the exchange after this run
    except BrokerError as e:
        entries.cancel(trade, f"{type(e).__name__}: {e}")
        raise
    entries.record_fill(trade, fill)
    return trade


def _place(broker: Broker, order: OrderRequest) -> Fill:
    """The order placed, asking again while the exchange cannot say whether it took it: the same client
    order id finds the first order rather than placing a second, and an order that went through but is not
    recorded here would be a position no one watches."""
    for wait in PLACE_RETRY_WAITS:
        try:
            return broker.place(order)
        except BrokerTemporaryError as e:
            logger.warning("placing %s: %s; asking again in %s s", order.client_order_id, e, wait)
            time.sleep(wait)
    return broker.place(order)
