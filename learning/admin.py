from django.contrib import admin

from .models import (
    AILearningData,
    InsightCounter,
    InsightSnapshot,
    LearnedPolicy,
    PromptVersion,
    TrainedModel,
)


@admin.register(AILearningData)
class AILearningDataAdmin(admin.ModelAdmin):
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
        "cost_usd",
    )
    list_filter = ("outcome", "recommendation", "market_sentiment", "timeframe", "analyst", "regime")
    search_fields = ("user__email", "bot__name", "symbol")
    list_select_related = ("user", "bot")
    raw_id_fields = ("user", "bot", "session", "cycle_run", "prompt_version")
    date_hierarchy = "created_at"


@admin.register(PromptVersion)
class PromptVersionAdmin(admin.ModelAdmin):
    list_display = ("sha256", "created_at")
    list_filter = ("created_at",)
    search_fields = ("sha256", "text")


@admin.register(InsightSnapshot)
class InsightSnapshotAdmin(admin.ModelAdmin):
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
