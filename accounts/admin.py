from django.contrib import admin

from core.admin_base import ViewOnlyAdmin

from .models import ApiToken, AuditEvent, ExchangeAccount, ModelConnection, Plan

# The users' admin page is registered by learning/admin.py: it shows and recomputes their LLM usage and
# insights, which learning owns (accounts sits below learning, docs/architecture.md).


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    """The quotas of each plan (accounts.quotas); users without a plan get the TRADINGAI_DEFAULT_* settings.
    A change applies at once: to the next bot, account or token created, run-now and cycle."""

    list_display = (
        "name", "max_running_bots", "max_bots", "max_exchange_accounts", "max_api_tokens", "run_now_per_hour",
        "cycles_per_day", "monthly_llm_usd", "backtests_at_once", "backtest_max_candles",
    )  # fmt: skip
    list_filter = ("max_running_bots",)
    search_fields = ("name",)
    fieldsets = (
        (None, {"fields": ("name",)}),
        (
            "What a user may hold",
            {"fields": ("max_bots", "max_exchange_accounts", "max_api_tokens", "max_model_connections")},
        ),
        (
            "What a user may run",
            {
                "fields": (
                    "max_running_bots",
                    "run_now_per_hour",
                    "cycles_per_day",
                    "backtests_at_once",
                    "backtest_max_candles",
                )
            },
        ),
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


@admin.register(ModelConnection)
class ModelConnectionAdmin(admin.ModelAdmin):
    """Operators see which model servers users connected, never their keys (as for exchange accounts): only
    the owner enters a key, in the app."""

    list_display = ("label", "owner", "base_url", "masked_key", "created_at")
    search_fields = ("label", "owner__email", "base_url")
    list_select_related = ("owner",)
    fields = ("owner", "label", "base_url", "masked_key", "created_at", "updated_at")
    readonly_fields = ("owner", "base_url", "masked_key", "created_at", "updated_at")

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
