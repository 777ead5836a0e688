"""Quotas by plan: what one account may hold (bots, exchange accounts, API tokens, model connections), run
(bots at once, run-now requests an hour, cycles a day, backtests at once and their candles) and spend
(analyses on the operator's key a month). Operators set a plan's quotas in the admin; a user without a plan
gets the TRADINGAI_DEFAULT_* settings.

Days and months are UTC calendar ones, so that "resets at 00:00 UTC" means the same for every user; the
run-now window is the last hour, which a burst cannot straddle to double its share."""

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

# Each quota: the Plan field, and the setting that holds it for a user without a plan.
DEFAULT_SETTINGS = {
    "max_running_bots": "DEFAULT_MAX_RUNNING_BOTS",
    "max_bots": "DEFAULT_MAX_BOTS",
    "max_exchange_accounts": "DEFAULT_MAX_EXCHANGE_ACCOUNTS",
    "max_api_tokens": "DEFAULT_MAX_API_TOKENS",
    "max_model_connections": "DEFAULT_MAX_MODEL_CONNECTIONS",
    "run_now_per_hour": "DEFAULT_RUN_NOW_PER_HOUR",
    "cycles_per_day": "DEFAULT_CYCLES_PER_DAY",
    "monthly_llm_usd": "DEFAULT_MONTHLY_LLM_USD",
    "backtests_at_once": "DEFAULT_BACKTESTS_AT_ONCE",
    "backtest_max_candles": "DEFAULT_BACKTEST_MAX_CANDLES",
}
# What the capped rows are called in a refusal.
HELD = {
    "max_bots": "bots",
    "max_exchange_accounts": "exchange accounts",
    "max_api_tokens": "API tokens",
    "max_model_connections": "model connections",
}


@dataclass(frozen=True)
class Quotas:
    max_running_bots: int
    max_bots: int
    max_exchange_accounts: int
    max_api_tokens: int
    max_model_connections: int
    run_now_per_hour: int
    cycles_per_day: int
    monthly_llm_usd: Decimal
    backtests_at_once: int
    backtest_max_candles: int


def quotas_of(user) -> Quotas:
    plan = user.plan
    if plan is None:
        return Quotas(**{name: getattr(settings, setting) for name, setting in DEFAULT_SETTINGS.items()})
    return Quotas(**{name: getattr(plan, name) for name in DEFAULT_SETTINGS})


class QuotaExceededError(ValidationError):
    """A cap of the user's plan is reached. A ValidationError, so that the forms, and the API through them,
    report it as they report any invalid input: a form error on the page, a 400 with its reason."""


@contextmanager
def room_for(user, cap: str, existing):
    """For adding one row to `existing`, the user's rows that `cap` bounds (one of HELD): a transaction that
    holds the user's row locked until the new row is written, so that two requests at once cannot both take
    the last place. Raises QuotaExceededError, and nothing is written, when the rows already fill the cap."""
    with transaction.atomic():
        limit = getattr(quotas_of(lock_user(user)), cap)
        held = existing.count()
        if held >= limit:
            raise QuotaExceededError(
                f"Your plan allows {limit} {HELD[cap]} and you have {held}: delete one first, or ask for a "
                "bigger plan.",
                code="quota",
            )
        yield


def lock_user(user):
    """The user, read again with their row held until the transaction ends: a cheap mutex for counting what
    the user has before adding to it."""
    return get_user_model().objects.select_for_update().get(pk=user.pk)


def day_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def next_day(moment: datetime) -> datetime:
    return day_start(moment) + timedelta(days=1)


def month_start(moment: datetime) -> datetime:
    return day_start(moment).replace(day=1)


def next_month(moment: datetime) -> datetime:
    return (month_start(moment) + timedelta(days=32)).replace(day=1)


def saved_within_quota(form, save):
    """`save()`'s result, or None with the quota's refusal put on `form` as its error, for the page to show
    again: the cap is checked as the row is written, after the form's own validation."""
    try:
        return save()
    except QuotaExceededError as e:
        form.add_error(None, e)
        return None
