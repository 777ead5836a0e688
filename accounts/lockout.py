"""Password guessing: one lockout (django-axes) for the site's sign-in, the admin's and the API's token
endpoint, and the client's address every throttle keys on.

Axes counts failures per (e-mail address, client address) pair, so an attacker elsewhere cannot lock an owner
out; LockoutHandler adds a looser limit per client address, so that one address cannot try a few passwords
on each of many accounts either. A refused sign-in is a page with the form's error on the site, and a JSON
429 on the API (lockout_response)."""

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q, Sum
from django.http import JsonResponse
from rest_framework.throttling import BaseThrottle


def client_address(request) -> str:
    """The client's address: REMOTE_ADDR, or behind TRUSTED_PROXIES proxies the X-Forwarded-For entry the
    first of them appended. DRF's reading (NUM_PROXIES is the same setting), so its throttles and the
    lockout always agree on who a client is."""
    return BaseThrottle().get_ident(request)


def attempted_email(request, credentials: dict | None) -> str:
    """The e-mail address a sign-in was for, as the account stores it: `Alice@…` and `alice@…` are one."""
    typed = (credentials or {}).get("username")
    if typed is None:
        typed = request.POST.get("username", "")
    return str(typed).strip().lower()


def lockout_message() -> str:
    minutes = max(1, round(get_cool_off().total_seconds() / 60))
    return (
        f"Too many failed sign-ins: try again in {minutes} minute{'s' if minutes > 1 else ''}, "
        "or reset your password."
    )


class LockoutHandler(AxesDatabaseHandler):
    """Axes' database handler with the per-address limit (reaching it counts as reaching the pair's), and
    fewer queries on the way of every sign-in (bench/bench_signin.py)."""

    def get_failures(self, request, credentials: dict | None = None) -> int:
        # The pair's failures and the address's in one query (axes' own asks once per lockout parameter).
        totals = AccessAttempt.objects.filter(
            ip_address=request.axes_ip_address, attempt_time__gte=get_cool_off_threshold(request)
        ).aggregate(
            pair=Sum("failures_since_start", filter=Q(username=attempted_email(request, credentials))),
            address=Sum("failures_since_start"),
        )
        failures = totals["pair"] or 0
        if (totals["address"] or 0) >= settings.LOGIN_FAILURES_PER_ADDRESS:
            return max(failures, get_failure_limit(request, credentials))
        return failures

    def user_logged_in(self, sender, request, user, **kwargs):
        # A success starts the pair's count afresh (AXES_RESET_ON_SUCCESS), in one query: expired rows of
        # others are left to the next failure, which clears them before it counts.
        AccessAttempt.objects.filter(
            username=user.get_username(), ip_address=request.axes_ip_address
        ).delete()


def lockout_response(request, original_response=None, credentials=None):
    """What a refused sign-in answers: the API a JSON reason; the site its sign-in page, which
    LockoutFormMixin has given the reason, with the status that says so."""
    retry_after = str(int(get_cool_off().total_seconds()))
    if request.path.startswith("/api/") or original_response is None:
        response = JsonResponse({"detail": lockout_message()}, status=429)
    else:
        response = original_response
        response.status_code = 429
    response["Retry-After"] = retry_after
    return response


class LockoutFormMixin:
    """For an AuthenticationForm (which has `self.request`): a refused sign-in says why, not "wrong
    password"."""

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            if getattr(self.request, "axes_locked_out", False):
                raise ValidationError(lockout_message(), code="locked_out") from None
            raise
