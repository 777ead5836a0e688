from django.contrib.auth import authenticate
from rest_framework import serializers

from accounts.forms import ExchangeAccountForm, ModelConnectionForm
from accounts.models import ApiToken, AuditEvent, ExchangeAccount, ModelConnection
from core.api_forms import FormValidatedSerializer, StrictBooleanField


class TokenRequestSerializer(serializers.Serializer):
    email = serializers.EmailField()
    password = serializers.CharField(write_only=True, trim_whitespace=False, style={"input_type": "password"})
    name = serializers.CharField(max_length=100, default="API", help_text="To tell your tokens apart.")

    def validate(self, data):
        # Django's request under DRF's: the lockout flags it, and its middleware answers for a locked pair.
        request = self.context["request"]._request
        user = authenticate(request, username=data["email"], password=data["password"])
        if user is None:
            # One message whether the e-mail exists or not.
            raise serializers.ValidationError({"password": ["Wrong e-mail or password."]})
        data["user"] = user
        return data


class ApiTokenSerializer(serializers.ModelSerializer):
    token = serializers.SerializerMethodField(help_text="The token itself: shown in this answer only.")

    class Meta:
        model = ApiToken
        fields = ("id", "name", "hint", "created_at", "last_used_at", "token")
        read_only_fields = fields

    def get_token(self, obj) -> str | None:
        return self.context.get("plain")


class ExchangeAccountSerializer(FormValidatedSerializer):
    """The keys go in and are never sent back: only a hint of the key's last characters."""

    form_class = ExchangeAccountForm
    api_key = serializers.CharField(write_only=True, max_length=500)
    secret = serializers.CharField(write_only=True, max_length=500)
    password = serializers.CharField(write_only=True, max_length=500, required=False, allow_blank=True)
    masked_key = serializers.CharField(read_only=True)
    key_note = serializers.CharField(
        read_only=True,
        help_text="What the exchange said about the key's permissions when it was added: a warning (no IP "
        "restriction, no spot trading) or why they could not be checked; empty when the key is as it "
        "should be.",
    )

    class Meta:
        model = ExchangeAccount
        fields = (
            "id", "label", "exchange", "sandbox", "api_key", "secret", "password", "masked_key", "key_note",
            "created_at", "updated_at",
        )  # fmt: skip
        read_only_fields = ("created_at", "updated_at")


class ModelConnectionSerializer(FormValidatedSerializer):
    """The key goes in and is never sent back: only whether one is set, and a hint of its last characters."""

    form_class = ModelConnectionForm
    api_key = serializers.CharField(
        write_only=True,
        max_length=500,
        required=False,
        allow_blank=True,
        help_text="Stored encrypted, never returned. Left out on an update, the stored key stays; a new "
        "base_url needs it given again.",
    )
    remove_api_key = StrictBooleanField(
        write_only=True, required=False, help_text="true on an update removes the stored key."
    )
    has_api_key = serializers.BooleanField(read_only=True)
    masked_key = serializers.CharField(read_only=True)

    class Meta:
        model = ModelConnection
        fields = (
            "id", "label", "base_url", "api_key", "remove_api_key", "has_api_key", "masked_key", "created_at",
            "updated_at",
        )  # fmt: skip
        read_only_fields = ("created_at", "updated_at")


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.ChoiceField(
        AuditEvent.ACTOR_KINDS,
        source="actor_kind",
        read_only=True,
        help_text="Who did it: you (owner), an operator of the platform, or the platform itself (a cycle, "
        "the monitor, a risk limit).",
    )
    details = serializers.DictField(
        read_only=True,
        help_text="What the action was about, for a program to read: ids (bot_id, trade_id, "
        "exchange_account_id), symbol, side, amount, prices, client order id, reason. Never a key or secret.",
    )

    class Meta:
        model = AuditEvent
        fields = ("id", "created_at", "action", "actor", "summary", "details")
        read_only_fields = fields
