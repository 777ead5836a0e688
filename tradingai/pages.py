from django.core.paginator import Paginator

PAGE_SIZE = 50


def filtered_page(request, form, items, page_size: int = PAGE_SIZE) -> dict:
    """A list page's context: `items` narrowed by the bound filter `form` (its `filter(items)`), the page
    asked for, and the query string without the page, so that the page links keep the filters."""
    if form.is_bound:
        items = form.filter(items)
    query = request.GET.copy()
    query.pop("page", None)
    page = Paginator(items, page_size).get_page(request.GET.get("page"))
    return {"form": form, "page": page, "query": query.urlencode()}
