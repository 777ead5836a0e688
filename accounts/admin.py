from decimal import Decimal

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.db.models import Count, DecimalField, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils.html import format_html

from core.admin_base import ViewOnlyAdmin
from learning import counters
from learning.insights import as_text, compute_insights, snapshot
from learning.models import AILearningData

from .models import ApiToken, AuditEvent, ExchangeAccount, Plan, User
from .services import trading_halt_set

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


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    """The quotas of each plan (accounts.quotas); users without a plan get the TRADINGAI_DEFAULT_* settings.
    A change applies at once: to the next bot, account or token created, run-now and cycle."""

    list_display = (
        "name", "max_running_bots", "max_bots", "max_exchange_accounts", "max_api_tokens", "run_now_per_hour",
        "cycles_per_day", "monthly_llm_usd",
    )  # fmt: skip
    list_filter = ("max_running_bots",)
    search_fields = ("name",)
    fieldsets = (
        (None, {"fields": ("name",)}),
        ("What a user may hold", {"fields": ("max_bots", "max_exchange_accounts", "max_api_tokens")}),
        ("What a user may run", {"fields": ("max_running_bots", "run_now_per_hour", "cycles_per_day")}),
        ("What a user may spend", {"fields": ("monthly_llm_usd",)}),
    )


@admin.register(ExchangeAccount)
class ExchangeAccountAdmin(admin.ModelAdmin):
    """Operators see which accounts exist, never their keys: the encrypted columns are not fields here,
    and only the owner can enter credentials (in the app), so the admin has no form for them."""

    list_display = ("label", "owner", "exchange", "sandbox", "masked_key", "created_at")
    list_filter = ("exchange", "sandbox")
    search_fields = ("label", "owner__email", "exchange")
    list_select_related = ("owner",)
    fields = ("owner", "label", "exchange", "sandbox", "masked_key", "created_at", "updated_at")
    readonly_fields = ("owner", "exchange", "masked_key", "created_at", "updated_at")

    def has_add_permission(self, request):
        return False

    @admin.display(description="API key")
    def masked_key(self, obj):
        return obj.masked_key


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Operators see which tokens exist and when they were last used, and can revoke one (delete). Only the
    hash of a token is stored and tokens are issued to their owner only, so there is nothing to add or edit
    here, and the hash is not shown."""

    list_display = ("name", "user", "hint_shown", "created_at", "last_used_at")
    list_filter = ("created_at", "last_used_at")
    search_fields = ("name", "user__email")
    list_select_related = ("user",)
    fields = ("user", "name", "hint_shown", "created_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="token")
    def hint_shown(self, obj):
        return f"{ApiToken.PREFIX}{obj.hint}…"


@admin.register(AuditEvent)
class AuditEventAdmin(ViewOnlyAdmin):
    """Every account's audit log, and the platform kill switch's. Events are written by the actions they
    record and are evidence of them, so no one changes or deletes one here, superusers included."""

    list_display = ("created_at", "account", "by", "action", "summary")
    list_filter = ("action", "created_at")
    search_fields = ("user__email", "actor__email")
    list_select_related = ("user", "actor")
    date_hierarchy = "created_at"
    fields = ("created_at", "user", "actor", "action", "summary", "details")
    readonly_fields = fields

    @admin.display(description="user", ordering="user__email")
    def account(self, obj):
        return obj.user or "(every account)"

    @admin.display(description="actor", ordering="actor__email")
    def by(self, obj):
        return obj.actor or "(the platform)"
