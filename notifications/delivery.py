"""One attempt at one delivery, and what it leaves in the log: the attempt's time, the HTTP status and the
error in words (never a secret: transports scrub them). Whether to try again is decided here, by the error:
a 5xx, a 429 or no answer at all is worth another try, after the wait the receiver asked for (Retry-After)
or an exponential backoff; any other 4xx means the channel is wrong (a revoked webhook, an unknown chat) and
trying again would change nothing."""

import logging

from django.conf import settings
from django.utils import timezone

from .models import Delivery
from .outbound import DeliveryError
from .transports import send

logger = logging.getLogger(__name__)


def deliver(delivery_id: int, *, last_try: bool) -> float | None:
    """Make one attempt at the delivery; the seconds to wait before the next one, or None when there is
    none to make (sent, failed for good, or `last_try`)."""
    delivery = (
        Delivery.objects.select_related("notification", "channel__owner").filter(pk=delivery_id).first()
    )
    if delivery is None or delivery.status in (Delivery.Status.SENT, Delivery.Status.FAILED):
        return None  # a redelivered task: this one is done
    if delivery.channel is None:
        _record(delivery, Delivery.Status.FAILED, None, "the channel was deleted before it was sent")
        return None
    try:
        status_code = send(delivery.channel, delivery.notification, delivery)
    except DeliveryError as e:
        again = e.transient and not last_try
        _record(
            delivery, Delivery.Status.RETRYING if again else Delivery.Status.FAILED, e.status_code, str(e)
        )
        return wait_before(len(delivery.attempts), e.retry_after) if again else None
    except Exception as e:  # a fault of ours (an unreadable secret, a bug): logged with its traceback
        logger.exception("delivery %s", delivery.pk)
        _record(delivery, Delivery.Status.FAILED, None, f"internal error ({type(e).__name__})")
        return None
    _record(delivery, Delivery.Status.SENT, status_code, "")
    return None


def wait_before(attempts: int, asked: float | None) -> float:
    """After `attempts` attempts: the receiver's Retry-After when it gave one, else base x 2^(attempts-1);
    never more than NOTIFICATIONS_RETRY_MAX_SECONDS, so a receiver cannot park a delivery for a day."""
    base = settings.NOTIFICATIONS_RETRY_BASE_SECONDS * 2 ** (attempts - 1)
    return min(asked if asked is not None else base, settings.NOTIFICATIONS_RETRY_MAX_SECONDS)


def _record(delivery: Delivery, status: str, status_code: int | None, error: str) -> None:
    delivery.attempts.append(
        {"at": timezone.now().isoformat(), "status_code": status_code, "error": error[:500]}
    )
    delivery.status, delivery.status_code, delivery.error = status, status_code, error[:500]
    delivery.save(update_fields=["attempts", "status", "status_code", "error", "updated_at"])
