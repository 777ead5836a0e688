from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from automation.backtest_start import backtest_start
from automation.forms import BacktestForm, BotForm
from automation.models import AutomationSession, Backtest, Bot, CycleRun
from core.api_forms import FormValidatedSerializer, StrictBooleanField
from learning.policy import AVOIDABLE, avoid_condition_error
from market.names import normalise_exchange, normalise_symbol


class BotSerializer(FormValidatedSerializer):
    form_class = BotForm
    normalise = {"exchange": normalise_exchange, "symbol": normalise_symbol}

    class Meta:
        model = Bot
        fields = (
            "id", "name", "exchange", "symbol", "timeframe", "mode", "exchange_account", "live_confirmed",
            "analyst", "model_connection", "model_name", "chart_source", "tradingview_url",
            "starting_balance", "risk_per_trade_pct", "max_position_pct", "max_open_trades",
            "daily_loss_limit_pct", "min_confidence", "status", "created_at", "updated_at",
        )  # fmt: skip
        read_only_fields = ("status", "created_at", "updated_at")

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None and request.user.is_authenticated:
            # Only one's own accounts can be chosen: another user's is "invalid", never "forbidden".
            fields["exchange_account"].queryset = request.user.exchange_accounts.all()
            fields["model_connection"].queryset = request.user.model_connections.all()
        return fields


class SessionSerializer(serializers.ModelSerializer):
    class Meta:
        model = AutomationSession
        fields = ("id", "bot", "started_at", "stopped_at", "stop_reason")
        read_only_fields = fields


class RunSerializer(serializers.ModelSerializer):
    analysis = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = CycleRun
        fields = (
            "id", "bot", "session", "slot", "status", "step", "started_at", "finished_at", "timings",
            "failed_step", "error", "analysis", "created_at",
        )  # fmt: skip
        read_only_fields = fields


class ActionResultSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="The bot's status after the action.")
    slot = serializers.DateTimeField(required=False, help_text="run-now: the slot whose cycle was queued.")


class KillSwitchSerializer(serializers.Serializer):
    engaged = StrictBooleanField(help_text="Your own kill switch: while on, none of your bots trades.")
    global_engaged = serializers.BooleanField(
        read_only=True, help_text="The operator's switch for the whole platform."
    )


class PolicySerializer(serializers.Serializer):
    min_confidence = serializers.FloatField(read_only=True)
    size_factor = serializers.FloatField(read_only=True)
    avoid_conditions = serializers.ListField(child=serializers.DictField(), read_only=True)
    patterns = serializers.ListField(
        child=serializers.DictField(),
        read_only=True,
        help_text="The conditions (one or two) it learned to trade inside of, or to avoid, each with its "
        "evidence: n, expectancy in R with its 95% interval, p- and q-value (docs/learning.md).",
    )
    learned = serializers.BooleanField(read_only=True, help_text="False while the defaults apply.")
    pins = serializers.DictField(read_only=True, help_text="The values you fixed; they override learning.")
    data_from = serializers.DateTimeField(read_only=True, allow_null=True)
    data_to = serializers.DateTimeField(read_only=True, allow_null=True)
    sample_sizes = serializers.DictField(read_only=True)


class AvoidConditionSerializer(serializers.Serializer):
    field = serializers.ChoiceField(choices=tuple(AVOIDABLE))
    value = serializers.CharField(max_length=30, help_text="One of the field's values, e.g. RANGE_HIGH_VOL.")

    def validate(self, condition):
        if error := avoid_condition_error(condition):
            raise serializers.ValidationError({"value": [error]})
        return condition


class PinSerializer(serializers.Serializer):
    """Send a value to pin it, null to unpin it; fields left out stay as they are."""

    min_confidence = serializers.FloatField(min_value=0, max_value=100, required=False, allow_null=True)
    size_factor = serializers.FloatField(min_value=0, max_value=3, required=False, allow_null=True)
    # A ListField, not many=True: DRF hands many=True's allow_null to each item too, so [null] was taken.
    avoid_conditions = serializers.ListField(
        child=AvoidConditionSerializer(),
        required=False,
        allow_null=True,
        max_length=sum(map(len, AVOIDABLE.values())),
    )


class BacktestSerializer(FormValidatedSerializer):
    """A backtest; written through the web form (automation.forms.BacktestForm): a market with stored
    candles, a range of whole UTC days within its slots, a bot's policy limits, the plan's caps."""

    form_class = BacktestForm
    market = serializers.CharField(
        write_only=True,
        help_text="exchange|SYMBOL|timeframe of a market with stored candles, e.g. sample|EUR/USD|1h; the "
        "web form lists them.",
    )
    start_day = serializers.DateField(write_only=True, help_text="The first UTC day replayed.")
    end_day = serializers.DateField(write_only=True, help_text="The last UTC day replayed, included.")

    class Meta:
        model = Backtest
        fields = (
            "id", "market", "start_day", "end_day", "exchange", "symbol", "timeframe", "start", "end",
            "starting_balance", "risk_per_trade_pct", "max_open_trades", "daily_loss_limit_pct",
            "min_confidence", "status", "cycles_done", "cycles_total", "cycles_failed", "error", "created_at",
            "started_at", "finished_at",
        )  # fmt: skip
        read_only_fields = (
            "exchange", "symbol", "timeframe", "start", "end", "status", "cycles_done", "cycles_total",
            "cycles_failed", "error", "created_at", "started_at", "finished_at",
        )  # fmt: skip

    def create(self, validated_data):
        try:
            return backtest_start(self.form.instance)
        except DjangoValidationError as e:
            # The plan's backtests at once, checked as the row is written.
            raise serializers.ValidationError(serializers.as_serializer_error(e)) from None


class BacktestReportSerializer(BacktestSerializer):
    class Meta(BacktestSerializer.Meta):
        fields = (*BacktestSerializer.Meta.fields, "report")
        read_only_fields = (*BacktestSerializer.Meta.read_only_fields, "report")
