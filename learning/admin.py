from decimal import Decimal

from django.contrib import admin, messages
from django.contrib.admin.views.main import ORDER_VAR, PAGE_VAR, ChangeList
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.db.models import Count, DecimalField, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.models import User
from accounts.services import trading_halt_set
from core.admin_base import ViewOnlyAdmin

from . import counters
from .insights import as_text, compute_insights, snapshot
from .models import (
    AILearningData,
    AnalystAnswer,
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
        "llm_call",
    )
    list_filter = (
        "outcome", "recommendation", "market_sentiment", "timeframe", "analyst", "regime", "llm_call",
    )  # fmt: skip
    search_fields = ("user__email", "bot__name", "symbol")
    list_select_related = ("user", "bot")
    raw_id_fields = ("user", "bot", "session", "cycle_run", "prompt_version", "answer")
    date_hierarchy = "created_at"

    def get_urls(self):
        usage = LLMUsageAdmin(self.model, self.admin_site)
        view = self.admin_site.admin_view(usage.changelist_view)
        return [path("llm-usage/", view, name="learning_ailearningdata_llm_usage"), *super().get_urls()]


@admin.register(AnalystAnswer)
class AnalystAnswerAdmin(ViewOnlyAdmin):
    """Each distinct analyst request, asked once, and how many analyses shared its answer: what asking once
    saved is the cost times the sharers less one."""

    list_display = (
        "answered_at", "model", "billed_to", "status", "prompt_tokens", "completion_tokens", "cost_usd",
        "sharers",
    )  # fmt: skip
    list_filter = ("status", "billed_to", "model")
    search_fields = ("key",)
    date_hierarchy = "claimed_at"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(sharers=Count("analyses"))

    @admin.display(description="Analyses sharing it", ordering="sharers")
    def sharers(self, obj) -> int:
        return obj.sharers


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


# The users' admin page lives here rather than in accounts: it shows and recomputes each user's LLM usage
# and insights, which learning owns, and accounts sits below learning (docs/architecture.md).
COST = DecimalField(max_digits=20, decimal_places=6)


def llm_cost_of_each_user():
    """Each user's total LLM cost, as a subquery: a join and GROUP BY over users would multiply with any
    other join the changelist adds (search, filters)."""
    total = (
        AILearningData.objects.filter(user=OuterRef("pk"))
        .order_by()
        .values("user")
        .annotate(total=Sum("cost_usd"))
        .values("total")
    )
    return Coalesce(Subquery(total, output_field=COST), Value(Decimal(0)), output_field=COST)


class UserChange(UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User
        fields = "__all__"


class UserCreation(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("email",)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserChange
    add_form = UserCreation
    ordering = ("email",)
    list_display = (
        "email",
        "display_name",
        "plan",
        "trading_halted",
        "llm_cost",
        "is_active",
        "is_staff",
        "date_joined",
        "last_login",
    )
    list_filter = ("is_active", "is_staff", "trading_halted", "plan")
    search_fields = ("email", "display_name")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("display_name", "plan", "trading_halted")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
        ("Learning", {"fields": ("llm_usage", "insights")}),
    )
    # trading_halted changes by the halt and resume actions only, which put it in the user's audit log.
    readonly_fields = ("trading_halted", "llm_usage", "insights")
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    actions = ("halt_trading", "resume_trading", "recompute_insights")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(llm_cost=llm_cost_of_each_user())

    @admin.display(description="LLM cost (USD)", ordering="llm_cost")
    def llm_cost(self, obj):
        # Formatted here: SQLite hands the summed decimal back with as many places as the float it kept.
        return f"{obj.llm_cost:.6f}"

    @admin.display(description="LLM usage")
    def llm_usage(self, obj):
        if obj.pk is None:
            return "-"
        usage = AILearningData.objects.filter(user=obj).aggregate(
            analyses=Count("pk"), prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens")
        )
        per_day = reverse("admin:learning_ailearningdata_llm_usage") + f"?user__id__exact={obj.pk}"
        return format_html(
            '{} analyses, {} prompt and {} completion tokens, {} USD in all (<a href="{}">per day</a>)',
            usage["analyses"],
            usage["prompt"] or 0,
            usage["completion"] or 0,
            self.llm_cost(obj),
            per_day,
        )

    @admin.action(description="Halt trading of selected users (their kill switch)", permissions=("change",))
    def halt_trading(self, request, queryset):
        self._set_trading_halted(request, queryset, True)

    @admin.action(description="Resume trading of selected users", permissions=("change",))
    def resume_trading(self, request, queryset):
        self._set_trading_halted(request, queryset, False)

    def _set_trading_halted(self, request, queryset, halted: bool) -> None:
        # A compare-and-swap per user: one who flipped their own switch meanwhile (API) keeps it.
        changing = [user for user in queryset if trading_halt_set(user, halted, actor=request.user)]
        verb = "Halted" if halted else "Resumed"
        for user in changing:
            self.log_change(request, user, f"{verb} trading.")
        unchanged = len(queryset) - len(changing)
        already = "halted" if halted else "trading"
        self.message_user(
            request,
            f"{verb} trading of {len(changing)} user(s); {unchanged} were already {already}.",
            messages.SUCCESS,
        )

    @admin.action(description="Recompute insights of selected users", permissions=("change",))
    def recompute_insights(self, request, queryset):
        """Rebuild the running totals from the analyses (after a bulk import or a suspected drift), then
        store a fresh snapshot of the insights, which the user's pages and the history plot read."""
        for user in queryset:
            totals = counters.rebuild(user)
            stored = snapshot(user)
            self.message_user(
                request,
                f"Recomputed the insights of {user.email}: {totals} running total(s) from "
                f"{stored.data['total_analyses']} analyses, {stored.resolved_count} resolved.",
                messages.SUCCESS,
            )

    @admin.display(description="Insights")
    def insights(self, obj):
        """What the user's analyses and trades say, computed now (database aggregates)."""
        if obj.pk is None:
            return "-"
        return format_html("<pre>{}</pre>", as_text(compute_insights(obj), obj.email))
