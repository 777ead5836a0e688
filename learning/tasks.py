from celery import shared_task
from django.utils import timezone

from .ml import retrain_due


# No retries: beat sends it again within the hour, and a run that died half-way is harmless to repeat (the
# same calls give the same model).
@shared_task(ignore_result=True, soft_time_limit=25 * 60, time_limit=30 * 60)
def retrain_models_task():
    retrain_due(timezone.now())
