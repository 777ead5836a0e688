"""Password guessing on the web and admin sign-in forms: after LOGIN_FAILURES_PER_EMAIL failures for one
e-mail address, or LOGIN_FAILURES_PER_ADDRESS from one client address, within LOGIN_FAILURE_WINDOW_MINUTES,
sign-in is refused, even with the right password, until the window has passed. Counted in the database, so
every web process sees the same counts without a shared cache. (The API's token endpoint has DRF's
throttle.)"""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from .models import LoginFailure


class ThrottledLoginMixin:
    """For an AuthenticationForm (which has `self.request`)."""

    def clean(self):
        email = (self.cleaned_data.get("username") or "").strip().lower()
        address = self.request.META.get("REMOTE_ADDR") if self.request else None
        if wait := blocked_for(email, address):
            minutes = max(1, round(wait.total_seconds() / 60))
            raise ValidationError(
                f"Too many failed sign-ins: try again in {minutes} minute{'s' if minutes > 1 else ''}, "
                "or reset your password.",
                code="throttled",
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            LoginFailure.objects.create(email=email, address=address)
            raise
        LoginFailure.objects.filter(email=email).delete()  # a success starts the count afresh
        return cleaned


def blocked_for(email: str, address: str | None) -> timedelta | None:
    """How long sign-in stays refused for this e-mail address and client address; None if it is not."""
    window = timedelta(minutes=settings.LOGIN_FAILURE_WINDOW_MINUTES)
    since = timezone.now() - window
    LoginFailure.objects.filter(at__lt=since).delete()  # what the window no longer counts
    recent = LoginFailure.objects.filter(at__gte=since).order_by("-at")
    checks = [(recent.filter(email=email), settings.LOGIN_FAILURES_PER_EMAIL)]
    if address:
        checks.append((recent.filter(address=address), settings.LOGIN_FAILURES_PER_ADDRESS))
    for failures, limit in checks:
        times = list(failures.values_list("at", flat=True)[:limit])
        if len(times) >= limit:
            return times[-1] + window - timezone.now()  # when the oldest counted failure leaves the window
    return None
