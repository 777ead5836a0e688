import math
from datetime import UTC, datetime

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination

from .api_filters import in_utc

INVALID_CURSOR = "Invalid cursor: use the `next` or `previous` link of a page as it was given."


class LongListPagination(CursorPagination):
    """Runs, analyses and trades grow without end: a cursor keeps a page's cost flat however deep the client
    reads, where an offset would make the database count and skip every row before it.

    A cursor is base64 the client can rewrite: its position goes into a filter on the ordering's column, so
    it is read with that column's own type here, and anything it cannot be is a 400 naming `cursor` (DRF
    answers an undecodable cursor with a 404 and passes any position through to the database: a 500)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = "-created_at"

    def paginate_queryset(self, queryset, request, view=None):
        self.model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except NotFound as e:
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from e
        if cursor is None or cursor.position is None:
            return cursor
        column = self.model._meta.get_field(self.ordering[0].lstrip("-"))
        try:
            # clean(): the column's type and its validators (a pnl of 10**999 digits would reach PostgreSQL)
            position = column.clean(cursor.position, None)
            if isinstance(position, datetime):
                # A page's own cursors carry +00:00; a time without an offset is read as UTC, as the site's.
                position = in_utc(position) if position.tzinfo else position.replace(tzinfo=UTC)
        except DjangoValidationError as e:
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from e
        if position is None or (isinstance(position, float) and not math.isfinite(position)):
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]})
        return cursor._replace(position=position)
