import logging.config
import os

from celery import Celery
from celery.signals import setup_logging
from django.conf import settings
from kombu.transport import TRANSPORT_ALIASES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingai.settings.local")

# A filesystem:// broker URL means kombu's filesystem transport with each message written whole first
# (tradingai/broker.py). An alias of the URL's scheme, not the broker_transport setting, which would apply to
# any URL a test or an operator gives instead (a Redis one too).
TRANSPORT_ALIASES["filesystem"] = "tradingai.broker:Transport"

app = Celery("tradingai")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def use_django_logging(**kwargs):
    """Celery's own set-up would replace the handler of settings.LOGGING (its format, the cycle's context on
    each line) with its own; with a receiver it sets up nothing, and this applies LOGGING (LOG_LEVEL and
    LOG_FORMAT, not the --loglevel flag) in workers and beat."""
    logging.config.dictConfig(settings.LOGGING)
