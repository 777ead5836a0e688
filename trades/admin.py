from django.contrib import admin

from .models import Trade


@admin.register(Trade)
class TradeAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "owner",
        "bot",
        "symbol",
        "side",
        "amount",
        "price",
        "status",
        "outcome",
        "pnl_percent",
        "is_simulated",
    )
    list_filter = ("status", "outcome", "side", "is_simulated", "is_automated", "symbol")
    search_fields = ("owner__email", "bot__name", "symbol", "client_order_id", "exchange_order_id")
    list_select_related = ("owner", "bot")
    raw_id_fields = ("owner", "bot", "session", "analysis")
    date_hierarchy = "created_at"
