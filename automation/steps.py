"""The steps of a bot's cycle, written once for the live cycle and the replay:

    prompt (what was learned) → market data → indicators → chart → analysis → record → monitor
    → learn (resolve, insights, policy) → decide → execute

over a `Ledger`: where the cycle's inputs are read from and its results written to. `automation.cycle`'s
`DatabaseLedger` reads and writes the database row by row, as a worker among others must (its claim of the
slot and the compare-and-swap moves of the run's status stay around the steps, in `run_cycle`);
`automation.replay_book.Book` keeps them in memory and writes them in bulk, for a replay's one process.
Everything that decides lives here or in the functions the steps call: the trading situation (cash, equity,
the day's loss, the losing streak, the cycles since the last loss) is computed here from the figures a ledger
hands over, the monitor's pass is `trades.monitor.watch`, resolving the untraded calls
`learning.resolution.resolve_due`; a ledger only keeps and hands over rows."""

import logging
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from django.conf import settings

from learning.conditions import conditions_of
from learning.ml import reward_risk_of, verdict
from learning.models import AILearningData, LearnedPolicy, PromptVersion, TrainedModel
from learning.policy import CounterTable, effective_policy, relearn
from learning.prompt import insights_section
from learning.resolution import resolve_due
from market.errors import MarketDataError
from market.sources import Market
from trades import entries
from trades.accounting import account_of, loss_of, streak_of
from trades.brokers.base import BrokerError, Fill, OrderRequest
from trades.brokers.simulation import SimulationBroker, paper_costs
from trades.models import Trade
from trades.outcomes import Bars
from trades.policy import Decision, RiskLimits, Situation, decide

from .analysis import MarketAnalysis, StepTimer, analyse_market
from .analysts.base import AnalystError
from .charts.errors import ChartError
from .models import Bot, CycleRun, KillSwitch
from .schedule import prompt_window

logger = logging.getLogger(__name__)

# What the outside world is expected to do now and then (an analyst, a market, an exchange or a chart page
# failing): logged in a line. Anything else is a fault of ours, logged with its traceback.
EXPECTED_ERRORS = (AnalystError, MarketDataError, BrokerError, ChartError)


class Ledger(Protocol):
    """What a cycle's steps read and write, for one bot."""

    bot: Bot
    market: Market

    # prompt and record
    def insights(self) -> dict | None: ...
    def window_section(self, window: tuple[datetime, datetime]) -> str | None: ...
    def prompt_version(self, section: str) -> PromptVersion: ...
    def add_record(self, record: AILearningData) -> AILearningData: ...

    # monitor: `trades.monitor.watch` over the open trades, closing through the ledger
    def monitor(self, bars: Bars) -> None: ...

    # learn
    def awaiting(self) -> list[tuple[AILearningData, datetime]]: ...
    def settle(self, analysis: AILearningData, fields: dict) -> bool: ...
    def forget(self, analysis: AILearningData) -> None: ...
    def resolved_count(self) -> int: ...
    def snapshot_resolved(self) -> int: ...
    def snapshot(self) -> None: ...
    def policy_counters(self) -> tuple[dict, CounterTable]: ...
    def policy_window(self, bot_ids: list[int]) -> dict: ...
    def policy_calls(self) -> int: ...
    def keep_policy(self, policy: LearnedPolicy, new: bool) -> None: ...

    # decide: the situation's figures, the policy, the outcome model
    def realised(self) -> Decimal: ...
    def holding(self) -> list[tuple[Decimal, Decimal, Decimal]]: ...
    def closed_pnls(self, since: datetime) -> list[Decimal]: ...
    def latest_outcomes(self) -> list[str]: ...
    def last_loss(self) -> datetime | None: ...
    def runs_after(self, moment: datetime, run: CycleRun) -> int: ...
    def halted_by(self) -> str: ...
    def latest_policy(self) -> LearnedPolicy | None: ...
    def outcome_model(self) -> TrainedModel | None: ...
    def noted(self, record: AILearningData) -> None: ...
    def pause(self, reason: str) -> None: ...

    # execute
    def execute(
        self, run: CycleRun, record: AILearningData, done: MarketAnalysis, decision: Decision, clock: datetime
    ) -> Trade: ...


def run_steps(
    ledger: Ledger, run: CycleRun, clock: datetime, timer: StepTimer, **analysis
) -> Exception | None:
    """The cycle's steps for `run` at `clock` on `ledger`; `analysis` goes to `analyse_market` (the source,
    the analyst, the chart). Returns the error that stopped them, logged, or None: the caller records it on
    the run."""
    try:
        section = timer.step("prompt", prompt_section, ledger, clock)
        done = analyse_market(ledger.market, until=clock, insights=section, timer=timer, **analysis)
        record = timer.step("record", _record, ledger, run, done, section)
        timer.step("monitor", ledger.monitor, done.candles.bars)
        timer.step("learn", learn, ledger, done.candles.bars, clock)
        decision = timer.step("decide", _decide, ledger, run, record, done, clock)
        if decision.trade:
            timer.step("execute", ledger.execute, run, record, done, decision, clock)
    except Exception as e:  # any failure is recorded on the run, whatever its kind
        log = logger.warning if isinstance(e, EXPECTED_ERRORS) else logger.exception
        log("cycle of bot %s slot %s failed in %s: %s", ledger.bot.pk, run.slot, timer.current, e)
        return e
    return None


def prompt_section(ledger: Ledger, clock: datetime) -> str:
    """The learned section of the prompt at `clock`, refreshed once per window of market time
    (`schedule.prompt_window`): the window's first cycle is given what had been learned before it, and the
    others the same section, so that the window's requests differ only by their charts and can be asked
    together, ahead of the cycles (automation/replay_asks.py). Learning and deciding stay slot by slot."""
    given = ledger.window_section(prompt_window(clock))
    if given is not None:
        return given
    policy = ledger.latest_policy()
    return insights_section(ledger.insights(), policy.patterns if policy else [])


def window_section_of(bot: Bot, window: tuple[datetime, datetime]) -> str | None:
    """The section the bot's first analysis in `window` was given, as stored; None before there is one."""
    runs = CycleRun.objects.filter(bot=bot, slot__gte=window[0], slot__lt=window[1], analysis__isnull=False)
    return runs.order_by("slot").values_list("analysis__prompt_section", flat=True).first()


def _record(ledger: Ledger, run: CycleRun, done: MarketAnalysis, section: str) -> AILearningData:
    """The analysis, written before any order, so that nothing the analyst said is ever lost."""
    return ledger.add_record(new_record(ledger.bot, run, done, ledger.prompt_version(section), section))


def learn(ledger: Ledger, bars: Bars, clock: datetime) -> None:
    """Resolve the untraded analyses whose horizon has passed; if anything was resolved since the bot's last
    insights (here, by a trade the monitor closed, or between cycles by the monitor task), store its insights
    and learn its policy again."""
    market, bot = ledger.market, ledger.bot
    # A live bot's calls are scored at its account's fee tier, a paper bot's at the market's costs.
    account = bot.exchange_account if bot.mode == bot.Mode.LIVE else None
    costs = paper_costs(market.exchange, market.symbol, account)
    resolve_due(ledger.awaiting(), bars, market.period, clock, ledger.settle, costs, ledger.forget)
    if ledger.resolved_count() != ledger.snapshot_resolved():
        ledger.snapshot()
        learn_policy(ledger)


def learn_policy(ledger: Ledger) -> None:
    """`learning.policy.learn_policy` on the ledger's policy totals, once POLICY_RELEARN_CALLS more BUY/SELL
    calls resolved in the pool than the policy in force learned from: one more call moves the evidence by
    little, and learning again costs a pass over every candidate condition."""
    current = ledger.latest_policy()
    due = current is None or (
        ledger.policy_calls() - current.sample_sizes.get("calls", 0) >= settings.POLICY_RELEARN_CALLS
    )
    if due:
        ledger.keep_policy(*relearn(ledger.bot, current, *ledger.policy_counters(), ledger.policy_window))


def situation_of(ledger: Ledger, run: CycleRun, clock: datetime) -> Situation:
    books = account_of(ledger.bot.starting_balance, ledger.realised(), ledger.holding())
    last_loss = ledger.last_loss()
    return Situation(
        equity=books.equity,
        cash=books.cash,
        open_trades=books.open_trades,
        day_loss=loss_of(ledger.closed_pnls(clock.replace(hour=0, minute=0, second=0, microsecond=0))),
        losses_in_a_row=streak_of(ledger.latest_outcomes()),
        cycles_since_last_loss=ledger.runs_after(last_loss, run) if last_loss else 0,
        halted_by=ledger.halted_by(),
    )


def _decide(
    ledger: Ledger, run: CycleRun, record: AILearningData, done: MarketAnalysis, clock: datetime
) -> Decision:
    bot = ledger.bot
    situation = situation_of(ledger, run, clock)
    gated = verdict(ledger.outcome_model(), record, reward_risk_of(record))
    decision = decision_for(
        bot, record, done, effective_policy(bot, ledger.latest_policy()), gated, situation
    )
    ledger.noted(record)
    if decision.pause_bot:
        ledger.pause(decision.reason)
    return decision


def halted_by(bot: Bot, engaged: bool | None = None) -> str:
    """Who halted the bot's trading: the operator's kill switch (`engaged`, when the caller read it with
    other figures), its owner, or no one."""
    if engaged is None:
        engaged = KillSwitch.is_engaged()
    return "global" if engaged else "user" if bot.owner.trading_halted else ""


def decision_for(
    bot: Bot, record: AILearningData, done: MarketAnalysis, policy, verdict: dict | None, now: Situation
) -> Decision:
    """The decision on a recorded analysis under the bot's policy, the outcome model's verdict and the
    account's situation, noted on the record's feedback (not saved)."""
    a = done.result.analysis
    avoided = policy.refusal({**conditions_of(record), "confidence": a.confidence})
    size = policy.size_for(a.confidence)
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
            size_factor=Decimal(str(size)),
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
            "size_factor": size,
            "learned": policy.learned,
            "patterns": len(policy.patterns),
        },
        **({"ml_gate": verdict} if verdict else {}),
    }
    return decision


def new_record(bot: Bot, run: CycleRun, done: MarketAnalysis, version, section: str) -> AILearningData:
    """The analysis as it is recorded, not saved yet."""
    a, result = done.result.analysis, done.result
    return AILearningData(
        prompt_version=version,
        prompt_section=section,
        user=bot.owner,
        bot=bot,
        session_id=run.session_id,
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
        billed_to=AILearningData.BilledTo.OPERATOR
        if result.connection_id is None
        else AILearningData.BilledTo.OWNER,
        model_connection_id=result.connection_id,
        answer_id=result.answer_id,
        llm_call=result.call,
    )


def order_for(bot: Bot, run: CycleRun, done: MarketAnalysis, decision: Decision) -> OrderRequest:
    a = done.result.analysis
    return OrderRequest(
        symbol=bot.symbol,
        side=a.recommendation,
        amount=decision.amount,
        price=Decimal(str(done.price)),
        client_order_id=f"tai-{run.pk}-open",
        stop_loss=_dec(a.stop_loss),
        take_profit=_dec(a.take_profit),
    )


def paper_broker(ledger: Ledger, clock: datetime) -> SimulationBroker:
    """The paper broker of a paper bot's order, with the cash the account has, at the market's costs."""
    cash = account_of(ledger.bot.starting_balance, ledger.realised(), ledger.holding()).cash
    return SimulationBroker(cash, paper_costs(ledger.market.exchange, ledger.market.symbol), at=clock)


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
        session_id=run.session_id,
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
        for name, value in entries.fill_fields(trade, fill).items():
            setattr(trade, name, value)
    return trade


def _dec(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))
