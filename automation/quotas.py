"""The plan's caps on what a user's bots run (accounts.quotas holds the caps): cycles a UTC day, and the
monthly LLM spend, which stops the analysts that cost the operator money. A bot on its owner's own model
(a model connection) is held to the daily cycles, which cost the platform's workers, but not to the
spend: its calls are on the owner's key, recorded with their tokens and cost and `billed_to` OWNER, and
not counted in the month's spend. There is no cap of the user's own on that key: their provider's are
what bind it. A cycle past a cap is not made: its run is recorded SKIPPED with the reason before the
analyst is called. Run-now's hourly cap is in services.

The replay (automation.replay) is held to the spend cap but not to the daily cycle cap: a replay is an
operator's command over stored candles, in its own account, on the operator's process rather than the
workers; thousands of technical-analyst cycles there cost nothing, while a replay with the OpenAI analyst
costs what live cycles cost. A user's backtest (automation.backtests) is such a replay, in its own account,
with the technical analyst only; the plan bounds it by its own caps instead: its candles, and how many run
at once (automation.backtest_start)."""

from datetime import datetime
from decimal import Decimal

from django.db.models import Sum

from accounts.quotas import day_start, month_start, next_day, next_month, quotas_of
from core import plain_sql as sql
from learning.models import AILearningData

from .analysts.base import OPERATOR
from .models import Bot, CycleRun
from .notices import spend_cap_reached

# The analysts whose every answer costs money (a call to a paid API); the technical analyst runs here.
PAID_ANALYSTS = frozenset({"openai"})


def cycles_made_today(user, now: datetime, *, before: CycleRun | None = None) -> int:
    """The cycles of the user's bots begun this UTC day and not skipped; with `before`, only those claimed
    ahead of that run. Claims are numbered, so of two cycles claimed at once only the first gets the last
    place, without a lock held across the claim."""
    runs = CycleRun.objects.filter(bot__owner=user, created_at__gte=day_start(now)).exclude(
        status=CycleRun.Status.SKIPPED
    )
    if before is not None:
        runs = runs.filter(pk__lt=before.pk)
    return runs.count()


def spent_this_month(user, now: datetime) -> Decimal:
    """What the user's analyses of this UTC calendar month cost the operator, as stored with each: those
    on the user's own key (a model connection) are the user's to pay, and not counted."""
    analyses = AILearningData.objects.filter(
        user=user, created_at__gte=month_start(now), billed_to=AILearningData.BilledTo.OPERATOR
    )
    spent = analyses.aggregate(total=Sum("cost_usd"))["total"]
    return Decimal(spent or 0)


def spend_refusal(user, spent: Decimal, now: datetime) -> str:
    """Why a paid analysis is not made, or "" while the month's spend is under the plan's cap."""
    cap = quotas_of(user).monthly_llm_usd
    if spent < cap:
        return ""
    return (
        f"skipped: LLM spend this month US$ {spent:.2f} reached the plan's cap of US$ {cap:.2f}; resumes "
        f"{next_month(now):%Y-%m-%d} 00:00 UTC"
    )


def charged_to_operator(bot: Bot, analyst=None) -> bool:
    """Whether a cycle of `bot` calls a paid analyst on the operator's key: `analyst` when one is given (a
    test's, a replay's), else the bot's own choice. A bot on its owner's model connection is not: the
    owner's key pays, and the owner's provider bills them."""
    if analyst is not None:
        return analyst.name in PAID_ANALYSTS and analyst.billed_to == OPERATOR
    return bot.analyst.lower() in PAID_ANALYSTS


def cycle_refusal(run: CycleRun, charged: bool, now: datetime) -> str:
    """Why the cycle of `run` is not made (the plan's caps), or "" when it may run; `charged`: its analyst
    is paid for by the operator (charged_to_operator). The spending cap, once reached, is told to the owner
    (once a month: automation.notices)."""
    user = run.bot.owner
    cap = quotas_of(user).cycles_per_day
    made, spent = _used(run, now, charged)
    if made >= cap:
        return (
            f"skipped: the plan's {cap} cycles a day are used up; cycles run again from "
            f"{next_day(now):%Y-%m-%d} 00:00 UTC"
        )
    if charged:
        refusal = spend_refusal(user, spent, now)
        if refusal:
            spend_cap_reached(user, refusal.removeprefix("skipped: "), month_start(now))
        return refusal
    return ""


def _statement(charged: bool) -> str:
    # Only the models' own table and column names are formatted in (core.plain_sql).
    runs, bots, analyses = sql.table(CycleRun), sql.table(Bot), sql.table(AILearningData)
    run = {name: f"{runs}.{sql.column(CycleRun, name)}" for name in ("id", "bot", "created_at", "status")}
    owner, bot_id = (f"{bots}.{sql.column(Bot, name)}" for name in ("owner", "id"))
    user, created, billed, cost = (
        sql.column(AILearningData, name) for name in ("user", "created_at", "billed_to", "cost_usd")
    )
    made = (
        f"SELECT COUNT(*) FROM {runs} INNER JOIN {bots} ON {run['bot']} = {bot_id} "  # noqa: S608
        f"WHERE {owner} = %s AND {run['created_at']} >= %s AND NOT ({run['status']} = %s) "
        f"AND {run['id']} < %s"
    )
    spent = (
        f"SELECT CAST(SUM({cost}) AS NUMERIC) FROM {analyses} "  # noqa: S608
        f"WHERE {user} = %s AND {created} >= %s AND {billed} = %s"
    )
    return f"SELECT ({made}), ({spent})" if charged else f"SELECT ({made}), NULL"


_CHARGED, _FREE = sql.statement(lambda: _statement(True)), sql.statement(lambda: _statement(False))


def _used(run: CycleRun, now: datetime, charged: bool) -> tuple[int, Decimal]:
    """`cycles_made_today(user, now, before=run)` and, when `charged`, `spent_this_month(user, now)` (else
    0), in one statement: the same counts and sums, as the ORM converts them."""
    user = run.bot.owner
    params = [user.pk, sql.parameter(CycleRun, "created_at", day_start(now)), CycleRun.Status.SKIPPED, run.pk]
    if charged:
        month = sql.parameter(AILearningData, "created_at", month_start(now))
        params += [user.pk, month, AILearningData.BilledTo.OPERATOR]
    [(made, spent)] = sql.rows((_CHARGED if charged else _FREE)(), params)
    spent = sql.converter(sql.as_computed(AILearningData, "cost_usd"))(spent)
    return made, Decimal(spent or 0)


def notices(user, now: datetime) -> list[str]:
    """What the dashboard says about a cap that stops the user's cycles now, and when it lifts."""
    quotas = quotas_of(user)
    said = []
    if cycles_made_today(user, now) >= quotas.cycles_per_day:
        said.append(
            f"Your plan's {quotas.cycles_per_day} cycles a day are used up: your bots' cycles are skipped "
            f"until {next_day(now):%Y-%m-%d} 00:00 UTC."
        )
    paid = [name.upper() for name in PAID_ANALYSTS]
    if Bot.objects.filter(owner=user, analyst__in=paid).exists():
        spent = spent_this_month(user, now)
        if spent >= quotas.monthly_llm_usd:
            said.append(
                f"This month's LLM spend (US$ {spent:.2f}) reached your plan's cap of US$ "
                f"{quotas.monthly_llm_usd:.2f}: cycles with the OpenAI analyst are skipped until "
                f"{next_month(now):%Y-%m-%d} 00:00 UTC."
            )
    return said
