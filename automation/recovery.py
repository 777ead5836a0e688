"""Runs left behind by a worker that died: SIGKILL, the out-of-memory killer, a machine gone.

Such a run stays RUNNING (or CLAIMED) and nothing else would end it: the cycle task's message is not
redelivered when its pool process dies (Celery acknowledges it, `task_reject_on_worker_lost` being off), and
should not be: a cycle that kills its process (a chart that exhausts memory, a crash in a native library)
would be redelivered to kill the next one, over and over, and a redelivery finds the slot taken anyway. A
whole worker killed leaves its message unacknowledged until the broker's visibility timeout (an hour on
Redis); by then this sweep has failed the run, so the redelivery finds it done and writes nothing.

So, every few minutes, a run older than `STALE_RUN` (longer than the cycle's deadlines and timeouts add up
to, on any pool: it cannot still be running) is marked FAILED at the step it last started, with the
reason. What it wrote before (the chart, the analysis, a trade) stays; the bot's next slot runs as usual. A
live order such a run had written ahead (a PENDING trade) is then settled from the exchange: its fill
recorded, or, never taken, cancelled (trades.entries)."""

import logging

from django.db.models import Q
from django.utils import timezone

from trades.entries import settle_pending
from trades.models import Trade

from .metrics import Tally
from .models import Bot, CycleRun
from .notices import run_failed
from .schedule import STALE_RUN

logger = logging.getLogger(__name__)


def recover_lost_runs() -> int:
    """Fail the runs whose worker stopped; returns how many."""
    now = timezone.now()
    cutoff = now - STALE_RUN
    lost = CycleRun.objects.filter(
        Q(status=CycleRun.Status.RUNNING, started_at__lt=cutoff)
        | Q(status=CycleRun.Status.CLAIMED, created_at__lt=cutoff)
    )
    failed, tally = 0, Tally()
    for run in lost.only("pk", "status", "step"):
        # A run claimed but never started has no step; one RUNNING without one predates step tracking.
        step = run.step or ("claim" if run.status == CycleRun.Status.CLAIMED else "unknown")
        # A compare-and-swap on the status read: a run that finished meanwhile stays. One cycle.claim has just
        # taken over is CLAIMED with its old created_at; failing it only makes the takeover do nothing.
        failed_now = CycleRun.objects.filter(pk=run.pk, status=run.status).update(
            status=CycleRun.Status.FAILED,
            finished_at=now,
            failed_step=step,
            error=f"the worker running it stopped (lost) during {step}: still {run.status} after "
            f"{STALE_RUN}, longer than a cycle may take",
        )
        if failed_now:
            tally.count("tradingai_cycle_runs", status=CycleRun.Status.FAILED, failed_step=step)
            logger.warning("run %s was lost during %s; marked failed", run.pk, step)
            lost_run = CycleRun.objects.select_related("bot__owner").get(pk=run.pk)
            run_failed(lost_run, lost_run.bot)
        failed += failed_now
    tally.save()
    settle_left_entries()
    return failed


def settle_left_entries() -> int:
    """Live entries written ahead (PENDING) by runs that ended without recording their fill, a run failed
    just now among them, settled from the exchange (trades.entries); returns how many are now OPEN."""
    settled = 0
    for bot in Bot.objects.filter(trades__status=Trade.Status.PENDING, trades__is_simulated=False).distinct():
        settled += len(settle_pending(bot))
    return settled
