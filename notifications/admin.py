from django.contrib import admin

from core.admin_base import ViewOnlyAdmin

from .models import Channel, Delivery, EventSwitch, Notification


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    """Operators see which channels exist, never their secrets: the encrypted column is not a field here,
    and only the owner enters or changes them (in the app); an operator may delete one (a channel that
    spams its receiver)."""

    list_display = ("label", "owner", "kind", "hint", "created_at")
    list_filter = ("kind",)
    search_fields = ("label", "owner__email")
    list_select_related = ("owner",)
    fields = ("owner", "label", "kind", "target", "hint", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False


@admin.register(EventSwitch)
class EventSwitchAdmin(ViewOnlyAdmin):
    list_display = ("user", "event", "enabled")
    list_filter = ("event", "enabled")
    search_fields = ("user__email",)


@admin.register(Notification)
class NotificationAdmin(ViewOnlyAdmin):
    list_display = ("title", "user", "event", "created_at")
    list_filter = ("event",)
    search_fields = ("title", "user__email")
    list_select_related = ("user",)


@admin.register(Delivery)
class DeliveryAdmin(ViewOnlyAdmin):
    """The delivery log: failures by channel kind and status code, at a glance."""

    list_display = (
        "notification",
        "user",
        "channel_label",
        "kind",
        "status",
        "status_code",
        "error",
        "updated_at",
    )
    list_filter = ("status", "kind", "status_code")
    search_fields = ("user__email", "channel_label", "error")
    list_select_related = ("notification", "user")
