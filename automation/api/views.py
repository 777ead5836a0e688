from functools import partial

from django.db import transaction
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.services import trading_halt_set
from automation.models import AutomationSession, Backtest, Bot, CycleRun, KillSwitch
from automation.run_now import bot_run_now
from automation.services import BotActionError, QueueUnavailableError, RunNowLimitError, bot_start, bot_stop
from core.api_filters import NormalisedCharFilter, UtcDateTimeFilter, own_bots
from core.api_pagination import LongListPagination
from learning.policy import describe_policy, pin
from market.names import normalise_exchange, normalise_symbol

from .serializers import (
    ActionResultSerializer,
    BacktestReportSerializer,
    BacktestSerializer,
    BotSerializer,
    KillSwitchSerializer,
    PinSerializer,
    PolicySerializer,
    RunSerializer,
    SessionSerializer,
)

REFUSED = OpenApiResponse(description="The bot's state or settings do not allow it; `detail` says why.")
UNAVAILABLE = OpenApiResponse(description="The task queue cannot be reached; nothing was sent. Try again.")
RUN_NOW_LIMIT = OpenApiResponse(
    description="The plan's run-now requests of the hour are used up; `Retry-After` says when one is free."
)


class BotFilter(filters.FilterSet):
    exchange = NormalisedCharFilter(normalise=normalise_exchange)
    symbol = NormalisedCharFilter(normalise=normalise_symbol)

    class Meta:
        model = Bot
        fields = ("status", "mode", "exchange", "symbol", "timeframe")


class BotViewSet(viewsets.ModelViewSet):
    """Your bots. Validation is the web form's: a live bot needs live trading on the server, an exchange
    account of yours on its exchange and your confirmation; market fields change only while stopped."""

    serializer_class = BotSerializer
    pagination_class = None
    filterset_class = BotFilter
    ordering_fields = ("name", "created_at")
    ordering = ("name",)

    def get_queryset(self):
        return Bot.objects.filter(owner_id=self.request.user.pk)

    def perform_destroy(self, bot):
        with transaction.atomic():
            if bot.status != Bot.Status.STOPPED:
                bot_stop(bot, "deleted by its owner", actor=self.request.user)
            bot.delete()

    def _act(self, request, do):
        bot = self.get_object()
        try:
            slot = do(bot)
        except QueueUnavailableError as e:
            return Response({"detail": str(e)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        except RunNowLimitError as e:
            retry = {"Retry-After": str(e.retry_after)} if e.retry_after else None
            return Response({"detail": str(e)}, status=status.HTTP_429_TOO_MANY_REQUESTS, headers=retry)
        except BotActionError as e:
            return Response({"detail": str(e)}, status=status.HTTP_409_CONFLICT)
        bot.refresh_from_db()
        result = {"status": bot.status, **({"slot": slot} if isinstance(slot, str) else {})}
        return Response(ActionResultSerializer(result).data)

    @extend_schema(request=None, responses={200: ActionResultSerializer, 409: REFUSED})
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None, format=None):
        """Start the bot: open a session and put its cycle on the schedule."""
        return self._act(request, partial(bot_start, actor=request.user))

    @extend_schema(request=None, responses={200: ActionResultSerializer, 409: REFUSED})
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None, format=None):
        """Stop the bot and close its session."""
        return self._act(request, partial(bot_stop, actor=request.user))

    @extend_schema(
        request=None,
        responses={200: ActionResultSerializer, 409: REFUSED, 429: RUN_NOW_LIMIT, 503: UNAVAILABLE},
    )
    @action(detail=True, methods=["post"], url_path="run-now")
    def run_now(self, request, pk=None, format=None):
        """Queue the current period's cycle of a running bot at once."""
        return self._act(request, bot_run_now)

    @extend_schema(methods=["GET"], responses={200: PolicySerializer})
    @extend_schema(methods=["PATCH"], request=PinSerializer, responses={200: PolicySerializer})
    @action(detail=True, methods=["get", "patch"])
    def policy(self, request, pk=None, format=None):
        """The policy the bot's decisions use now (learned, or its settings until there is enough to learn
        from) with its provenance; PATCH pins values (null unpins)."""
        bot = self.get_object()
        if request.method == "PATCH":
            pins = PinSerializer(data=request.data)
            pins.is_valid(raise_exception=True)
            pin(bot, **pins.validated_data)
        return Response(PolicySerializer(describe_policy(bot)).data)


class SessionFilter(filters.FilterSet):
    bot = filters.ModelChoiceFilter(queryset=own_bots)
    started_after = UtcDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = UtcDateTimeFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = AutomationSession
        fields = ("bot",)


class SessionViewSet(viewsets.ReadOnlyModelViewSet):
    """The periods your bots ran: when, and why they stopped."""

    serializer_class = SessionSerializer
    pagination_class = LongListPagination
    filterset_class = SessionFilter
    ordering_fields = ("started_at",)
    ordering = ("-started_at",)

    def get_queryset(self):
        return AutomationSession.objects.filter(bot__owner_id=self.request.user.pk)


class RunFilter(filters.FilterSet):
    bot = filters.ModelChoiceFilter(queryset=own_bots)
    slot_after = UtcDateTimeFilter(field_name="slot", lookup_expr="gte")
    slot_before = UtcDateTimeFilter(field_name="slot", lookup_expr="lt")

    class Meta:
        model = CycleRun
        fields = ("bot", "status", "failed_step")


class RunViewSet(viewsets.ReadOnlyModelViewSet):
    """Each scheduled cycle of your bots: status, per-step timings and, for a failure, its step and reason."""

    serializer_class = RunSerializer
    pagination_class = LongListPagination
    filterset_class = RunFilter
    ordering_fields = ("slot", "created_at")
    ordering = ("-created_at",)

    def get_queryset(self):
        return CycleRun.objects.filter(bot__owner_id=self.request.user.pk).select_related("analysis")


class KillSwitchView(APIView):
    """Your kill switch: while engaged, none of your bots opens a trade. The platform's switch is the
    operator's (admin) and shown here read-only."""

    @extend_schema(responses={200: KillSwitchSerializer})
    def get(self, request):
        return Response(self._state(request.user))

    @extend_schema(request=KillSwitchSerializer, responses={200: KillSwitchSerializer})
    def put(self, request):
        given = KillSwitchSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        trading_halt_set(request.user, given.validated_data["engaged"], actor=request.user)
        return Response(self._state(request.user))

    @staticmethod
    def _state(user) -> dict:
        return KillSwitchSerializer(
            {"engaged": user.trading_halted, "global_engaged": KillSwitch.is_engaged()}
        ).data


class BacktestViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Your backtests: a stored market replayed with the technical analyst and your policy settings on a
    worker, into an account of its own. Create one, then read it again until `status` is DONE (its `report`,
    the replay report's figures) or FAILED (`error` says why). One at a time unless your plan says more."""

    filterset_fields = ("status",)
    pagination_class = LongListPagination  # newest first

    def get_queryset(self):
        return Backtest.objects.filter(owner_id=self.request.user.pk)

    def get_serializer_class(self):
        # The report only on a backtest's own page: it is tens of kilobytes.
        return BacktestReportSerializer if self.action == "retrieve" else BacktestSerializer

    @extend_schema(responses={201: BacktestSerializer, 400: None, 503: UNAVAILABLE})
    def create(self, request, *args, **kwargs):
        try:
            return super().create(request, *args, **kwargs)
        except QueueUnavailableError as e:
            return Response({"detail": str(e)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
