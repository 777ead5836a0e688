"""A replay's books: the replay bot's cycles run with their bookkeeping in memory and written in bulk, so that
five thousand hours replay in seconds rather than minutes.

A live cycle (`automation.cycle.run_cycle`) pays some forty queries a slot: its inputs read back and its
results written a row at a time, which is what a worker among others needs and nothing next to the analyst's
seconds. A replay is one process running one bot's slots in order, so nothing else writes what its cycles
read: the books hold it instead (the open and closed trades, the analyses waiting for their outcome, the
insights' and the policy's running totals, the latest insights and policy, the outcome model, the runs'
slots) and write each chunk's new and changed rows in a few bulk statements.

The books are the steps' second ledger (`automation.steps.Ledger`; the database's is
`automation.cycle.DatabaseLedger`): a replay's cycle is `run_steps` on them, the function `run_cycle` calls,
and everything that decides lives there and in what it calls (the situation, the monitor's pass, resolving
the untraded calls, learning the policy, the decision, the paper broker). The books only keep rows and
totals, hand them over and write them. tests/automation/test_ledger_contract.py holds both ledgers to the
same behaviour; tests/automation/test_replay.py replays the same hours through `run_cycle` and through the
books and finds the same rows."""

import bisect
import functools
import json
import logging
import operator
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import orjson
from django.db import connection, models
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import Max, Min
from django.utils import timezone

from core.values import Outcome
from learning.counters import (
    POLICY_SUMS,
    RECORDED,
    SUMS,
    add_totals,
    insight_key,
    policy_row,
    resolved_figures,
)
from learning.insights import Rows, Scope, insights_from, summed_counters, trades_figures, version_names
from learning.models import AILearningData, InsightSnapshot, LearnedPolicy, PolicyCounter, PromptVersion
from learning.policy import POLICY_ROW, REFRESHED, CounterTable, PolicyTotals, policy_calls
from learning.prompt import prompt_text, prompt_version
from learning.resolution import awaiting, due_at, traded_fields
from market.indicators import Indicators, compute
from market.sources import Market, MarketDataSource
from trades.accounting import STREAK_WINDOW
from trades.models import Trade
from trades.monitor import closing_fields, watch
from trades.outcomes import Bars
from trades.policy import Decision

from .analysis import Candles, StepTimer
from .analysts.base import Analyst
from .models import Bot, CycleRun
from .quotas import charged_to_operator, spend_refusal, spent_this_month
from .reads import active_model, day_standing
from .replay_snapshots import MadeBehind
from .schedule import prompt_window
from .services import bot_pause
from .steps import halted_by, new_trade, order_for, paper_broker, run_steps, window_section_of

logger = logging.getLogger(__name__)

OUTCOME_FIELDS = ["outcome", "actual_price", "accuracy_score", "outcome_r", "untraded", "resolved_at"]
CLOSING_FIELDS = ["status", "exit_price", "fees", "pnl", "pnl_percent", "actual_rr", "outcome", "closed_at"]


class Book:
    """The state a replay bot's cycles read, loaded once from the database, kept in memory as the cycles
    change it, and written by `flush`."""

    def __init__(
        self,
        bot: Bot,
        source: MarketDataSource,
        analyst: Analyst,
        *,
        draw_charts: bool = False,
        indicators_of: Callable[[Market, Candles], Indicators] | None = None,
        candles_of: Callable[[Market, int, datetime | None], Candles] | None = None,
    ):
        self.bot = Bot.objects.select_related("owner").get(pk=bot.pk)
        if self.bot.mode != Bot.Mode.SIMULATION:
            raise ValueError("only a paper bot can be replayed")
        self.market = Market(self.bot.exchange, self.bot.symbol, self.bot.timeframe)
        self.source, self.analyst, self.draw_charts = source, analyst, draw_charts
        # Nothing else reads them: computed, not stored for other bots to share.
        self.indicators_of = indicators_of or (lambda market, candles: compute(candles.frame))
        self.candles_of = candles_of
        self.scope = Scope(self.bot.owner_id, self.bot.pk)
        self._load_trades()
        self._load_learning()
        self.slots = sorted(CycleRun.objects.filter(bot=self.bot).values_list("slot", flat=True))
        self.stored_last = self.slots[-1] if self.slots else None  # the last slot run before these books
        self.versions: dict[str, PromptVersion] = {}  # by prompt_text
        self.last_version: tuple[str, PromptVersion] | None = None  # the last section given, and its version
        # The prompt's refresh window the cycles are in, and the section its first analysis was given.
        self.window: tuple[datetime, datetime] | None = None
        self.section: str | None = None
        self.new_day()
        self._clear()

    # --- loading --------------------------------------------------------------------------------------------
    def _load_trades(self) -> None:
        trades = Trade.objects.filter(bot=self.bot).select_related("analysis", "bot")
        self.open = list(trades.filter(status=Trade.Status.OPEN).order_by("execution_time", "pk"))
        self.closed: list[Trade] = []
        self.realised_pnl = Decimal(0)
        self.last_loss_at: datetime | None = None
        self.trade_sums = {"n": 0, "wins": 0, "pct": Decimal(0), "pct_n": 0, "r": Decimal(0), "r_n": 0}
        self.gains, self.losses = Decimal(0), Decimal(0)
        for trade in trades.filter(status=Trade.Status.CLOSED).order_by("closed_at", "pk"):
            self._closed(trade)

    def _load_learning(self) -> None:
        bot = self.bot
        # The untraded analyses waiting for their outcome, in the order they were made, with when their
        # horizon passes (keyed by id(): the dict holds them, so no id is reused while they wait).
        self.pending: dict[int, tuple[AILearningData, datetime]] = {}
        for analysis in awaiting(bot).order_by("created_at", "pk"):
            self._wait(analysis)
        self.resolved = AILearningData.objects.filter(bot=bot).exclude(outcome="").count()
        self.figures = summed_counters(self.scope)
        self.rows = Rows()  # the insights' rows, kept from one snapshot to the next
        self.counted: list[list[tuple]] = []  # what moved the counters since the last snapshot
        self.behind: MadeBehind | None = None  # who makes the snapshots, when not these books
        self.names_sent = 0  # how many of version_names it has
        self.version_names: dict[int, str] = {}  # the prompt versions' hashes by id, as insights show them
        self.alike = {
            pk: (symbol, timeframe)
            for pk, symbol, timeframe in Bot.objects.filter(
                owner_id=bot.owner_id, analyst=bot.analyst
            ).values_list("pk", "symbol", "timeframe")
        }
        # The policy's running totals (PolicyCounter), moved by `settle` and handed to each relearning
        self.policy_totals = PolicyTotals(
            PolicyCounter.objects.filter(user_id=bot.owner_id, bot_id__in=list(self.alike)).values(
                *POLICY_ROW, *POLICY_SUMS
            )
        )
        # Each bot's earliest and latest resolved call: the policy's data window.
        self.windows = {
            row["bot_id"]: [row["first"], row["last"]]
            for row in policy_calls(bot_id__in=list(self.alike))
            .values("bot_id")
            .annotate(first=Min("resolved_at"), last=Max("resolved_at"))
            .order_by()
        }
        snapshot = (
            InsightSnapshot.objects.filter(user=bot.owner, bot=bot).order_by("-computed_at", "-pk").first()
        )
        self.insights_data = snapshot.data if snapshot else None
        self.snapshot_count = snapshot.resolved_count if snapshot else 0
        self.policy = LearnedPolicy.objects.filter(bot=bot).order_by("-created_at", "-pk").first()
        self.calls = self.policy_totals.table().calls()  # the pool's resolved calls

    def new_day(self) -> None:
        """What can change between a replay's days from outside the books: the session (a paused bot
        started again), the outcome model (retrained), the kill switches."""
        standing = day_standing(self.bot)
        self.session_id = standing.session_id
        self.model = active_model(self.bot)
        self.bot.owner.trading_halted = standing.trading_halted
        self.halted = halted_by(self.bot, standing.kill_switch)
        # The plan's monthly LLM spend binds a replay with a paid analyst as it binds live cycles; read after
        # the day's flush, and counted on by _record (automation.quotas says why the daily cap does not).
        self.paid = self.analyst is not None and charged_to_operator(self.bot, self.analyst)
        self.spent = spent_this_month(self.bot.owner, timezone.now()) if self.paid else Decimal(0)

    def _clear(self) -> None:
        self.new_runs: list[CycleRun] = []
        self.new_analyses: list[AILearningData] = []
        self.new_trades: list[Trade] = []
        self.new_snapshots: list[_Snapshot] = []
        self.new_policies: list[LearnedPolicy] = []
        self.changed_analyses: dict[int, AILearningData] = {}
        self.changed_trades: dict[int, Trade] = {}
        self.changed_policies: dict[int, LearnedPolicy] = {}
        self.insight_deltas: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0.0, 0.0])
        self.policy_deltas: dict[tuple, list] = defaultdict(lambda: [0] * len(POLICY_SUMS))

    # --- the cycle ------------------------------------------------------------------------------------------
    def cycle(self, slot: datetime) -> CycleRun:
        """`run_cycle` for one slot, on the books: the same steps (automation.steps), timed the same way."""
        if self.paid and (refusal := spend_refusal(self.bot.owner, self.spent, timezone.now())):
            return self._skipped(slot, refusal)
        run = CycleRun(
            bot=self.bot,
            slot=slot,
            session_id=self.session_id,
            status=CycleRun.Status.RUNNING,
            started_at=timezone.now(),
        )
        self.new_runs.append(run)
        timer = StepTimer()
        failure = run_steps(
            self,
            run,
            slot,
            timer,
            source=self.source,
            analyst=self.analyst,
            draw_chart=self.draw_charts,
            indicators_of=self.indicators_of,
            candles_of=self.candles_of,
        )
        if failure is None:
            run.status = CycleRun.Status.SUCCEEDED
        else:
            run.status, run.failed_step = CycleRun.Status.FAILED, timer.current
            run.error = f"{type(failure).__name__}: {failure}"[:2000]
        run.step, run.finished_at, run.timings = timer.current, timezone.now(), timer.timings
        self.slots.append(slot)
        return run

    def _skipped(self, slot: datetime, reason: str) -> CycleRun:
        skipped = {"status": CycleRun.Status.SKIPPED, "finished_at": timezone.now(), "error": reason}
        run = CycleRun(bot=self.bot, slot=slot, session_id=self.session_id, **skipped)
        self.new_runs.append(run)
        self.slots.append(slot)
        return run

    # --- the ledger (automation.steps.Ledger): what the steps read and write, kept here ---------------------
    def make_snapshots_behind(self, behind: MadeBehind) -> None:
        """Have `behind` (automation/replay_snapshots.py) make the snapshots from now on."""
        self.behind = behind
        self.counted, self.names_sent = [], 0

    def insights(self) -> dict | None:
        if self.behind:
            self._take_made()
        return self.insights_data

    def window_section(self, window: tuple[datetime, datetime]) -> str | None:
        # Read from the database once per window, where a run before these books may have given it (a replay
        # resumed in the middle of one), then kept; the books' own cycles run in order, and give it in
        # add_record.
        if self.window != window:
            stored = self.stored_last is not None and self.stored_last >= window[0]
            self.window, self.section = window, window_section_of(self.bot, window) if stored else None
        return self.section

    def prompt_version(self, section: str) -> PromptVersion:
        # A window's cycles are given the same section: its figures masked once, not by each (26 µs a cycle).
        if self.last_version is None or self.last_version[0] != section:
            text = prompt_text(section)
            version = self.versions.get(text)
            if version is None:
                version = self.versions[text] = prompt_version(section)
                self.version_names[version.pk] = version.sha256
            self.last_version = section, version
        return self.last_version[1]

    def add_record(self, record: AILearningData) -> AILearningData:
        record = _as_stored(record)
        self.new_analyses.append(record)
        self.spent += record.cost_usd
        self._wait(record)
        self._count(record, [RECORDED])
        if self.section is None and prompt_window(record.cycle_run.slot) == self.window:
            self.section = record.prompt_section
        return record

    def monitor(self, bars: Bars) -> None:
        watch(self.open, bars, self.market.period, lambda trade: None, self._close)

    def _close(self, trade: Trade, exit, fee: Decimal) -> bool:
        for name, value in closing_fields(trade, exit, fee).items():
            setattr(trade, name, value)
        self.open.remove(trade)
        self._closed(trade)
        if trade.pk:
            self.changed_trades[trade.pk] = trade
        self.settle(trade.analysis, traded_fields(trade.analysis, trade))
        return True

    def awaiting(self) -> list[tuple[AILearningData, datetime]]:
        return list(self.pending.values())

    def forget(self, analysis: AILearningData) -> None:
        del self.pending[id(analysis)]

    def resolved_count(self) -> int:
        return self.resolved

    def snapshot_resolved(self) -> int:
        return self.snapshot_count

    def snapshot(self) -> None:
        unnamed = {v: {} for v in self.figures["prompt_version"] if v and int(v) not in self.version_names}
        if unnamed:  # a version given before a resumed replay, resolved only now
            self.version_names |= version_names(unnamed)
        if self.behind:
            # In the order the books first moved them, so that a counter new to the worker comes in the order
            # it came to the books' own counters.
            moved = dict.fromkeys(
                (dimension, value) for counted in self.counted for dimension, value, *_ in counted
            )
            names = dict(list(self.version_names.items())[self.names_sent :])
            self.names_sent = len(self.version_names)
            self.behind.add(
                [(d, v, _SUMS_OF(self.figures[d][v])) for d, v in moved], self._trades_sums(), names
            )
        else:
            data = insights_from(
                self.scope, self.figures, trades_figures(**self._trades_sums()), self.version_names, self.rows
            )
            self.new_snapshots.append(_Snapshot(self.bot.owner_id, self.bot.pk, data["resolved"], data))
            self.insights_data = data
        self.counted = []
        self.snapshot_count = self.resolved

    def _take_made(self) -> None:
        """The snapshots made behind so far, kept to be written; the latest is the insights."""
        made = self.behind.made()
        self.new_snapshots += [
            _Snapshot(self.bot.owner_id, self.bot.pk, resolved, _Encoded(data)) for resolved, data in made
        ]
        if made:
            self.insights_data = orjson.loads(made[-1][1])

    def policy_counters(self) -> tuple[dict, CounterTable]:
        return self.alike, self.policy_totals.table()

    def policy_window(self, bot_ids: list[int]) -> dict:
        spans = [self.windows[pk] for pk in bot_ids if pk in self.windows]
        return {
            "data_from": min((first for first, _ in spans), default=None),
            "data_to": max((last for _, last in spans), default=None),
        }

    def policy_calls(self) -> int:
        return self.calls

    def keep_policy(self, policy: LearnedPolicy, new: bool) -> None:
        if new:
            self.new_policies.append(policy)
        elif policy.pk:
            self.changed_policies[policy.pk] = policy
        self.policy = policy

    def realised(self) -> Decimal:
        return self.realised_pnl

    def holding(self) -> list[tuple[Decimal, Decimal, Decimal]]:
        return [(t.price, t.amount, t.fees) for t in self.open]

    def closed_pnls(self, since: datetime) -> list[Decimal]:
        # The closed trades are kept in closing order: today's are at the end.
        first = bisect.bisect_left(self.closed, since, key=lambda t: t.closed_at)
        return [t.pnl for t in self.closed[first:]]

    def latest_outcomes(self) -> list[str]:
        return [t.outcome for t in reversed(self.closed[-STREAK_WINDOW:])]

    def last_loss(self) -> datetime | None:
        return self.last_loss_at

    def runs_after(self, moment: datetime, run: CycleRun) -> int:
        # self.slots holds the slots run before this one, in order.
        return len(self.slots) - bisect.bisect_right(self.slots, moment)

    def halted_by(self) -> str:
        return self.halted

    def latest_policy(self) -> LearnedPolicy | None:
        return self.policy

    def outcome_model(self):
        return self.model

    def noted(self, record: AILearningData) -> None:
        pass  # a new record: written by flush, with its feedback

    def pause(self, reason: str) -> None:
        bot_pause(self.bot, reason)
        self.session_id = None

    def execute(
        self, run: CycleRun, record: AILearningData, done, decision: Decision, clock: datetime
    ) -> Trade:
        order = order_for(self.bot, run, done, decision)
        trade = _as_stored(
            new_trade(self.bot, run, record, done, order, paper_broker(self, clock).place(order))
        )
        self.new_trades.append(trade)
        self.open.append(trade)
        del self.pending[id(record)]  # traded: its trade will resolve it
        return trade

    # --- bookkeeping ----------------------------------------------------------------------------------------
    def settle(self, analysis: AILearningData, fields: dict) -> bool:
        """`learning.resolution.settle` on the books: the outcome written once, counted in the totals."""
        if analysis.outcome:
            return False
        for name, value in fields.items():
            setattr(analysis, name, value)
        self.pending.pop(id(analysis), None)
        if analysis.pk:
            self.changed_analyses[analysis.pk] = analysis
        self.resolved += 1
        self._count(analysis, resolved_figures(analysis))
        row = policy_row(analysis)
        if row:
            self.calls += 1
            sums = row[len(POLICY_ROW) + 1 :]
            self.policy_totals.add(row[1 : len(POLICY_ROW) + 1], sums)
            delta = self.policy_deltas[row[: len(POLICY_ROW) + 1]]
            for i, value in enumerate(sums):
                delta[i] += value
            span = self.windows.setdefault(analysis.bot_id, [analysis.resolved_at, analysis.resolved_at])
            span[0], span[1] = min(span[0], analysis.resolved_at), max(span[1], analysis.resolved_at)
        return True

    def _wait(self, analysis: AILearningData) -> None:
        self.pending[id(analysis)] = (analysis, due_at(analysis, self.market.period))

    def _count(self, analysis: AILearningData, increments: list[tuple]) -> None:
        # Each sum added by name, unrolled: a loop over SUMS for each of a resolution's dozen figures cost
        # more than the rest of settling it.
        user, bot, symbol, timeframe = insight_key(analysis)
        figures, deltas = self.figures, self.insight_deltas
        self.counted.append(increments)
        for dimension, value, n, hits, scored, confidence_sum, squared_error in increments:
            figure = figures[dimension].get(value)
            if figure is None:
                figure = figures[dimension][value] = dict.fromkeys(SUMS, 0)
            figure["n"] += n
            figure["hits"] += hits
            figure["scored"] += scored
            figure["confidence_sum"] += confidence_sum
            figure["squared_error"] += squared_error
            delta = deltas[(user, bot, symbol, timeframe, dimension, value)]
            delta[0] += n
            delta[1] += hits
            delta[2] += scored
            delta[3] += confidence_sum
            delta[4] += squared_error

    def _closed(self, trade: Trade) -> None:
        bisect.insort(self.closed, trade, key=lambda t: t.closed_at)
        self.realised_pnl += trade.pnl
        if trade.outcome == Outcome.LOSS and (
            self.last_loss_at is None or trade.closed_at > self.last_loss_at
        ):
            self.last_loss_at = trade.closed_at
        sums = self.trade_sums
        sums["n"] += 1
        sums["wins"] += trade.outcome == Outcome.WIN
        if trade.pnl_percent is not None:
            sums["pct"] += trade.pnl_percent
            sums["pct_n"] += 1
        if trade.actual_rr is not None:
            sums["r"] += trade.actual_rr
            sums["r_n"] += 1
        if trade.pnl > 0:
            self.gains += trade.pnl
        elif trade.pnl < 0:
            self.losses += trade.pnl

    def _trades_sums(self) -> dict:
        """The closed trades' figures as `trades_figures` takes them."""
        sums = self.trade_sums
        return {
            "n": sums["n"],
            "wins": sums["wins"],
            "expectancy_pct": sums["pct"] / sums["pct_n"] if sums["pct_n"] else None,
            "expectancy_r": sums["r"] / sums["r_n"] if sums["r_n"] else None,
            "gains": self.gains,
            "losses": self.losses,
        }

    def flush(self) -> None:
        """Write what the cycles since the last flush made and changed: a few bulk statements."""
        if self.behind:
            self.behind.send()  # its last snapshots made while the other rows are written
        now = timezone.now()
        _create(CycleRun, self.new_runs)
        _create(AILearningData, self.new_analyses)
        for trade in self.new_trades:
            # The order's id names its run, which has its key only now.
            trade.client_order_id = f"tai-{trade.analysis.cycle_run.pk}-open"
            trade.exchange_order_id = f"paper-{trade.client_order_id}"
        _create(Trade, self.new_trades)
        for row in (*self.changed_analyses.values(), *self.changed_trades.values()):
            row.updated_at = now
        _update(
            AILearningData, self.changed_analyses.values(), [*OUTCOME_FIELDS, "feedback_data", "updated_at"]
        )
        _update(Trade, self.changed_trades.values(), [*CLOSING_FIELDS, "learning_data", "updated_at"])
        if self.behind:
            self._take_made()
        for snapshot in self.new_snapshots:
            snapshot.computed_at = now
        # Nothing refers to them, so they need no keys back: one executemany (bulk_create spent more time
        # preparing these large rows than writing them).
        _write(InsightSnapshot, self.new_snapshots, ["user", "bot", "computed_at", "resolved_count", "data"])
        _create(LearnedPolicy, self.new_policies)
        _update(
            LearnedPolicy,
            self.changed_policies.values(),
            REFRESHED,
        )
        add_totals(self.insight_deltas, self.policy_deltas)
        self._clear()


class _Encoded(str):
    """A JSON value encoded already (by automation/replay_snapshots.py's worker): written as it is."""


# A counter's sums in SUMS' order.
_SUMS_OF = operator.itemgetter(*SUMS)


@dataclass(slots=True)
class _Snapshot:
    """An InsightSnapshot's row as `_write` reads it: nothing refers to one, so it needs no model instance,
    whose making cost more than its writing."""

    user_id: int
    bot_id: int
    resolved_count: int
    data: dict | str  # a dict, or JSON encoded already (_Encoded)
    computed_at: datetime | None = None


def _as_stored(row: models.Model) -> models.Model:
    """Decimals at the places their columns keep, as a cycle reading its rows back would see them."""
    for attname, places in _decimal_places(type(row)):
        value = getattr(row, attname)
        if isinstance(value, Decimal):
            setattr(row, attname, value.quantize(places))
    return row


@functools.cache
def _decimal_places(model: type[models.Model]) -> list[tuple[str, Decimal]]:
    """The model's decimal fields, each with the step its column keeps."""
    return [
        (field.attname, Decimal(1).scaleb(-field.decimal_places))
        for field in model._meta.concrete_fields
        if isinstance(field, models.DecimalField)
    ]


def _create(model: type[models.Model], rows: list[models.Model]) -> None:
    """`bulk_create` of the rows, their keys set from the database's RETURNING, in statements of as many rows
    as the database takes parameters for; without the query compiler's work for every value, which, with
    the JSON encoding, was most of a replay's writing. SQLite (3.35 and later) and PostgreSQL return the
    keys in the order of the rows, as bulk_create relies on too."""
    if not rows:
        return
    meta, quote = model._meta, connection.ops.quote_name
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    values_of = list(zip(map(_value_of, fields), _params(fields), strict=True))
    relations = _relations(model)
    names = ", ".join(quote(field.column) for field in fields)
    row_values = "(" + ", ".join(["%s"] * len(fields)) + ")"
    size = connection.ops.bulk_batch_size(fields, rows)
    for start in range(0, len(rows), size):
        batch = rows[start : start + size]
        params = []
        for row in batch:
            _link(row, relations)
            params += [param(value(row)) for value, param in values_of]
        values = ", ".join([row_values] * len(batch))
        # Only the model's own table and column names are formatted in; every value is a parameter.
        sql = (
            f"INSERT INTO {quote(meta.db_table)} ({names}) VALUES {values} "  # noqa: S608
            f"RETURNING {quote(meta.pk.column)}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            keys = [key for (key,) in cursor.fetchall()]
        for row, key in zip(batch, keys, strict=True):
            row.pk = key
            row._state.adding, row._state.db = False, connection.alias


@functools.cache
def _relations(model: type[models.Model]) -> list[models.Field]:
    return [field for field in model._meta.concrete_fields if field.is_relation]


def _link(row: models.Model, relations: list[models.Field]) -> None:
    """`row._prepare_related_fields_for_save("bulk_create")` over the row's relations only (it walks every
    field, a fifth of preparing a row): each key taken from the row it was given, which has one only once
    written (a run before its analysis); a related row not written is refused, as bulk_create refuses it."""
    for field in relations:
        if not field.is_cached(row) or (related := field.get_cached_value(row)) is None:
            continue
        if related.pk is None:
            raise ValueError(
                f"bulk_create() prohibited to prevent data loss due to unsaved related object '{field.name}'."
            )
        if getattr(row, field.attname) in field.empty_values:
            # As the relation's descriptor sets it: the key, then the related row kept (setting the key
            # alone forgets it, and reading it again would query it).
            setattr(row, field.attname, getattr(related, field.target_field.attname))
            field.set_cached_value(row, related)


def _params(fields: list[models.Field]) -> list[Callable[[object], object]]:
    """`_param_of` of each field, made once per process and kind of connection: making them asks the
    connection through its thread-local proxy, which at every flush was a twentieth of the flush."""
    return _params_for(tuple(fields), connection.vendor, connection.timezone)


@functools.cache
def _params_for(fields: tuple[models.Field, ...], vendor: str, timezone) -> list[Callable[[object], object]]:
    return [_param_of(field) for field in fields]


@functools.cache
def _value_of(field: models.Field) -> Callable[[models.Model], object]:
    """`field.pre_save(row, True)` as a function of the row: the attribute itself where the field's class
    keeps Field's (most do; a date set on creation or a file does not)."""
    if type(field).pre_save is models.Field.pre_save:
        return operator.attrgetter(field.attname)
    return lambda row: field.pre_save(row, True)


# The fields whose get_db_prep_save hands a value of their own Python type (or None) over as it is on every
# backend, and only converts others (str(), float(), bool()); a key to an auto field too, whose int is not
# adapted as an integer field's is (PostgreSQL's wraps those). Asking each field for each value was half of
# the writing.
_AS_IS = {models.CharField: str, models.TextField: str, models.FloatField: float, models.BooleanField: bool}
_AUTO_KEYS = (models.AutoField, models.BigAutoField)


def _param_of(field: models.Field) -> Callable[[object], object]:
    """`_param(field, value)` as a function of the value (held equal by tests/automation/test_replay.py)."""
    own = _AS_IS.get(type(field))
    if type(field) in (models.ForeignKey, models.OneToOneField) and type(field.target_field) in _AUTO_KEYS:
        own = int
    ops, base = type(connection.ops), BaseDatabaseOperations
    # A Decimal or an int is handed over as it is where the backend adapts neither (SQLite does not;
    # PostgreSQL wraps integers); the field's own conversion of one is a copy of it.
    if (
        isinstance(field, models.DecimalField)
        and ops.adapt_decimalfield_value is base.adapt_decimalfield_value
    ):
        return lambda value: (
            value if value is None or (type(value) is Decimal and value.is_finite()) else _param(field, value)
        )
    if (
        isinstance(field, models.IntegerField)
        and ops.adapt_integerfield_value is base.adapt_integerfield_value
    ):
        own = int
    if type(field) is models.DateTimeField:
        return _datetime_param(field)
    if isinstance(field, models.JSONField) and field.encoder is None and _json_as_text():
        # The JSON's choice made here once, not for each value: asking the connection (through its
        # thread-local proxy) was a tenth of the writing.
        return lambda value: (
            value if value is None else str(value) if type(value) is _Encoded else _json_text(value)
        )
    if own is None:
        return functools.partial(_param, field)
    return lambda value: value if value is None or type(value) is own else _param(field, value)


def _datetime_param(field: models.DateTimeField) -> Callable[[object], object]:
    """A UTC datetime as SQLite's backend writes it, its text in UTC without the offset, when the connection's
    time zone is UTC: the field's conversion made it naive through the time zone machinery, a third of the
    writing's time (0.7 s of a 5,000-hour replay's 3.4 s profiled). Anything else as the field writes it."""
    if connection.vendor != "sqlite" or connection.timezone is not UTC:
        return functools.partial(_param, field)
    return lambda value: (
        str(value.replace(tzinfo=None))
        if type(value) is datetime and value.tzinfo is UTC
        else _param(field, value)
    )


def _param(field: models.Field, value):
    """`field.get_db_prep_save(value)`, with JSON encoded by orjson (a tenth of the standard library's time
    on the rows a replay writes) where the database takes JSON as text; what orjson refuses, the standard
    library encodes, or refuses as Django would."""
    if type(value) is _Encoded:
        return str(value)
    json_field = isinstance(field, models.JSONField) and field.encoder is None
    if value is not None and json_field and _json_as_text():
        return _json_text(value)
    return field.get_db_prep_save(value, connection)


def _json_text(value) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def _json_as_text() -> bool:
    """Whether the database's backend writes JSON as text (SQLite's), which orjson can write instead;
    PostgreSQL's adapts it itself (psycopg's Jsonb)."""
    return type(connection.ops).adapt_json_value is BaseDatabaseOperations.adapt_json_value


def _write(model: type[models.Model], rows, fields: list[str]) -> None:
    """INSERT the rows' `fields` in one executemany, without their keys."""
    rows = list(rows)
    if not rows:
        return
    meta, quote = model._meta, connection.ops.quote_name
    columns = [meta.get_field(name) for name in fields]
    names = ", ".join(quote(column.column) for column in columns)
    values = ", ".join(["%s"] * len(columns))
    params_of = [
        (operator.attrgetter(c.attname), param) for c, param in zip(columns, _params(columns), strict=True)
    ]
    # Only the model's own table and column names are formatted in; every value is a parameter.
    sql = f"INSERT INTO {quote(meta.db_table)} ({names}) VALUES ({values})"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.executemany(sql, [[param(value(row)) for value, param in params_of] for row in rows])


def _update(model: type[models.Model], rows, fields: list[str]) -> None:
    """UPDATE each row's `fields` by its key, in one executemany: Django's bulk_update builds a CASE per field
    over every row, which cost more than the cycles whose rows it wrote."""
    rows = list(rows)
    if not rows:
        return
    meta, quote = model._meta, connection.ops.quote_name
    columns = [meta.get_field(name) for name in fields]
    assignments = ", ".join(f"{quote(column.column)} = %s" for column in columns)
    params_of = [
        (operator.attrgetter(c.attname), param) for c, param in zip(columns, _params(columns), strict=True)
    ]
    # Only the model's own table and column names are formatted in; every value is a parameter.
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608
    params = [[param(value(row)) for value, param in params_of] + [row.pk] for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
