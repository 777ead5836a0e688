from django.contrib import admin
from django.contrib.admin.views.main import ORDER_VAR, PAGE_VAR, ChangeList
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.urls import path, reverse

from core.admin_base import ViewOnlyAdmin

from .models import (
    AILearningData,
    InsightCounter,
    InsightSnapshot,
    LearnedPolicy,
    PolicyCounter,
    PromptVersion,
    TrainedModel,
)


def usage_per_user_and_day(analyses):
    """The LLM's work and cost per user and UTC day over `analyses`, one row each, counted by the database."""
    return (
        # Without order_by(), the model's ordering would join the GROUP BY and split the days.
        analyses.order_by()
        .annotate(day=TruncDate("created_at"))
        .values("day", "user_id", "user__email")
        .annotate(
            analyses=Count("pk"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            cost=Sum("cost_usd"),
        )
    )


class UsageChangeList(ChangeList):
    """The analyses' changelist (its date hierarchy, filters and search select the analyses) showing one row
    per user and day instead of one per analysis. Sorting uses named keys in `o` (`o=-cost`), which the base
    class skips as not being column numbers, so its filter and date links carry the chosen order along."""

    COLUMNS = (
        ("day", "day", "Day"),
        ("user", "user__email", "User"),
        ("analyses", "analyses", "Analyses"),
        ("prompt", "prompt", "Prompt tokens"),
        ("completion", "completion", "Completion tokens"),
        ("cost", "cost", "Cost (USD)"),
    )
    DEFAULT_ORDER = "-day"

    def get_results(self, request):
        fields = {name: field for name, field, _ in self.COLUMNS}
        order = self.params.get(ORDER_VAR, self.DEFAULT_ORDER)
        if order.lstrip("-") not in fields:
            order = self.DEFAULT_ORDER
        field = fields[order.lstrip("-")]
        rows = usage_per_user_and_day(self.queryset).order_by(
            f"-{field}" if order.startswith("-") else field, "-day", "user__email"
        )
        paginator = self.model_admin.get_paginator(request, rows, self.list_per_page)
        self.paginator = paginator
        self.result_count = paginator.count
        self.full_result_count = None
        self.show_full_result_count = False
        self.show_admin_actions = False
        self.can_show_all = False
        self.multi_page = self.result_count > self.list_per_page
        self.page_range = paginator.get_elided_page_range(self.page_num) if self.multi_page else []
        self.result_list = [
            {**row, "analyses_url": self._analyses_url(row)}
            for row in paginator.get_page(self.page_num).object_list
        ]
        self.usage_headers = [self._header(name, label, order) for name, _, label in self.COLUMNS]
        self.totals = self.queryset.order_by().aggregate(
            analyses=Count("pk"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            cost=Sum("cost_usd"),
        )

    def _header(self, name: str, label: str, order: str) -> dict:
        sorted_now = order.lstrip("-") == name
        descending = order.startswith("-")
        if sorted_now:
            toggled = name if descending else f"-{name}"
        else:
            # A first click puts the newest day and the largest figures on top; users go A to Z.
            toggled = name if name == "user" else f"-{name}"
        return {
            "label": label,
            "url": self.get_query_string({ORDER_VAR: toggled}, [PAGE_VAR]),
            "sorted": ("descending" if descending else "ascending") if sorted_now else "",
        }

    @staticmethod
    def _analyses_url(row: dict) -> str:
        day = row["day"]
        return (
            f"{reverse('admin:learning_ailearningdata_changelist')}?user__id__exact={row['user_id']}"
            f"&created_at__year={day.year}&created_at__month={day.month}&created_at__day={day.day}"
        )


class LLMUsageAdmin(ViewOnlyAdmin):
    """Not registered: the per-user-per-day view of the analyses, served under AILearningDataAdmin's URLs."""

    change_list_template = "admin/learning/ailearningdata/llm_usage.html"
    list_display = ("created_at",)
    list_filter = ("analyst", "model_name")
    search_fields = ("user__email",)
    search_help_text = "E-mail address of the user"
    date_hierarchy = "created_at"
    actions = None

    def get_changelist(self, request, **kwargs):
        return UsageChangeList

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "title": "LLM tokens and cost per user and day"}
        return super().changelist_view(request, extra_context)


@admin.register(AILearningData)
class AILearningDataAdmin(ViewOnlyAdmin):
    list_display = (
        "created_at",
        "user",
        "bot",
        "symbol",
        "timeframe",
        "recommendation",
        "confidence_score",
        "outcome",
        "accuracy_score",
        "analyst",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
    )
    list_filter = ("outcome", "recommendation", "market_sentiment", "timeframe", "analyst", "regime")
    search_fields = ("user__email", "bot__name", "symbol")
    list_select_related = ("user", "bot")
    raw_id_fields = ("user", "bot", "session", "cycle_run", "prompt_version")
    date_hierarchy = "created_at"

    def get_urls(self):
        usage = LLMUsageAdmin(self.model, self.admin_site)
        view = self.admin_site.admin_view(usage.changelist_view)
        return [path("llm-usage/", view, name="learning_ailearningdata_llm_usage"), *super().get_urls()]


@admin.register(PromptVersion)
class PromptVersionAdmin(ViewOnlyAdmin):
    list_display = ("sha256", "created_at")
    list_filter = ("created_at",)
    search_fields = ("sha256", "text")


@admin.register(InsightSnapshot)
class InsightSnapshotAdmin(ViewOnlyAdmin):
    list_display = ("user", "bot", "computed_at", "resolved_count")
    list_filter = ("computed_at",)
    search_fields = ("user__email", "bot__name")
    list_select_related = ("user", "bot")
    raw_id_fields = ("user", "bot")


@admin.register(LearnedPolicy)
class LearnedPolicyAdmin(admin.ModelAdmin):
    list_display = ("bot", "min_confidence", "size_factor", "created_at")
    list_filter = ("created_at",)
    search_fields = ("bot__name", "bot__owner__email")
    list_select_related = ("bot",)
    raw_id_fields = ("bot",)


@admin.register(TrainedModel)
class TrainedModelAdmin(admin.ModelAdmin):
    list_display = ("version", "algorithm", "user", "trained_from", "trained_to", "is_active", "created_at")
    list_filter = ("is_active", "algorithm")
    search_fields = ("version", "algorithm", "user__email")
    raw_id_fields = ("user",)


@admin.register(InsightCounter)
class InsightCounterAdmin(admin.ModelAdmin):
    """The running totals behind the insights, to look at; they change only with the analyses (and
    `manage.py insights --rebuild`), never by hand."""

    list_display = ("user", "bot_id", "symbol", "timeframe", "dimension", "value", "n", "hits")
    list_filter = ("dimension", "timeframe")
    search_fields = ("user__email", "symbol", "value")
    list_select_related = ("user",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(PolicyCounter)
class PolicyCounterAdmin(InsightCounterAdmin):
    """The running totals the adaptive policy learns from, to look at, like the insights'."""

    list_display = ("user", "bot_id", "bucket", "regime", "market_sentiment", "n", "r_sum", "wins", "losses")
    list_filter = ("regime", "market_sentiment")
    search_fields = ("user__email",)
