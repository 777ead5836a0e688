from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_pagination import LongListPagination

from .. import services
from ..models import Channel, Delivery
from .serializers import ChannelSerializer, DeliverySerializer, SwitchesSerializer


class ChannelViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Where your notifications go: e-mail (your account's address), Slack, Discord, Telegram, or a signed
    webhook (docs: the Notifications page). Secrets are write-only; to change one, add a channel and delete
    the old one."""

    serializer_class = ChannelSerializer
    pagination_class = None
    filterset_fields = ("kind",)
    ordering_fields = ("label", "created_at")
    ordering = ("label",)

    def get_queryset(self):
        return Channel.objects.filter(owner_id=self.request.user.pk)

    @extend_schema(request=None, responses={202: DeliverySerializer})
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None, format=None):
        """Send a test message to this channel; the delivery's state is in notification-deliveries."""
        notification = services.send_test_message(self.get_object())
        return Response(
            DeliverySerializer(notification.deliveries.get()).data, status=status.HTTP_202_ACCEPTED
        )


class DeliveryViewSet(viewsets.ReadOnlyModelViewSet):
    """The delivery log: each notification on each channel, its state, and every attempt (time, HTTP status,
    error). Newest first."""

    serializer_class = DeliverySerializer
    pagination_class = LongListPagination
    filterset_fields = ("status", "kind")
    ordering_fields = ("created_at",)
    ordering = ("-created_at",)

    def get_queryset(self):
        return Delivery.objects.filter(user_id=self.request.user.pk).select_related("notification")


class SwitchesView(APIView):
    """Your switch per event; PUT or PATCH what changes (events left out keep their switch)."""

    @extend_schema(responses={200: SwitchesSerializer})
    def get(self, request):
        return Response(services.switches_of(request.user))

    @extend_schema(request=SwitchesSerializer, responses={200: SwitchesSerializer})
    def put(self, request):
        given = SwitchesSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        services.switches_set(request.user, given.validated_data)
        return Response(services.switches_of(request.user))

    @extend_schema(request=SwitchesSerializer, responses={200: SwitchesSerializer})
    def patch(self, request):
        return self.put(request)
