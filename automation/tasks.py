import platform
from datetime import datetime

from celery import shared_task
from django.db import InterfaceError, OperationalError

from .backtests import TIME_LIMIT as BACKTEST_TIME_LIMIT
from .backtests import backtest_run, fail_lost_backtests
from .cycle import run_cycle
from .demo import CLAIM_SECONDS, HistoryBusyError, history_in_background
from .dispatch import dispatch_due
from .health import queue_heartbeat, record
from .monitoring import monitor_running_bots
from .recovery import recover_lost_runs

# The cycle's own failures are recorded on its run, not retried; only losing the database mid-task is, the
# same way for every task.
RETRIED = {"autoretry_for": (OperationalError, InterfaceError), "retry_backoff": 5, "max_retries": 3}


@shared_task(ignore_result=True)
def heartbeat_task(queue: str):
    """Beat sends this on `queue` and a worker of that queue runs it, so a fresh timestamp proves both are up
    (automation.health)."""
    record(queue_heartbeat(queue), platform.node())


@shared_task(
    ignore_result=True,
    # The whole worker killed leaves the message unacknowledged, to be redelivered; the slot's claim finds the
    # run done, or takes over one left stale (cycle.claim). A pool process killed mid-cycle gets it
    # acknowledged, not redelivered: a cycle that kills its process would otherwise kill one after another.
    # automation.recovery fails the runs so left.
    acks_late=True,
    reject_on_worker_lost=False,
    **RETRIED,
    # Honoured on a prefork pool only; on the io queue's threads the cycle's own deadlines bound it
    # (automation.analysis.within), both well within schedule.STALE_RUN.
    soft_time_limit=8 * 60,
    time_limit=10 * 60,
)
def run_cycle_task(bot_id: int, slot: str, on_schedule: bool = False):
    """The dispatcher sends the slot due `on_schedule` (late-slot rule applies); run-now the current slot."""
    run_cycle(bot_id, datetime.fromisoformat(slot), on_schedule=on_schedule, running_only=True)


@shared_task(ignore_result=True, **RETRIED, expires=50)
def dispatch_cycles_task():
    """The cycles due, sent (automation.dispatch). Beat runs it in its own process (automation.beat); sent to
    a worker, as any task can be, it does the same, and run twice it sends nothing more."""
    dispatch_due()


@shared_task(
    ignore_result=True,
    acks_late=True,
    **RETRIED,
    soft_time_limit=4 * 60,
    time_limit=5 * 60,
)
def monitor_trades_task():
    monitor_running_bots()


@shared_task(ignore_result=True, acks_late=True, **RETRIED)
def recover_lost_runs_task():
    recover_lost_runs()
    fail_lost_backtests()


@shared_task(
    ignore_result=True,
    # A whole worker lost leaves the message to be redelivered, and the replay goes on where it stopped (a
    # slot's run is unique per bot); a pool process killed gets it acknowledged, and the recovery sweep fails
    # the backtest once its progress stops (automation.backtests.fail_lost_backtests).
    acks_late=True,
    reject_on_worker_lost=False,
    **RETRIED,
    soft_time_limit=BACKTEST_TIME_LIMIT.total_seconds(),
    time_limit=BACKTEST_TIME_LIMIT.total_seconds() + 60,
)
def run_backtest_task(backtest_id: int):
    backtest_run(backtest_id)


@shared_task(
    bind=True,
    ignore_result=True,
    # Redelivered if the worker dies mid-way: the replay skips the slots already run and goes on.
    acks_late=True,
    **RETRIED,
    soft_time_limit=50 * 60,
    time_limit=60 * 60,
)
def seed_demo_history_task(self, bot_id: int, count: int):
    try:
        history_in_background(bot_id, count)
    except HistoryBusyError as e:
        # Once the other is done (or its claim lapsed), this one finds nothing left, or goes on.
        raise self.retry(exc=e, countdown=CLAIM_SECONDS, max_retries=30) from None
