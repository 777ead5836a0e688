"""The REST API's routes (`/api/v1/`), its OpenAPI schema (`/api/schema/`) and Swagger UI (`/api/docs/`).
Each app keeps its serializers and views in its own `api/` package; this file only puts them together."""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.reverse import reverse
from rest_framework.routers import APIRootView, DefaultRouter

from accounts.api.views import (
    ApiTokenViewSet,
    AuditEventViewSet,
    ExchangeAccountViewSet,
    ModelConnectionViewSet,
    TokenCreateView,
)
from automation.api.views import BacktestViewSet, BotViewSet, KillSwitchView, RunViewSet, SessionViewSet
from learning.api.views import AnalysisViewSet, InsightsView, RecommendationsView
from notifications.api.views import ChannelViewSet, DeliveryViewSet, SwitchesView
from trades.api.views import TradeViewSet

# Resources that are views of their own, not a viewset's list, by their URL names; a bot's policy is
# /api/v1/bots/{id}/policy/.
OTHER_RESOURCES = {
    "insights": "api-insights",
    "recommendations": "api-recommendations",
    "kill-switch": "api-kill-switch",
    "auth-token": "api-token",
    "schema": "api-schema",
    "docs": "api-docs",
}


class ApiRoot(APIRootView):
    """Every resource of the API, with its address. A bot's policy is at `bots/{id}/policy/`, its actions at
    `bots/{id}/start/`, `stop/` and `run-now/`; `schema` is the OpenAPI description, `docs` a browsable
    Swagger UI of it."""

    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        for key, url_name in OTHER_RESOURCES.items():
            response.data[key] = reverse(url_name, request=request)  # these routes take no format suffix
        return response


router = DefaultRouter()
router.APIRootView = ApiRoot
router.register("bots", BotViewSet, basename="bot")
router.register("sessions", SessionViewSet, basename="session")
router.register("runs", RunViewSet, basename="run")
router.register("analyses", AnalysisViewSet, basename="analysis")
router.register("trades", TradeViewSet, basename="trade")
router.register("exchange-accounts", ExchangeAccountViewSet, basename="exchange-account")
router.register("model-connections", ModelConnectionViewSet, basename="model-connection")
router.register("tokens", ApiTokenViewSet, basename="token")
router.register("audit-events", AuditEventViewSet, basename="audit-event")
router.register("backtests", BacktestViewSet, basename="backtest")
router.register("notification-channels", ChannelViewSet, basename="notification-channel")
router.register("notification-deliveries", DeliveryViewSet, basename="notification-delivery")


class DocsPermission(BasePermission):
    """The schema for anyone when API_DOCS_PUBLIC is on (local), else for a signed-in user or a token."""

    def has_permission(self, request, view):
        return settings.API_DOCS_PUBLIC or IsAuthenticated().has_permission(request, view)


swagger_ui_view = SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api_docs.html")


def swagger_ui(request, *args, **kwargs):
    """Swagger UI with its start-up script served as a file (?script=), not inline, for the CSP; behind
    login unless API_DOCS_PUBLIC, like the schema it reads (a browser is sent to sign in)."""
    if not (settings.API_DOCS_PUBLIC or request.user.is_authenticated):
        return redirect_to_login(request.get_full_path())
    return swagger_ui_view(request, *args, **kwargs)


urlpatterns = [
    path("api/v1/auth/token/", TokenCreateView.as_view(), name="api-token"),
    path("api/v1/insights/", InsightsView.as_view(), name="api-insights"),
    path("api/v1/recommendations/", RecommendationsView.as_view(), name="api-recommendations"),
    path("api/v1/kill-switch/", KillSwitchView.as_view(), name="api-kill-switch"),
    path("api/v1/notification-switches/", SwitchesView.as_view(), name="api-notification-switches"),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[DocsPermission]), name="api-schema"),
    path("api/docs/", swagger_ui, name="api-docs"),
]
