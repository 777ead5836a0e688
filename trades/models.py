from django.conf import settings
from django.db import models

from core import values
from core.values import Outcome, Sentiment
from market.precision import format_amount, format_price

MONEY = {"max_digits": 28, "decimal_places": 12}


class Trade(models.Model):
    """A position a bot (or its owner) opened: what was traded, ownership, order ids, status and outcome."""

    Side = values.Side

    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending"
        OPEN = "OPEN", "Open"
        CLOSED = "CLOSED", "Closed"
        CANCELLED = "CANCELLED", "Cancelled"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="trades")
    bot = models.ForeignKey(
        "automation.Bot", null=True, blank=True, on_delete=models.SET_NULL, related_name="trades"
    )
    session = models.ForeignKey(
        "automation.AutomationSession",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="trades",
    )
    analysis = models.OneToOneField(
        "learning.AILearningData", null=True, blank=True, on_delete=models.PROTECT, related_name="trade"
    )
    is_simulated = models.BooleanField(default=True)

    symbol = models.CharField(max_length=31)
    side = models.CharField(max_length=4, choices=Side.choices)
    amount = models.DecimalField(**MONEY, help_text="Quantity in the base currency.")
    price = models.DecimalField(**MONEY, help_text="Entry fill price.")
    stop_loss = models.DecimalField(**MONEY, null=True, blank=True)
    take_profit = models.DecimalField(**MONEY, null=True, blank=True)
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.OPEN)
    exit_price = models.DecimalField(**MONEY, null=True, blank=True)
    fees = models.DecimalField(**MONEY, default=0, help_text="Entry and exit fees in the quote currency.")
    pnl = models.DecimalField(**MONEY, null=True, blank=True, help_text="Net P&L in the quote currency.")

    is_automated = models.BooleanField(default=False)
    confidence = models.FloatField(null=True, blank=True)
    market_sentiment = models.CharField(max_length=8, choices=Sentiment.choices, blank=True)
    outcome = models.CharField(max_length=9, choices=Outcome.choices, blank=True)
    pnl_percent = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    actual_rr = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    learning_data = models.JSONField(default=dict, blank=True)

    client_order_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    exchange_order_id = models.CharField(max_length=128, blank=True)

    execution_time = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["bot", "status"]),
            models.Index(fields=["owner", "outcome"]),
            models.Index(fields=["status", "symbol"]),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="trade_amount_positive"),
            models.CheckConstraint(condition=models.Q(price__gt=0), name="trade_price_positive"),
        ]
        ordering = ["-created_at"]

    def __str__(self):
        exchange = self.bot.exchange if self.bot_id else ""
        price = format_price(self.price, exchange, self.symbol)
        return f"{self.side} {format_amount(self.amount, self.price)} {self.symbol} at {price}"
