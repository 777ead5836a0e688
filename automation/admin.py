from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from core.admin_base import ViewOnlyAdmin

from .models import (
    AutomationSession,
    Backtest,
    Bot,
    CycleRun,
    Heartbeat,
    KillSwitch,
    MetricTotal,
    ModelPrice,
    RunNowRequest,
)
from .services import BotActionError, bot_pause, bot_save, bot_start, bot_stop, kill_switch_set


def _named(bot: Bot) -> str:
    # Bot names are unique per owner only, so an operator needs the owner to tell two "BTC bot"s apart.
    return f"“{bot.name}” ({bot.owner.email})"


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
        "next_due",
        "analyst",
        "updated_at",
    )
    list_filter = ("status", "mode", "timeframe", "analyst", "chart_source", "exchange")
    search_fields = ("name", "owner__email", "symbol", "exchange")
    list_select_related = ("owner",)
    raw_id_fields = ("owner", "exchange_account", "model_connection")
    # The status changes through the actions (start, pause, stop), which open and close sessions and
    # schedules; a status typed into the form would change neither. The next due moment is the dispatcher's
    # (automation.dispatch): shown, so that an operator sees when a running bot's cycle is sent next.
    readonly_fields = ("status", "next_due", "created_at", "updated_at")
    actions = ("pause_bots", "resume_bots", "stop_bots")
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def save_model(self, request, obj, form, change):
        # Through the owner's path, so that an operator switching a bot to live or confirming it for real
        # orders is in the owner's audit log too.
        before = (form.initial["mode"], form.initial["live_confirmed"]) if change else None
        bot_save(obj, before, actor=request.user)

    @admin.action(description="Pause selected running bots", permissions=("change",))
    def pause_bots(self, request, queryset):
        paused = sum(
            bot_pause(bot, f"paused by operator {request.user.email}", actor=request.user) for bot in queryset
        )
        skipped = queryset.count() - paused
        self.message_user(request, f"Paused {paused} bot(s); {skipped} were not running.", messages.SUCCESS)

    @admin.action(description="Resume selected paused bots", permissions=("change",))
    def resume_bots(self, request, queryset):
        """Start paused bots again, through the same checks as the owner's Start button: a bot that could
        not start (plan limit, live trading off, market gone) stays paused and the reason is shown."""
        resumed, not_paused = [], []
        for bot in queryset.select_related("owner", "owner__plan", "exchange_account"):
            # Only paused bots: a stopped bot stays stopped until its owner decides to start it again.
            if bot.status != Bot.Status.PAUSED:
                not_paused.append(_named(bot))
                continue
            try:
                bot_start(bot, actor=request.user)
            except BotActionError as e:
                self.message_user(request, f"{_named(bot)} was not resumed: {e}", messages.ERROR)
            else:
                resumed.append(_named(bot))
        if resumed:
            self.message_user(request, f"Resumed {len(resumed)} bot(s): {', '.join(resumed)}.")
        if not_paused:
            self.message_user(
                request, f"Not paused, left as they were: {', '.join(not_paused)}.", messages.WARNING
            )

    @admin.action(description="Stop selected bots", permissions=("change",))
    def stop_bots(self, request, queryset):
        stopped, already = [], []
        for bot in queryset.select_related("owner"):
            try:
                bot_stop(bot, f"stopped by operator {request.user.email}", actor=request.user)
            except BotActionError:
                already.append(_named(bot))
            else:
                stopped.append(_named(bot))
        if stopped:
            self.message_user(request, f"Stopped {len(stopped)} bot(s): {', '.join(stopped)}.")
        if already:
            self.message_user(request, f"Already stopped: {', '.join(already)}.", messages.WARNING)


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    """What each model costs: the cost of every later analysis with it is computed from this row (one the
    table lacks is priced at OPENAI_INPUT_USD_PER_MTOK / OPENAI_OUTPUT_USD_PER_MTOK). Costs already stored
    stay as they were."""

    list_display = ("model", "input_usd_per_mtok", "output_usd_per_mtok", "updated_at")
    search_fields = ("model",)


@admin.register(AutomationSession)
class AutomationSessionAdmin(admin.ModelAdmin):
    list_display = ("bot", "started_at", "stopped_at", "stop_reason")
    list_filter = (("stopped_at", admin.EmptyFieldListFilter), "started_at")
    search_fields = ("bot__name", "bot__owner__email", "stop_reason")
    list_select_related = ("bot",)
    raw_id_fields = ("bot",)
    date_hierarchy = "started_at"


class FailedStepFilter(admin.SimpleListFilter):
    """The steps runs have actually failed in, without the blank of every run that did not fail."""

    title = "failed step"
    parameter_name = "failed_step"

    def lookups(self, request, model_admin):
        steps = (
            CycleRun.objects.exclude(failed_step="")
            .order_by("failed_step")
            .values_list("failed_step", flat=True)
            .distinct()
        )
        return [(step, step) for step in steps]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(failed_step=self.value())
        return queryset


@admin.register(CycleRun)
class CycleRunAdmin(ViewOnlyAdmin):
    """Runs are the cycle's record of what it did; they are written by the cycle alone, so here they can
    only be looked at (deleting one would also free its slot for a second run). Failed runs: filter on
    status Failed, then on the step."""

    list_display = (
        "bot",
        "bot__owner",
        "slot",
        "status",
        "step",
        "failed_step",
        "error_summary",
        "started_at",
        "finished_at",
    )
    list_filter = ("status", FailedStepFilter, "slot")
    search_fields = ("bot__name", "bot__owner__email", "error")
    list_select_related = ("bot", "bot__owner")
    date_hierarchy = "slot"
    fields = (
        "bot",
        "session",
        "slot",
        "status",
        "started_at",
        "finished_at",
        "failed_step",
        "full_error",
        "timings",
        "analysis_link",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="error")
    def error_summary(self, obj):
        first_line = obj.error.strip().split("\n", 1)[0] if obj.error else ""
        return Truncator(first_line).chars(100)

    @admin.display(description="error")
    def full_error(self, obj):
        if not obj.error:
            return "-"
        return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', obj.error)

    @admin.display(description="analysis")
    def analysis_link(self, obj):
        # The analysis is recorded before the steps that may fail after it, so a failed run can have one.
        analysis = getattr(obj, "analysis", None)
        if analysis is None:
            return "-"
        url = reverse("admin:learning_ailearningdata_change", args=[analysis.pk])
        return format_html('<a href="{}">{}</a>', url, analysis)


@admin.register(RunNowRequest)
class RunNowRequestAdmin(ViewOnlyAdmin):
    """The run-nows counted against users' plans (automation.quotas): what an operator reads when a user
    asks why run-now was refused."""

    list_display = ("at", "user", "bot")
    list_select_related = ("user", "bot")
    search_fields = ("user__email", "bot__name")
    date_hierarchy = "at"


@admin.register(Backtest)
class BacktestAdmin(ViewOnlyAdmin):
    """Users' backtests (automation.backtests): what an operator reads when one failed or a user asks why
    another was refused. The report's figures are the user's page's; here, what ran and how it ended."""

    list_display = ("pk", "owner", "exchange", "symbol", "timeframe", "status", "cycles_done", "created_at")
    list_filter = ("status", "timeframe")
    list_select_related = ("owner",)
    search_fields = ("owner__email", "symbol", "exchange")
    date_hierarchy = "created_at"
    exclude = ("report",)


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ("name", "seen_at", "detail")
    search_fields = ("name",)
    list_filter = ("name",)


@admin.register(MetricTotal)
class MetricTotalAdmin(ViewOnlyAdmin):
    """The product's metrics as /metrics reads them (automation.metrics); the cycles write them."""

    list_display = ("name", "labels", "value")
    search_fields = ("name", "labels")
    list_filter = ("name",)


class KillSwitchFlipForm(forms.Form):
    # The state asked for, not "toggle": a page left open, or a second operator, cannot flip it back.
    engage = forms.BooleanField(required=False, widget=forms.HiddenInput)
    reason = forms.CharField(
        max_length=255,
        widget=forms.TextInput(attrs={"class": "vTextField"}),
        help_text="Shown with the switch, and kept in the switch's history with your name.",
    )


@admin.register(KillSwitch)
class KillSwitchAdmin(admin.ModelAdmin):
    """The switch is flipped with the Engage/Disengage button only, which asks for a reason and records who
    flipped it in the history; the generic form would let it change silently."""

    list_display = ("__str__", "engaged", "reason", "changed_at")
    list_filter = ("engaged",)
    search_fields = ("reason",)
    fields = ("engaged", "reason", "changed_at")
    readonly_fields = fields

    def get_urls(self):
        flip = path("flip/", self.admin_site.admin_view(self.flip_view), name="automation_killswitch_flip")
        return [flip, *super().get_urls()]

    def has_add_permission(self, request):
        return False  # the flip creates the one row when there is none

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def may_flip(self, request) -> bool:
        return super().has_change_permission(request)

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "kill_switch_engaged": KillSwitch.is_engaged(),
            "may_flip": self.may_flip(request),
        }
        return super().changelist_view(request, extra_context)

    def flip_view(self, request):
        if not self.may_flip(request):
            raise PermissionDenied
        engaged = KillSwitch.is_engaged()
        form = KillSwitchFlipForm(request.POST or None, initial={"engage": not engaged})
        if request.method == "POST" and form.is_valid():
            switch = kill_switch_set(
                form.cleaned_data["engage"], form.cleaned_data["reason"], actor=request.user
            )
            if switch.engaged:
                done = "Engaged the kill switch: no bot opens a trade until it is disengaged."
            else:
                done = "Disengaged the kill switch: bots may trade again (owners' own switches still apply)."
            self.log_change(request, switch, f"{done} Reason: {switch.reason}")
            self.message_user(request, done, messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:automation_killswitch_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Disengage the kill switch" if engaged else "Engage the kill switch",
            "opts": self.opts,
            "form": form,
            "engaged": engaged,
            "switch": KillSwitch.objects.order_by("pk").first(),
        }
        return TemplateResponse(request, "admin/automation/killswitch/flip.html", context)
