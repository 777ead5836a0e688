from rest_framework.pagination import CursorPagination


class LongListPagination(CursorPagination):
    """Runs, analyses and trades grow without end: a cursor keeps a page's cost flat however deep the client
    reads, where an offset would make the database count and skip every row before it."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = "-created_at"
