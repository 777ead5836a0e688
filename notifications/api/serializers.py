from rest_framework import serializers

from core.api_forms import FormValidatedSerializer, StrictBooleanField

from ..events import SWITCHABLE
from ..forms import ChannelForm
from ..models import Channel, Delivery


class ChannelSerializer(FormValidatedSerializer):
    """The webhook URL, the bot token and the signing key go in and are never sent back: `hint` says which
    one a channel holds."""

    form_class = ChannelForm
    url = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=500,
        help_text="Slack or Discord webhook URL, or a signed webhook's HTTPS endpoint.",
    )  # fmt: skip
    token = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=500, help_text="Telegram bot token."
    )
    hmac_key = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=500,
        help_text="Signed webhook: the signing key (16 characters or more); left out, one is made and "
        "returned once, in `signing_key`.",
    )  # fmt: skip
    signing_key = serializers.SerializerMethodField(
        help_text="The signing key made for a signed webhook created without one: in the creating answer "
        "only."
    )

    class Meta:
        model = Channel
        fields = (
            "id",
            "label",
            "kind",
            "target",
            "hint",
            "url",
            "token",
            "hmac_key",
            "signing_key",
            "created_at",
        )
        read_only_fields = ("hint", "created_at")
        extra_kwargs = {"target": {"help_text": "Telegram: the chat's id, or @name of a public channel."}}

    def get_signing_key(self, obj) -> str | None:
        form = getattr(self, "form", None)
        return (form.made_key or None) if form is not None else None


class DeliverySerializer(serializers.ModelSerializer):
    event = serializers.CharField(source="notification.event", read_only=True)
    title = serializers.CharField(source="notification.title", read_only=True)
    text = serializers.CharField(source="notification.text", read_only=True)

    class Meta:
        model = Delivery
        fields = (
            "id", "event", "title", "text", "channel", "channel_label", "kind", "status", "status_code",
            "error", "attempts", "created_at", "updated_at",
        )  # fmt: skip
        read_only_fields = fields


class SwitchesSerializer(serializers.Serializer):
    """One switch per event: true to be told on every channel."""

    def get_fields(self):
        return {
            event.value: StrictBooleanField(required=False, help_text=event.label) for event in SWITCHABLE
        }
