from django.contrib import admin

from .models import Candle, IndicatorSet


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
