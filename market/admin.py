from django.contrib import admin

from .models import Candle, IndicatorSet, StoredMarket


@admin.register(Candle)
class CandleAdmin(admin.ModelAdmin):
    list_display = ("exchange", "symbol", "timeframe", "open_time", "open", "high", "low", "close", "volume")
    list_filter = ("exchange", "timeframe", "symbol")
    search_fields = ("symbol", "exchange")
    date_hierarchy = "open_time"
    show_full_result_count = False  # counting millions of candles on every page load is wasted work


@admin.register(IndicatorSet)
class IndicatorSetAdmin(admin.ModelAdmin):
    list_display = ("exchange", "symbol", "timeframe", "open_time", "candles", "created_at")
    list_filter = ("exchange", "timeframe", "symbol")
    search_fields = ("symbol", "exchange")
    date_hierarchy = "open_time"


@admin.register(StoredMarket)
class StoredMarketAdmin(admin.ModelAdmin):
    list_display = ("exchange", "symbol", "asset_class", "fee_pct", "spread_pct", "updated_at")
    list_filter = ("asset_class",)
    search_fields = ("symbol", "exchange")
    # The costs are editable (paper trading reads them afresh within a minute, COSTS_CACHE_SECONDS in
    # trades.brokers.simulation). The splits say what was done to the stored candles on import; editing
    # them here would not undo it.
    readonly_fields = ("splits", "created_at", "updated_at")
