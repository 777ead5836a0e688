from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

# The most a fee or a spread may be, in %: past it a figure is a typo (0.1 typed as 10), not a market.
MAX_COST_PCT = 10


class Candle(models.Model):
    """One OHLCV bar, stored once per market and shared by every bot on that market.

    Prices are floats, as exchanges publish them (ccxt returns floats) and as the indicator library
    consumes them; money that belongs to a user (trades, balances) is Decimal."""

    exchange = models.CharField(max_length=50)
    symbol = models.CharField(max_length=30)
    timeframe = models.CharField(max_length=5)
    open_time = models.DateTimeField()
    open = models.FloatField()
    high = models.FloatField()
    low = models.FloatField()
    close = models.FloatField()
    volume = models.FloatField()

    class Meta:
        constraints = [
            # Also the index behind every read: "the last N candles of this market up to t".
            models.UniqueConstraint(
                fields=["exchange", "symbol", "timeframe", "open_time"], name="candle_unique_per_market_time"
            ),
            models.CheckConstraint(
                condition=models.Q(high__gte=models.F("low")), name="candle_high_not_below_low"
            ),
        ]
        ordering = ["exchange", "symbol", "timeframe", "open_time"]

    def __str__(self):
        return f"{self.exchange} {self.symbol} {self.timeframe} {self.open_time:%Y-%m-%d %H:%M}"


class IndicatorSet(models.Model):
    """The indicators of one market at one candle, computed once and read by every bot on that market."""

    exchange = models.CharField(max_length=50)
    symbol = models.CharField(max_length=30)
    timeframe = models.CharField(max_length=5)
    open_time = models.DateTimeField(help_text="Open time of the last candle the values describe.")
    candles = models.PositiveIntegerField(help_text="How many candles the values were computed from.")
    values = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["exchange", "symbol", "timeframe", "open_time", "candles"],
                name="indicators_unique_per_market_candle",
            )
        ]

    def __str__(self):
        return f"indicators {self.exchange} {self.symbol} {self.timeframe} {self.open_time:%Y-%m-%d %H:%M}"


class StoredMarket(models.Model):
    """What is known about a market beyond its candles, kept with it for every timeframe: the splits its
    stored candles were adjusted for on import (`import_candles --adjust-splits`), which the replay report
    states, and what trading it costs (`import_candles --fee-pct --spread --asset-class`, or here; read by
    market.costs, which says what applies when nothing is recorded)."""

    class AssetClass(models.TextChoices):
        CRYPTO = "crypto", "Crypto"
        FX = "fx", "FX (currency pair)"
        STOCK = "stock", "Stock"

    exchange = models.CharField(max_length=50)
    symbol = models.CharField(max_length=30)
    # Each {"date", "ratio" ("2:1": shares after per share before), "line" of the imported file, "timeframe"}.
    splits = models.JSONField(
        default=list,
        blank=True,
        help_text="The splits the candles were back-adjusted for on import, oldest first.",
    )
    asset_class = models.CharField(
        max_length=10,
        choices=AssetClass.choices,
        blank=True,
        help_text="Blank: taken from the names (two currencies are FX, a coin on either side is crypto).",
    )
    fee_pct = models.DecimalField(
        max_digits=8,
        decimal_places=5,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(MAX_COST_PCT)],
        help_text="Taker fee, % of each fill's value. Blank: the asset class's default.",
    )
    spread_pct = models.DecimalField(
        max_digits=8,
        decimal_places=5,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(MAX_COST_PCT)],
        help_text="Bid-ask spread, % of the price; a market order pays half of it. Blank: the asset class's "
        "default.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["exchange", "symbol"], name="stored_market_unique_per_market")
        ]
        ordering = ["exchange", "symbol"]

    def __str__(self):
        return f"{self.exchange} {self.symbol}"

    def splits_for(self, timeframe: str) -> list[dict]:
        return [s for s in self.splits if s["timeframe"] == timeframe]
