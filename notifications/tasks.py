from celery import shared_task
from django.conf import settings

from .delivery import deliver


@shared_task(bind=True, ignore_result=True, acks_late=True, max_retries=None)
def deliver_task(self, delivery_id: int) -> None:
    last_try = self.request.retries + 1 >= settings.NOTIFICATIONS_MAX_ATTEMPTS
    wait = deliver(delivery_id, last_try=last_try)
    if wait is not None:
        raise self.retry(countdown=wait)


@shared_task(ignore_result=True, acks_late=True, expires=6 * 3600)
def weekly_summaries_task() -> None:
    # Imported here: summary sends through services, which imports this module for deliver_task.
    from .summary import send_weekly_summaries

    send_weekly_summaries()


@shared_task(ignore_result=True, acks_late=True, expires=540)
def requeue_stuck_deliveries_task() -> None:
    from .services import requeue_stuck  # imported here for the reason above

    requeue_stuck()
