from datetime import UTC

from django_filters import rest_framework as filters


class UtcDateTimeFilter(filters.IsoDateTimeFilter):
    """An ISO 8601 time, compared in UTC. Python reads offsets up to ±23:59, PostgreSQL only to ±15:59, so an
    offset is turned into UTC here rather than reaching the database as a time it refuses."""

    def filter(self, qs, value):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return super().filter(qs, value)
