from datetime import UTC, datetime

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField

OUT_OF_RANGE = "A time that has no UTC equivalent (before year 1 or after year 9999 once in UTC)."


def in_utc(value: datetime) -> datetime:
    """`value` in UTC. Python reads offsets up to ±23:59, PostgreSQL only to ±15:59, so an offset is turned
    into UTC here rather than reaching the database as a time it refuses; a time that UTC cannot hold
    (0001-01-01T00:00+01:00 is in year 0) is a ValidationError, not an OverflowError."""
    if value.tzinfo is None:
        return value
    try:
        return value.astimezone(UTC)
    except OverflowError as e:
        raise ValidationError(OUT_OF_RANGE, code="out_of_range") from e


class UtcIsoDateTimeField(IsoDateTimeField):
    def to_python(self, value):
        parsed = super().to_python(value)
        return None if parsed is None else in_utc(parsed)


class UtcDateTimeFilter(filters.IsoDateTimeFilter):
    """An ISO 8601 time, compared in UTC; one UTC cannot hold is a 400 naming the filter."""

    field_class = UtcIsoDateTimeField


def own_bots(request):
    """The requesting user's bots: what an API filter may name (another user's bot is an invalid choice).
    Reached through the user's `bots` relation, so that every app can filter by bot without importing the
    app that defines bots (docs/architecture.md, "Dependencies between apps")."""
    if request is None or not request.user.is_authenticated:
        return get_user_model()._meta.get_field("bots").related_model.objects.none()
    return request.user.bots.all()


class NormalisedCharFilter(filters.CharFilter):
    """A name compared as stored: `normalise` (market.names' for an exchange or a symbol) is applied to the
    value first, so `?symbol=btc/usdt` finds BTC/USDT. Passed in, since core sits below market."""

    def __init__(self, *args, normalise, **kwargs):
        super().__init__(*args, **kwargs)
        self.normalise = normalise

    def filter(self, qs, value):
        return super().filter(qs, self.normalise(value) if value else value)
