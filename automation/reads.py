"""The live cycle's reads of its bot's state (automation.cycle.DatabaseLedger) as plain SQL, built once per
process (core.plain_sql), several merged into one statement where the cycle asks for them together:

- the bot, with its owner, the owner's plan, its exchange account and model connection, and its open
  session;
- the figures of the bot's situation the decision reads (automation.steps.situation_of): the closed
  trades' realised P&L, the positions held, the day's closed P&L, the latest closed trades' outcomes, the
  last loss and the bot's runs since it, the operator's kill switch: one statement for seven queries;
- the learned section given earlier in the prompt's window, with the latest insights when there is none;
- the open trades the monitor watches, the latest policy, the active outcome model, the analyses
  awaiting their outcome;
- the count of resolved analyses with the one the latest insights were computed at;
- the prompt's version, and the trade of a client order id.

Each is the query the ORM made (learning.insights.latest, learning.policy.latest_policy, learning.ml.
active_model, learning.resolution.awaiting, trades.accounting), with its filters and order, its values
converted as the ORM converted them; tests/automation/test_reads.py holds each to it."""

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from accounts.models import ExchangeAccount, ModelConnection, Plan, User
from core import plain_sql as sql
from core.values import Outcome
from learning import prompt
from learning.models import AILearningData, InsightSnapshot, LearnedPolicy, PromptVersion, TrainedModel
from trades.accounting import HELD, STREAK_WINDOW
from trades.models import Trade

from .models import AutomationSession, Bot, CycleRun, KillSwitch


@dataclass(frozen=True)
class Figures:
    realised: Decimal
    holding: list[tuple[Decimal, Decimal, Decimal]]  # (price, amount, fees) of each position held
    day_pnls: list[Decimal]  # of the trades closed since the day's start
    latest_outcomes: list[str]  # of the latest STREAK_WINDOW closed trades, newest first
    last_loss: datetime | None
    runs_since_loss: int  # the bot's runs for slots after the last loss, but the one asking
    kill_switch: bool


def _build() -> str:
    trade, run = sql.table(Trade), sql.table(CycleRun)
    bot, status, pnl, outcome, closed = (
        sql.column(Trade, name) for name in ("bot", "status", "pnl", "outcome", "closed_at")
    )
    held = ", ".join(sql.column(Trade, name) for name in ("price", "amount", "fees"))
    created = sql.column(Trade, "created_at")  # the trades' default order (Trade.Meta.ordering)
    last_loss = (
        f"SELECT {closed} FROM {trade} WHERE {bot} = %s AND {outcome} = %s ORDER BY {closed} DESC LIMIT 1"  # noqa: S608
    )
    # One row per figure or position, told apart by the first column; the rows of a list keep its order.
    # The sum is written as the ORM writes Coalesce(Sum()), casts included, so that SQLite computes the same.
    return f"""
        SELECT 'realised', CAST(COALESCE(CAST(SUM({pnl}) AS NUMERIC), CAST(0 AS NUMERIC)) AS NUMERIC),
            {sql.null(Trade, "amount")}, {sql.null(Trade, "fees")}, {sql.null(Trade, "outcome")},
            {sql.null(Trade, "closed_at")}
        FROM {trade} WHERE {bot} = %s AND {status} = %s
        UNION ALL SELECT 'holding', held.*, NULL, NULL FROM (
            SELECT {held} FROM {trade} WHERE {bot} = %s AND {status} IN (%s, %s) ORDER BY {created} DESC
        ) held
        UNION ALL SELECT 'day', day.pnl, NULL, NULL, NULL, NULL FROM (
            SELECT {pnl} AS pnl FROM {trade} WHERE {bot} = %s AND {status} = %s AND {closed} >= %s
            ORDER BY {created} DESC
        ) day
        UNION ALL SELECT 'outcome', NULL, NULL, NULL, latest.outcome, NULL FROM (
            SELECT {outcome} AS outcome FROM {trade} WHERE {bot} = %s AND {status} = %s
            ORDER BY {closed} DESC LIMIT {STREAK_WINDOW}
        ) latest
        UNION ALL SELECT 'loss', NULL, NULL, NULL, NULL, loss.closed_at FROM ({last_loss}) loss
        UNION ALL SELECT 'runs', COUNT(*), NULL, NULL, NULL, NULL FROM {run}
        WHERE {sql.column(CycleRun, "bot")} = %s AND {sql.column(CycleRun, "slot")} > ({last_loss})
            AND NOT ({sql.column(CycleRun, "id")} = %s)
        UNION ALL SELECT 'halted', COUNT(*), NULL, NULL, NULL, NULL
        FROM {sql.table(KillSwitch)} WHERE {sql.column(KillSwitch, "engaged")} = %s
    """  # noqa: S608


SITUATION = sql.statement(_build)


def figures_of(bot: Bot, run: CycleRun | None, day: datetime) -> Figures:
    """The situation's figures of `bot` for `run` (its own run not counted among those since the last
    loss), the day's P&L counted from `day`."""
    closed, loss = Trade.Status.CLOSED, Outcome.LOSS
    since = sql.parameter(Trade, "closed_at", day)
    params = [
        *(bot.pk, closed),
        *(bot.pk, *HELD),
        *(bot.pk, closed, since),
        *(bot.pk, closed),
        *(bot.pk, loss),
        *(bot.pk, bot.pk, loss, run.pk if run else None),
        sql.parameter(KillSwitch, "engaged", True),
    ]
    total = sql.converter(sql.as_computed(Trade, "pnl"))
    price, amount, fees, pnl = (
        sql.converter(sql.as_column(Trade, n)) for n in ("price", "amount", "fees", "pnl")
    )
    moment = sql.converter(sql.as_column(Trade, "closed_at"))
    realised, holding, day_pnls, outcomes, last_loss, runs, halted = Decimal(0), [], [], [], None, 0, False
    for kind, a, b, c, text, at in sql.rows(SITUATION(), params):
        if kind == "realised":
            realised = total(a)
        elif kind == "holding":
            holding.append((price(a), amount(b), fees(c)))
        elif kind == "day":
            day_pnls.append(pnl(a))
        elif kind == "outcome":
            outcomes.append(text)
        elif kind == "loss":
            last_loss = moment(at)
        elif kind == "runs":
            runs = int(a)
        else:
            halted = bool(a)
    return Figures(realised, holding, day_pnls, outcomes, last_loss, runs, halted)


# --- the prompt, the policy, the outcome model, learning ------------------------------------------------
def _latest_snapshot(field: str) -> str:
    snapshot = {
        name: sql.column(InsightSnapshot, name) for name in ("user", "bot", "computed_at", "id", field)
    }
    return (
        f"SELECT {snapshot[field]} FROM {sql.table(InsightSnapshot)} "  # noqa: S608
        f"WHERE {snapshot['user']} = %s AND {snapshot['bot']} = %s "
        f"ORDER BY {snapshot['computed_at']} DESC, {snapshot['id']} DESC LIMIT 1"
    )


def _window_statement() -> str:
    runs, analyses = sql.table(CycleRun), sql.table(AILearningData)
    run = {name: f"{runs}.{sql.column(CycleRun, name)}" for name in ("id", "bot", "slot")}
    analysis = {name: f"{analyses}.{sql.column(AILearningData, name)}" for name in ("id", "cycle_run")}
    section = (
        f"SELECT {analyses}.{sql.column(AILearningData, 'prompt_section')} FROM {runs} "  # noqa: S608
        f"INNER JOIN {analyses} ON {run['id']} = {analysis['cycle_run']} "
        f"WHERE {analysis['id']} IS NOT NULL AND {run['bot']} = %s "
        f"AND {run['slot']} >= %s AND {run['slot']} < %s "
        f"ORDER BY {run['slot']} ASC LIMIT 1"
    )
    # The insights only when the window has no section yet: they are a few kilobytes of JSON.
    return (
        f"SELECT given.section, CASE WHEN given.section IS NULL THEN ({_latest_snapshot('data')}) END "  # noqa: S608
        f"FROM (SELECT ({section}) AS section) given"
    )


WINDOW = sql.statement(_window_statement)


def window_section(bot: Bot, window: tuple[datetime, datetime]) -> tuple[str | None, dict | None]:
    """The section the bot's first analysis in `window` was given (automation.steps.window_section_of),
    and, when there is none yet, the bot's latest insights (learning.insights.latest; None before any)."""
    slot = [sql.parameter(CycleRun, "slot", moment) for moment in window]
    [(section, data)] = sql.rows(WINDOW(), [bot.owner_id, bot.pk, bot.pk, *slot])  # in the statement's order
    return section, sql.converter(sql.as_column(InsightSnapshot, "data"))(data)


def _latest_of(model, where: str, order: str) -> str:
    return f"SELECT {sql.columns(model)} FROM {sql.table(model)} WHERE {where} ORDER BY {order} LIMIT 1"  # noqa: S608


def _policy_statement() -> str:
    bot, created, pk = (sql.column(LearnedPolicy, name) for name in ("bot", "created_at", "id"))
    return _latest_of(LearnedPolicy, f"{bot} = %s", f"{created} DESC, {pk} DESC")


def _model_statement() -> str:
    user, active, created, pk = (
        sql.column(TrainedModel, n) for n in ("user", "is_active", "created_at", "id")
    )
    return _latest_of(TrainedModel, f"{user} = %s AND {active} = %s", f"{created} DESC, {pk} DESC")


POLICY, MODEL = sql.statement(_policy_statement), sql.statement(_model_statement)


def latest_policy(bot: Bot) -> LearnedPolicy | None:
    """learning.policy.latest_policy."""
    found = sql.instances(LearnedPolicy, POLICY(), [bot.pk])
    return found[0] if found else None


def active_model(bot: Bot) -> TrainedModel | None:
    """learning.ml.active_model of the bot's owner."""
    found = sql.instances(
        TrainedModel, MODEL(), [bot.owner_id, sql.parameter(TrainedModel, "is_active", True)]
    )
    return found[0] if found else None


@dataclass(frozen=True)
class DayStanding:
    """What a replay's books read again each simulated day (automation.replay_book.Book.new_day): what can
    change from outside them."""

    session_id: int | None  # the bot's open session (a paused bot's owner started it again)
    trading_halted: bool  # by its owner
    kill_switch: bool  # the operator's, engaged


def _day_statement() -> str:
    sessions, owners, switches = sql.table(AutomationSession), sql.table(User), sql.table(KillSwitch)
    session = {n: sql.column(AutomationSession, n) for n in ("id", "bot", "stopped_at", "started_at")}
    open_session = (
        f"SELECT {session['id']} FROM {sessions} WHERE {session['bot']} = %s "  # noqa: S608
        f"AND {session['stopped_at']} IS NULL ORDER BY {session['started_at']} DESC LIMIT 1"
    )
    halted = f"SELECT {sql.column(User, 'trading_halted')} FROM {owners} WHERE {sql.column(User, 'id')} = %s"  # noqa: S608
    engaged = f"SELECT COUNT(*) FROM {switches} WHERE {sql.column(KillSwitch, 'engaged')} = %s"  # noqa: S608
    return f"SELECT ({open_session}), ({halted}), ({engaged})"


DAY = sql.statement(_day_statement)


def day_standing(bot: Bot) -> DayStanding:
    """The bot's open session (AutomationSession.objects.filter(bot=bot, stopped_at__isnull=True).first()),
    its owner's `trading_halted` and KillSwitch.is_engaged(), in one statement: three queries through the
    ORM were most of a replay's daily reading (0.33 s of CPU over 5,000 hours)."""
    [(session_id, halted, engaged)] = sql.rows(
        DAY(), [bot.pk, bot.owner_id, sql.parameter(KillSwitch, "engaged", True)]
    )
    return DayStanding(session_id, bool(halted), bool(engaged))


def _awaiting_statement() -> str:
    analyses, trades = sql.table(AILearningData), sql.table(Trade)
    analysis = {
        name: f"{analyses}.{sql.column(AILearningData, name)}"
        for name in ("id", "bot", "outcome", "created_at")
    }
    trade = {name: f"{trades}.{sql.column(Trade, name)}" for name in ("id", "analysis", "status")}
    return (
        f"SELECT {sql.columns(AILearningData)} FROM {analyses} "  # noqa: S608
        f"LEFT OUTER JOIN {trades} ON {analysis['id']} = {trade['analysis']} "
        f"WHERE {analysis['bot']} = %s AND {analysis['outcome']} = %s "
        f"AND ({trade['id']} IS NULL OR {trade['status']} = %s) ORDER BY {analysis['created_at']} ASC"
    )


AWAITING = sql.statement(_awaiting_statement)


def awaiting(bot: Bot) -> list[AILearningData]:
    """learning.resolution.awaiting(bot), oldest first."""
    return sql.instances(AILearningData, AWAITING(), [bot.pk, "", Trade.Status.CANCELLED])


def _counts_statement() -> str:
    bot, outcome = sql.column(AILearningData, "bot"), sql.column(AILearningData, "outcome")
    resolved = f"SELECT COUNT(*) FROM {sql.table(AILearningData)} WHERE {bot} = %s AND NOT ({outcome} = %s)"  # noqa: S608
    return f"SELECT ({resolved}), ({_latest_snapshot('resolved_count')})"


COUNTS = sql.statement(_counts_statement)


def resolved_counts(bot: Bot) -> tuple[int, int]:
    """The bot's resolved analyses, and how many there were when its latest insights were computed (0
    before any)."""
    [(resolved, at_snapshot)] = sql.rows(COUNTS(), [bot.pk, "", bot.owner_id, bot.pk])
    return resolved, at_snapshot or 0


def _version_statement() -> str:
    digest, pk = sql.column(PromptVersion, "sha256"), sql.column(PromptVersion, "id")
    return _latest_of(PromptVersion, f"{digest} = %s", f"{pk} ASC")


VERSION = sql.statement(_version_statement)


def prompt_version(section: str) -> PromptVersion:
    """learning.prompt.prompt_version: the stored version of the instructions with this section, stored
    here when it is the first."""
    digest = hashlib.sha256(prompt.prompt_text(section).encode()).hexdigest()
    found = sql.instances(PromptVersion, VERSION(), [digest])
    return found[0] if found else prompt.prompt_version(section)


def _watched_statement() -> str:
    status, simulated, executed = (sql.column(Trade, n) for n in ("status", "is_simulated", "execution_time"))
    return (
        f"SELECT {sql.columns(Trade)} FROM {sql.table(Trade)} "  # noqa: S608
        f"WHERE {sql.column(Trade, 'bot')} = %s AND ({status} = %s OR ({status} = %s AND {simulated} = %s)) "
        f"ORDER BY {executed} ASC"
    )


WATCHED = sql.statement(_watched_statement)


def watched(bot: Bot) -> list[Trade] | None:
    """The bot's open trades in order of execution, as the monitor reads them (trades.monitor.
    monitor_trades), each with `bot` as its bot; None when a live entry is PENDING, which the monitor
    settles first and then reads them itself."""
    simulated = sql.parameter(Trade, "is_simulated", False)
    trades = sql.instances(Trade, WATCHED(), [bot.pk, Trade.Status.OPEN, Trade.Status.PENDING, simulated])
    if any(trade.status == Trade.Status.PENDING for trade in trades):
        return None
    for trade in trades:
        trade.bot = bot
    return trades


# --- the bot ---------------------------------------------------------------------------------------------
# The bot's relations as select_related("owner__plan", "exchange_account", "model_connection") reads them:
# (the model, the model it hangs from, the name of the relation there); the owner is never missing.
_RELATED = [
    (User, Bot, "owner"),
    (Plan, User, "plan"),
    (ExchangeAccount, Bot, "exchange_account"),
    (ModelConnection, Bot, "model_connection"),
]


def _bot_statement(running_only: bool) -> str:
    bots = sql.table(Bot)
    joins = []
    for model, parent, name in _RELATED:
        kind = "INNER" if name == "owner" else "LEFT OUTER"
        on = f"{sql.table(parent)}.{sql.column(parent, name)} = {sql.table(model)}.{sql.column(model, 'id')}"
        joins.append(f"{kind} JOIN {sql.table(model)} ON {on}")
    sessions = sql.table(AutomationSession)
    session = {
        name: f"{sessions}.{sql.column(AutomationSession, name)}"
        for name in ("id", "bot", "stopped_at", "started_at")
    }
    open_session = (
        f"SELECT {session['id']} FROM {sessions} "  # noqa: S608
        f"WHERE {session['bot']} = {bots}.{sql.column(Bot, 'id')} AND {session['stopped_at']} IS NULL "
        f"ORDER BY {session['started_at']} DESC LIMIT 1"
    )
    selected = ", ".join([sql.columns(Bot), *(sql.columns(model) for model, _, _ in _RELATED)])
    where = f"{bots}.{sql.column(Bot, 'id')} = %s" + (
        f" AND {bots}.{sql.column(Bot, 'status')} = %s" if running_only else ""
    )
    return f"SELECT {selected}, ({open_session}) FROM {bots} {' '.join(joins)} WHERE {where}"  # noqa: S608


RUNNING_BOT, ANY_BOT = (
    sql.statement(lambda: _bot_statement(True)),
    sql.statement(lambda: _bot_statement(False)),
)


def bot_to_run(bot_id: int, running_only: bool) -> tuple[Bot | None, int | None]:
    """The bot as the cycle reads it (with `running_only`, only while it runs; else Bot.DoesNotExist when
    there is none), its relations read with it, and the id of its open session (learning and trades record
    the one the run was made in); (None, None) for a bot not running."""
    params = [bot_id, Bot.Status.RUNNING] if running_only else [bot_id]
    found = sql.rows((RUNNING_BOT if running_only else ANY_BOT)(), params)
    if not found:
        if running_only:
            return None, None
        raise Bot.DoesNotExist("Bot matching query does not exist.")
    row, at = found[0], 0
    instances = {}
    for model in (Bot, *(model for model, _, _ in _RELATED)):
        width = len(model._meta.concrete_fields)
        instances[model] = sql.instance(model, row[at : at + width])
        at += width
    for model, parent, name in _RELATED:
        instance = instances[model]
        instances[parent]._state.fields_cache[name] = instance if instance.pk is not None else None
    return instances[Bot], row[at]


def _order_statement() -> str:
    order, created = sql.column(Trade, "client_order_id"), sql.column(Trade, "created_at")
    return _latest_of(Trade, f"{order} = %s", f"{created} DESC")


ORDER = sql.statement(_order_statement)


def trade_of(client_order_id: str) -> Trade | None:
    """Trade.objects.filter(client_order_id=...).first(): the trade of the order, if one was recorded."""
    found = sql.instances(Trade, ORDER(), [client_order_id])
    return found[0] if found else None
