"""One cycle of one bot (SPEC §1), top to bottom:

    claim the slot → prompt (what was learned) → market data → indicators → chart → analysis → record
    → monitor → learn (resolve, insights, policy) → decide → execute

The slot is claimed by creating its CycleRun (unique per bot and slot) and every state change is a
compare-and-swap on the run's status, so duplicate ticks, redeliveries, retries and a second worker find
the slot taken and do nothing. A failing step is recorded on the run with its reason; what was done before
it (the chart, the analysis) stays."""

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from learning.counters import count_recorded
from learning.insights import latest as latest_insights
from learning.insights import snapshot
from learning.ml import gate, reward_risk_of
from learning.models import AILearningData, InsightSnapshot
from learning.policy import effective_policy, learn_policy
from learning.prompt import insights_section, prompt_version
from learning.resolution import resolve_untraded
from market.exchanges import CcxtCandles, has_stored_candles
from market.sources import Market, MarketDataSource, StoredCandles
from trades import entries
from trades.accounting import account, day_loss, losing_streak
from trades.brokers.base import Broker, BrokerError, BrokerTemporaryError, Fill, OrderRequest
from trades.brokers.simulation import SimulationBroker
from trades.models import Trade
from trades.monitor import monitor_trades
from trades.policy import Decision, RiskLimits, Situation, decide

from .analysis import ChartMaker, MarketAnalysis, StepTimer, analyse_market
from .analysts.base import Analyst
from .analysts.service import get_analyst
from .charts.tradingview import shared_capture
from .models import AutomationSession, Bot, CycleRun, KillSwitch
from .quotas import cycle_refusal
from .services import bot_pause

logger = logging.getLogger(__name__)

# A slot that could not start within this share of its period is skipped, not run late: a decision on
# stale candles is worse than none, and the next slot comes soon.
LATE_SHARE = 0.5
# A run RUNNING for longer than this died with its worker (the task's hard time limit is shorter), so a
# redelivered task may take the slot over, and automation.recovery marks it failed.
STALE_RUN = timedelta(seconds=settings.CYCLE_STALE_RUN_SECONDS)
# Seconds between asking the broker again about an order whose fate it could not tell; well inside the
# task's time limit.
PLACE_RETRY_WAITS = (2, 10, 30)


@dataclass(frozen=True)
class Outside:
    """The outside world of a cycle; tests pass fakes, the defaults are the real ones."""

    source: MarketDataSource | None = None
    analyst: Analyst | None = None
    broker: Broker | None = None
    chart: ChartMaker | None = None  # None: the bot's own chart source (chart_for)
    draw_chart: bool = True  # False for an analyst that reads numbers only, in a replay


def slot_of(bot: Bot, moment: datetime) -> datetime:
    """Start of the timeframe period that contains `moment`."""
    period = Market(bot.exchange, bot.symbol, bot.timeframe).period
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return moment - (moment - epoch) % period


def offset_of(bot: Bot) -> timedelta:
    """How far into each period the bot's cycle is due: whole minutes, stable per bot, spread evenly (a
    multiplicative hash of the id), so that a thousand bots do not call the analyst in the same second."""
    minutes = int(Market(bot.exchange, bot.symbol, bot.timeframe).period.total_seconds() // 60)
    return timedelta(minutes=(bot.pk * 2654435761) % 2**32 % minutes)


def claim(bot: Bot, slot: datetime) -> tuple[CycleRun, bool]:
    """The run of this slot, and whether this caller owns it now."""
    try:
        with transaction.atomic():
            session = AutomationSession.objects.filter(bot=bot, stopped_at__isnull=True).first()
            return CycleRun.objects.create(bot=bot, slot=slot, session=session), True
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
    try:
        moved = CycleRun.objects.filter(pk=run.pk, status=old).update(status=new, **fields)
    except (OperationalError, InterfaceError):
        # The server ended the connection (a restart, a failover, an operator): without a new one the run
        # would stay RUNNING and its slot taken for good. Once, and not inside a transaction (a replay's
        # chunk), which a new connection would silently leave; a second failure is the task's to retry.
        if connection.in_atomic_block:
            raise
        connection.close()
        moved = CycleRun.objects.filter(pk=run.pk, status=old).update(status=new, **fields)
    if moved:
        run.refresh_from_db()
    return bool(moved)


def _step_noter(run: CycleRun):
    def note(step: str) -> None:
        # The analysis step starts after its connection was handed back for the analyst's wait
        # (analysis.release_database_connection); noting it must not hold one through that wait.
        released = connection.connection is None
        CycleRun.objects.filter(pk=run.pk).update(step=step)
        if released and not connection.in_atomic_block:
            connection.close()

    return note


def run_cycle(
    bot_id: int, slot: datetime, outside: Outside = Outside(), *, on_schedule: bool = True
) -> CycleRun:
    """Run the bot's cycle for `slot`. A scheduled run (`on_schedule`) that starts too long after it was due
    is skipped; a run the owner asked for (run-now) is never late."""
    bot = Bot.objects.select_related("owner", "exchange_account").get(pk=bot_id)
    run, owned = claim(bot, slot)
    if not owned:
        return run  # a duplicate: the slot is someone else's, running or done
    market = Market(bot.exchange, bot.symbol, bot.timeframe)
    source = outside.source or source_for(market)
    # Stored candles have a market clock, the slot; a live market is read as of now.
    clock = slot if isinstance(source, StoredCandles) else timezone.now()
    if on_schedule and clock - (slot + offset_of(bot)) > market.period * LATE_SHARE:
        _move(
            run,
            CycleRun.Status.CLAIMED,
            CycleRun.Status.SKIPPED,
            finished_at=timezone.now(),
            error=f"started {clock - slot} after its slot; skipped rather than run late",
        )
        return run
    # The plan's caps (cycles a day, the month's LLM spend), before anything is asked of the analyst.
    analyst_name = outside.analyst.name if outside.analyst else bot.analyst.lower()
    if refusal := cycle_refusal(run, analyst_name, timezone.now()):
        skipped = {"finished_at": timezone.now(), "error": refusal}
        _move(run, CycleRun.Status.CLAIMED, CycleRun.Status.SKIPPED, **skipped)
        return run
    if not _move(run, CycleRun.Status.CLAIMED, CycleRun.Status.RUNNING, started_at=timezone.now()):
        return run

    # Each step's start written on the run, so that a run whose worker died says where (automation.recovery).
    timer = StepTimer(on_step=_step_noter(run))
    try:
        section = timer.step("prompt", insights_section, latest_insights(bot.owner, bot=bot))
        analysis = analyse_market(
            market,
            source=source,
            analyst=outside.analyst or get_analyst(bot.analyst.lower()),
            until=clock,
            insights=section,
            timer=timer,
            chart=outside.chart or chart_for(bot),
            chart_owner=f"bot{bot.pk}",
            draw_chart=outside.draw_chart,
        )
        record = timer.step("record", _record, bot, run, analysis, section)
        timer.step("monitor", monitor_trades, bot, analysis.candles, market.period)
        timer.step("learn", learn, bot, analysis.candles, market.period, clock)
        decision = timer.step("decide", _decide, bot, run, record, analysis, clock)
        if decision.trade:
            timer.step("execute", _execute, bot, run, record, analysis, decision, clock, outside.broker)
    except Exception as e:  # any failure is recorded on the run, whatever its kind
        logger.warning("cycle of bot %s slot %s failed in %s: %s", bot.pk, slot, timer.current, e)
        _move(
            run,
            CycleRun.Status.RUNNING,
            CycleRun.Status.FAILED,
            finished_at=timezone.now(),
            timings=timer.timings,
            failed_step=timer.current,
            error=f"{type(e).__name__}: {e}"[:2000],
        )
        return run
    _move(
        run,
        CycleRun.Status.RUNNING,
        CycleRun.Status.SUCCEEDED,
        finished_at=timezone.now(),
        timings=timer.timings,
    )
    return run


def chart_for(bot: Bot) -> ChartMaker | None:
    """A screenshot of the bot's TradingView chart page, or None: the platform's rendered chart, shared by
    every bot on the market."""
    if bot.chart_source != Bot.ChartSource.TRADINGVIEW:
        return None
    url = bot.tradingview_url
    return lambda candles, market, indicators: shared_capture().capture(url)


def source_for(market: Market) -> MarketDataSource:
    if has_stored_candles(market.exchange, market.symbol, market.timeframe):
        return StoredCandles()
    return CcxtCandles(market.exchange)


def learn(bot: Bot, candles, period: timedelta, clock: datetime) -> None:
    """Steps 9-10: resolve the untraded analyses whose horizon has passed; if anything was resolved since
    the bot's last insights (here, by a trade the monitor closed, or between cycles by the monitor task),
    store its insights and learn its policy again."""
    resolve_untraded(bot, candles, period, clock)
    resolved = AILearningData.objects.filter(bot=bot).exclude(outcome="").count()
    last = InsightSnapshot.objects.filter(user=bot.owner, bot=bot).order_by("-computed_at", "-pk").first()
    if resolved != (last.resolved_count if last else 0):
        snapshot(bot.owner, bot=bot)
        learn_policy(bot)


def _record(bot: Bot, run: CycleRun, done: MarketAnalysis, section: str) -> AILearningData:
    """The analysis, written before any order, so that nothing the analyst said is ever lost; counted in the
    insights' running totals in the same transaction."""
    record = new_record(bot, run, done, prompt_version(section), section)
    with transaction.atomic():
        record.save()
        count_recorded(record)
    return record


def new_record(bot: Bot, run: CycleRun, done: MarketAnalysis, version, section: str) -> AILearningData:
    """The analysis as it is recorded, not saved yet."""
    a, result = done.result.analysis, done.result
    return AILearningData(
        prompt_version=version,
        prompt_section=section,
        user=bot.owner,
        bot=bot,
        session=run.session,
        cycle_run=run,
        analysis_data=a.model_dump(),
        market_conditions={**done.indicators.to_dict(), "as_of": done.as_of.isoformat()},
        symbol=bot.symbol,
        timeframe=bot.timeframe,
        market_sentiment=a.market_sentiment,
        recommendation=a.recommendation,
        regime=done.indicators.regime,
        confidence_score=a.confidence,
        predicted_price=_dec(a.predicted_price),
        screenshot=done.chart,
        feedback_data=dict(result.notes),
        analyst=result.analyst,
        model_name=result.model_name,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        cost_usd=result.cost_usd,
    )


def _decide(
    bot: Bot, run: CycleRun, record: AILearningData, done: MarketAnalysis, clock: datetime
) -> Decision:
    books = account(bot)
    last_loss = (
        Trade.objects.filter(bot=bot, outcome="LOSS")
        .order_by("-closed_at")
        .values_list("closed_at", flat=True)
    ).first()
    situation = Situation(
        equity=books.equity,
        cash=books.cash,
        open_trades=books.open_trades,
        day_loss=day_loss(bot, clock.replace(hour=0, minute=0, second=0, microsecond=0)),
        losses_in_a_row=losing_streak(bot),
        cycles_since_last_loss=CycleRun.objects.filter(bot=bot, slot__gt=last_loss).exclude(pk=run.pk).count()
        if last_loss
        else 0,
        halted_by=halted_by(bot),
    )
    verdict = gate(bot.owner, record, reward_risk_of(record))
    decision = decision_for(bot, record, done, effective_policy(bot), verdict, situation)
    record.save(update_fields=["feedback_data", "updated_at"])
    if decision.pause_bot:
        bot_pause(bot, decision.reason)
    return decision


def halted_by(bot: Bot) -> str:
    return "global" if KillSwitch.is_engaged() else "user" if bot.owner.trading_halted else ""


def decision_for(
    bot: Bot, record: AILearningData, done: MarketAnalysis, policy, verdict: dict | None, now: Situation
) -> Decision:
    """The decision on a recorded analysis under the bot's policy, the outcome model's verdict and the
    account's situation, noted on the record's feedback (not saved)."""
    a = done.result.analysis
    avoided = policy.avoids({"regime": record.regime, "market_sentiment": record.market_sentiment})
    decision = decide(
        a.recommendation,
        a.confidence,
        _dec(a.entry),
        _dec(a.stop_loss),
        RiskLimits(
            min_confidence=policy.min_confidence,
            risk_per_trade_pct=bot.risk_per_trade_pct,
            max_position_pct=bot.max_position_pct,
            max_open_trades=bot.max_open_trades,
            daily_loss_limit_pct=bot.daily_loss_limit_pct,
            size_factor=Decimal(str(policy.size_factor)),
            avoided=avoided,
            ml_gate=verdict,
        ),
        now,
    )
    record.feedback_data = {
        **record.feedback_data,
        "decision": {"trade": decision.trade, "reason": decision.reason},
        "policy": {
            "min_confidence": policy.min_confidence,
            "size_factor": policy.size_factor,
            "learned": policy.learned,
        },
        **({"ml_gate": verdict} if verdict else {}),
    }
    return decision


def _execute(
    bot, run, record, done: MarketAnalysis, decision: Decision, clock, broker: Broker | None
) -> Trade:
    order = order_for(bot, run, done, decision)
    existing = Trade.objects.filter(client_order_id=order.client_order_id).first()
    if existing and existing.status != Trade.Status.PENDING:
        return existing  # a retry of this run already recorded its order
    if bot.mode != Bot.Mode.LIVE:
        if broker is None:
            broker = SimulationBroker(account(bot).cash, at=clock)
        trade = new_trade(bot, run, record, done, order, _place(broker, order))
        trade.save()
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


def order_for(bot: Bot, run: CycleRun, done: MarketAnalysis, decision: Decision) -> OrderRequest:
    a = done.result.analysis
    return OrderRequest(
        symbol=bot.symbol,
        side=a.recommendation,
        amount=decision.amount,
        price=Decimal(str(done.indicators.close)),
        client_order_id=f"tai-{run.pk}-open",
        stop_loss=_dec(a.stop_loss),
        take_profit=_dec(a.take_profit),
    )


def new_trade(
    bot: Bot,
    run: CycleRun,
    record: AILearningData,
    done: MarketAnalysis,
    order: OrderRequest,
    fill: Fill | None,
) -> Trade:
    """The trade the fill opened, not saved yet; without a fill, the PENDING trade written ahead of the
    order, at the amount and price it was decided at."""
    a = done.result.analysis
    trade = Trade(
        owner=bot.owner,
        bot=bot,
        session=run.session,
        analysis=record,
        is_simulated=bot.mode == Bot.Mode.SIMULATION,
        symbol=bot.symbol,
        side=a.recommendation,
        amount=order.amount,
        price=order.price,
        stop_loss=order.stop_loss,
        take_profit=order.take_profit,
        status=Trade.Status.PENDING,
        is_automated=True,
        confidence=a.confidence,
        market_sentiment=a.market_sentiment,
        learning_data={"horizon": a.horizon},
        client_order_id=order.client_order_id,
    )
    if fill is not None:
        for name, value in entries.fill_fields(trade.learning_data, fill).items():
            setattr(trade, name, value)
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


def _dec(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))
