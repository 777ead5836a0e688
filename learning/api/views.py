from django.db.models import F
from django.http import FileResponse, Http404
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import renderers, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_filters import NormalisedCharFilter, UtcDateTimeFilter, own_bots
from core.api_lists import LeanListMixin
from core.api_pagination import LongListPagination
from learning.insights import compute_insights
from learning.models import AILearningData
from market.names import normalise_symbol

from .serializers import AnalysisSerializer


class AnalysisFilter(filters.FilterSet):
    bot = filters.ModelChoiceFilter(queryset=own_bots)
    symbol = NormalisedCharFilter(normalise=normalise_symbol)
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")
    resolved = filters.BooleanFilter(method="_resolved", label="Resolved (outcome known)")

    class Meta:
        model = AILearningData
        fields = ("bot", "symbol", "timeframe", "recommendation", "market_sentiment", "outcome", "untraded")

    def _resolved(self, queryset, name, value):
        return queryset.exclude(outcome="") if value else queryset.filter(outcome="")


class PNGRenderer(renderers.BaseRenderer):
    """Lets a client that asks for image/png reach the chart (its errors are JSON: handle_exception)."""

    media_type = "image/png"
    format = "png"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class AnalysisViewSet(LeanListMixin, viewsets.ReadOnlyModelViewSet):
    """Every analysis of your bots, with the chart the analyst saw and, once known, what happened."""

    serializer_class = AnalysisSerializer
    pagination_class = LongListPagination
    filterset_class = AnalysisFilter
    ordering_fields = ("created_at", "confidence_score")
    ordering = ("-created_at",)

    def get_queryset(self):
        # The trade's id and the prompt's hash, not whole rows joined in: the page shows no more of them.
        return AILearningData.objects.filter(user_id=self.request.user.pk).annotate(
            trade_pk=F("trade__id"), prompt_sha256=F("prompt_version__sha256")
        )

    def handle_exception(self, exc):
        # An error about the chart is JSON, even to a client that asked for the PNG.
        if self.action == "chart":
            self.request.accepted_renderer = renderers.JSONRenderer()
            self.request.accepted_media_type = self.request.accepted_renderer.media_type
        return super().handle_exception(exc)

    @extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY})
    @action(detail=True, url_path="chart", renderer_classes=[renderers.JSONRenderer, PNGRenderer])
    def chart(self, request, pk=None, format=None):
        """The chart the analyst saw, as PNG."""
        analysis = self.get_object()
        if not analysis.screenshot:
            raise Http404("This analysis has no stored chart.")
        return FileResponse(analysis.screenshot.open("rb"), content_type="image/png")


class ScopeSerializer(serializers.Serializer):
    bot = serializers.IntegerField(required=False, min_value=1, help_text="One of your bots.")
    symbol = serializers.CharField(required=False, max_length=31)
    timeframe = serializers.CharField(required=False, max_length=5)

    def validate_symbol(self, value):
        return normalise_symbol(value)

    def validate_bot(self, value):
        bot = self.context["request"].user.bots.filter(pk=value).first()
        if bot is None:
            raise serializers.ValidationError("You have no bot with this id.")
        return bot


SCOPE = [
    OpenApiParameter("bot", OpenApiTypes.INT, description="Narrow to one of your bots."),
    OpenApiParameter("symbol", OpenApiTypes.STR, description="Narrow to a symbol, e.g. BTC/USDT."),
    OpenApiParameter("timeframe", OpenApiTypes.STR, description="Narrow to a timeframe, e.g. 1h."),
]


def _insights(request) -> dict:
    scope = ScopeSerializer(data=request.query_params, context={"request": request})
    scope.is_valid(raise_exception=True)
    return compute_insights(request.user, **scope.validated_data)


class InsightsView(APIView):
    """What your analyses and trades say so far: accuracy by confidence, timeframe, sentiment, symbol,
    regime and prompt version, calibration and Brier score, trades' expectancy, failures and
    recommendations; every figure with its n and 95 % interval (formulas: docs/learning.md)."""

    @extend_schema(parameters=SCOPE, responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return Response(_insights(request))


class RecommendationsView(APIView):
    """The recommendations and common failures of your insights, each with the numbers behind it."""

    @extend_schema(parameters=SCOPE, responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        insights = _insights(request)
        return Response({"recommendations": insights["recommendations"], "failures": insights["failures"]})
