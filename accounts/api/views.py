from django.db.models import ProtectedError
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from accounts.models import ApiToken, AuditEvent, ExchangeAccount, ModelConnection
from accounts.quotas import QuotaExceededError
from accounts.services import exchange_account_delete
from core.api_filters import NormalisedCharFilter
from core.api_pagination import LongListPagination
from market.names import normalise_exchange

from .serializers import (
    ApiTokenSerializer,
    AuditEventSerializer,
    ExchangeAccountSerializer,
    ModelConnectionSerializer,
    TokenRequestSerializer,
)


class LoginRateThrottle(AnonRateThrottle):
    """Password guessing through the token endpoint is throttled per address, signed in or not."""

    scope = "login"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class TokenCreateView(APIView):
    """Exchange an e-mail and password for an API token. The token is in this answer only; keep it."""

    authentication_classes = ()
    permission_classes = (permissions.AllowAny,)
    throttle_classes = (LoginRateThrottle,)

    @extend_schema(
        request=TokenRequestSerializer,
        responses={
            201: ApiTokenSerializer,
            400: OpenApiResponse(
                description="Wrong e-mail or password, or as many tokens as your plan allows."
            ),
        },
        auth=[],
    )
    def post(self, request):
        given = TokenRequestSerializer(data=request.data, context={"request": request})
        given.is_valid(raise_exception=True)
        try:
            token, plain = ApiToken.issue(given.validated_data["user"], given.validated_data["name"])
        except QuotaExceededError as e:
            raise serializers.ValidationError(serializers.as_serializer_error(e)) from None
        return Response(
            ApiTokenSerializer(token, context={"plain": plain}).data, status=status.HTTP_201_CREATED
        )


class ApiTokenViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Your API tokens (never the tokens themselves, which are stored only as hashes). DELETE revokes one."""

    serializer_class = ApiTokenSerializer
    pagination_class = None

    def get_queryset(self):
        return ApiToken.objects.filter(user_id=self.request.user.pk)


class ExchangeAccountFilter(filters.FilterSet):
    exchange = NormalisedCharFilter(normalise=normalise_exchange)

    class Meta:
        model = ExchangeAccount
        fields = ("exchange", "sandbox")


class ExchangeAccountViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your exchange accounts. The API key, secret and passphrase are write-only: stored encrypted, never
    returned. To change keys, add a new account and delete the old one."""

    serializer_class = ExchangeAccountSerializer
    pagination_class = None
    filterset_class = ExchangeAccountFilter
    ordering_fields = ("label", "created_at")
    ordering = ("label",)

    def get_queryset(self):
        return ExchangeAccount.objects.filter(owner_id=self.request.user.pk)

    @extend_schema(responses={204: None, 409: OpenApiResponse(description="A bot still uses the account.")})
    def destroy(self, request, *args, **kwargs):
        account = self.get_object()
        try:
            exchange_account_delete(account, actor=request.user)
        except ProtectedError:
            return Response(
                {"detail": f"“{account.label}” is used by a bot; change the bot's account first."},
                status=status.HTTP_409_CONFLICT,
            )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ModelConnectionViewSet(viewsets.ModelViewSet):
    """Your own model servers (an OpenAI key, or an OpenAI-compatible server such as Ollama or vLLM), which a
    bot may analyse with instead of the platform's model (`analyst` OWN_MODEL, `model_connection`,
    `model_name`). The API key is write-only: stored encrypted, never returned."""

    serializer_class = ModelConnectionSerializer
    pagination_class = None
    ordering_fields = ("label", "created_at")
    ordering = ("label",)

    def get_queryset(self):
        return ModelConnection.objects.filter(owner_id=self.request.user.pk)

    @extend_schema(
        responses={204: None, 409: OpenApiResponse(description="A bot still uses the connection.")}
    )
    def destroy(self, request, *args, **kwargs):
        connection = self.get_object()
        try:
            connection.delete()
        except ProtectedError:
            return Response(
                {"detail": f"“{connection.label}” is used by a bot; choose another model for it first."},
                status=status.HTTP_409_CONFLICT,
            )
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """What was done to your live trading, by whom and when: exchange accounts added and deleted, live mode
    and its confirmation, live bots started, stopped and paused, live orders, their stop-loss and take-profit
    on the exchange, live trades closed, your trading halted and resumed. Newest first; never changed."""

    serializer_class = AuditEventSerializer
    pagination_class = LongListPagination
    filterset_fields = ("action",)
    ordering_fields = ("created_at",)
    ordering = ("-created_at",)

    def get_queryset(self):
        return AuditEvent.objects.filter(user_id=self.request.user.pk)
