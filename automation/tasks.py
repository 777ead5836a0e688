import platform

from celery import shared_task
from django.utils import timezone

from .models import Heartbeat


@shared_task(ignore_result=True)
def heartbeat_task():
    # Beat sends this and a worker runs it, so a fresh timestamp proves both are up (dashboard, admin).
    Heartbeat.objects.update_or_create(
        name="worker", defaults={"seen_at": timezone.now(), "detail": platform.node()}
    )
