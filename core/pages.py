from django import forms
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


class OwnBotFilterForm(forms.Form):
    """A list's filters: one of the user's bots, and each other field an exact match when given."""

    bot = forms.ModelChoiceField(queryset=None, required=False, empty_label="All bots")

    def __init__(self, *args, owner, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["bot"].queryset = owner.bots.order_by("name")

    def filter(self, items):
        if not self.is_valid():
            return items.none()
        return items.filter(**{name: value for name, value in self.cleaned_data.items() if value})
