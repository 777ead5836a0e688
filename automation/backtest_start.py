"""Starting a backtest: the row written within the owner's plan and its task sent once it is committed. Above
the task it sends (automation.tasks), as run-now is."""

import logging

from django.db import transaction
from kombu.exceptions import OperationalError as BrokerUnreachableError

from accounts.quotas import QuotaExceededError, lock_user, quotas_of

from .backtests import backtest_fail
from .models import Backtest
from .services import QueueUnavailableError
from .tasks import run_backtest_task

logger = logging.getLogger(__name__)

UNREACHABLE = (
    "The task queue could not be reached, so the backtest did not start; nothing ran. Try again in a minute."
)


def backtest_start(backtest: Backtest) -> Backtest:
    """Save `backtest`, new with its owner and settings as a form or the API validated them, and queue it.
    Raises QuotaExceededError, and writes nothing, while the plan's backtests at once are queued or running;
    QueueUnavailableError when the broker cannot take the task (the backtest is then FAILED, saying so)."""
    owner = backtest.owner
    with transaction.atomic():
        # The owner's row locked until the new backtest is written: two submits at once cannot both pass.
        allowed = quotas_of(lock_user(owner)).backtests_at_once
        running = list(
            Backtest.objects.filter(owner=owner, status__in=(Backtest.Status.QUEUED, Backtest.Status.RUNNING))
        )
        if len(running) >= allowed:
            raise QuotaExceededError(
                f"Your backtest of {running[0].market} is still {running[0].get_status_display().lower()} "
                f"and your plan runs {allowed} at a time: wait for it to finish, then start this one.",
                code="quota",
            )
        backtest.save()

    def send():
        try:
            run_backtest_task.delay(backtest.pk)
        except BrokerUnreachableError as e:
            logger.warning("backtest %s: the broker is unreachable: %s", backtest.pk, e)
            backtest_fail(backtest.pk, UNREACHABLE)
            raise QueueUnavailableError(UNREACHABLE) from e

    # Sent once the row is committed, so that the worker finds it.
    transaction.on_commit(send)
    return backtest
