"""The REST API's routes (`/api/v1/`), its OpenAPI schema (`/api/schema/`) and Swagger UI (`/api/docs/`).
Each app keeps its serializers and views in its own `api/` package; this file only puts them together."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from accounts.api.views import ApiTokenViewSet, AuditEventViewSet, ExchangeAccountViewSet, TokenCreateView
from automation.api.views import BotViewSet, KillSwitchView, RunViewSet, SessionViewSet
from learning.api.views import AnalysisViewSet, InsightsView, RecommendationsView
from trades.api.views import TradeViewSet

router = DefaultRouter()
router.register("bots", BotViewSet, basename="bot")
router.register("sessions", SessionViewSet, basename="session")
router.register("runs", RunViewSet, basename="run")
router.register("analyses", AnalysisViewSet, basename="analysis")
router.register("trades", TradeViewSet, basename="trade")
router.register("exchange-accounts", ExchangeAccountViewSet, basename="exchange-account")
router.register("tokens", ApiTokenViewSet, basename="token")
router.register("audit-events", AuditEventViewSet, basename="audit-event")

urlpatterns = [
    path("api/v1/auth/token/", TokenCreateView.as_view(), name="api-token"),
    path("api/v1/insights/", InsightsView.as_view(), name="api-insights"),
    path("api/v1/recommendations/", RecommendationsView.as_view(), name="api-recommendations"),
    path("api/v1/kill-switch/", KillSwitchView.as_view(), name="api-kill-switch"),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
