from rest_framework import serializers

from core.values import Outcome, Sentiment
from trades.models import Trade


class TradeSerializer(serializers.ModelSerializer):
    # Blank until known: declared here because a read-only model field loses its blank=True.
    outcome = serializers.ChoiceField(Outcome.choices, allow_blank=True, read_only=True)
    market_sentiment = serializers.ChoiceField(Sentiment.choices, allow_blank=True, read_only=True)

    class Meta:
        model = Trade
        fields = (
            "id", "bot", "session", "analysis", "is_simulated", "symbol", "side", "amount", "price",
            "stop_loss", "take_profit", "status", "exit_price", "fees", "pnl", "pnl_percent", "actual_rr",
            "outcome",
            "confidence", "market_sentiment", "is_automated", "learning_data", "client_order_id",
            "exchange_order_id", "execution_time", "closed_at", "created_at",
        )  # fmt: skip
        read_only_fields = fields
