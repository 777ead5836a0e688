from django.contrib import admin, messages
from django.db import models

from .models import AutomationSession, Bot, CycleRun, Heartbeat, KillSwitch
from .services import bot_pause


@admin.register(Bot)
class BotAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "owner",
        "exchange",
        "symbol",
        "timeframe",
        "mode",
        "status",
        "analyst",
        "updated_at",
    )
    list_filter = ("status", "mode", "timeframe", "analyst", "chart_source", "exchange")
    search_fields = ("name", "owner__email", "symbol", "exchange")
    list_select_related = ("owner",)
    raw_id_fields = ("owner", "exchange_account")
    readonly_fields = ("created_at", "updated_at")
    actions = ("pause_bots",)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    @admin.action(description="Pause selected running bots")
    def pause_bots(self, request, queryset):
        paused = sum(bot_pause(bot, f"paused by operator {request.user.email}") for bot in queryset)
        skipped = queryset.count() - paused
        self.message_user(request, f"Paused {paused} bot(s); {skipped} were not running.", messages.SUCCESS)


@admin.register(AutomationSession)
class AutomationSessionAdmin(admin.ModelAdmin):
    list_display = ("bot", "started_at", "stopped_at", "stop_reason")
    list_filter = (("stopped_at", admin.EmptyFieldListFilter), "started_at")
    search_fields = ("bot__name", "bot__owner__email", "stop_reason")
    list_select_related = ("bot",)
    raw_id_fields = ("bot",)
    date_hierarchy = "started_at"


@admin.register(CycleRun)
class CycleRunAdmin(admin.ModelAdmin):
    list_display = ("bot", "slot", "status", "failed_step", "short_error", "started_at", "finished_at")
    list_filter = ("status", "failed_step", "slot")
    search_fields = ("bot__name", "bot__owner__email", "error")
    list_select_related = ("bot",)
    raw_id_fields = ("bot", "session")
    date_hierarchy = "slot"

    @admin.display(description="error")
    def short_error(self, obj):
        return obj.error[:100]


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ("name", "seen_at", "detail")
    search_fields = ("name",)
    list_filter = ("name",)


@admin.register(KillSwitch)
class KillSwitchAdmin(admin.ModelAdmin):
    list_display = ("__str__", "engaged", "reason", "changed_at")
    list_filter = ("engaged",)
    search_fields = ("reason",)
    fields = ("engaged", "reason", "changed_at")
    readonly_fields = ("changed_at",)

    def has_add_permission(self, request):
        return not KillSwitch.objects.exists()  # one switch for the whole platform
