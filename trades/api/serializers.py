from rest_framework import serializers

from trades.models import Trade


class TradeSerializer(serializers.ModelSerializer):
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
