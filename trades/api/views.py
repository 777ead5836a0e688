from django_filters import rest_framework as filters
from rest_framework import viewsets

from core.api_filters import NormalisedCharFilter, UtcDateTimeFilter, own_bots
from core.api_lists import LeanListMixin
from core.api_pagination import LongListPagination
from market.names import normalise_symbol
from trades.models import Trade

from .serializers import TradeSerializer


class TradeFilter(filters.FilterSet):
    bot = filters.ModelChoiceFilter(queryset=own_bots)
    symbol = NormalisedCharFilter(normalise=normalise_symbol)
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Trade
        fields = ("bot", "symbol", "side", "status", "outcome", "is_simulated")


class TradeViewSet(LeanListMixin, viewsets.ReadOnlyModelViewSet):
    """Your trades, paper and live, each linked to the analysis that opened it."""

    serializer_class = TradeSerializer
    pagination_class = LongListPagination
    filterset_class = TradeFilter
    ordering_fields = ("created_at", "pnl")
    ordering = ("-created_at",)

    def get_queryset(self):
        return Trade.objects.filter(owner_id=self.request.user.pk)

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        # A cursor pages by its column's values, which a null cannot be compared with (DRF wrote `p=None`
        # into the links): ordered by P&L, the list holds the trades that have one, the closed ones.
        if "pnl" in queryset.query.order_by or "-pnl" in queryset.query.order_by:
            queryset = queryset.filter(pnl__isnull=False)
        return queryset
