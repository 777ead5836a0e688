from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from market.timeframes import TIMEFRAMES, timeframe_name

symbol_validator = RegexValidator(
    r"^[A-Z0-9]{2,15}/[A-Z0-9]{2,15}$", "Use the exchange's BASE/QUOTE form in capitals, e.g. BTC/USDT."
)


class Bot(models.Model):
    class Mode(models.TextChoices):
        SIMULATION = "SIMULATION", "Simulation (paper trading)"
        LIVE = "LIVE", "Live (real orders)"

    class Status(models.TextChoices):
        STOPPED = "STOPPED", "Stopped"
        RUNNING = "RUNNING", "Running"
        PAUSED = "PAUSED", "Paused"

    class ChartSource(models.TextChoices):
        RENDERED = "RENDERED", "Rendered by TradingAI"
        TRADINGVIEW = "TRADINGVIEW", "Screenshot of a TradingView chart"

    class Analyst(models.TextChoices):
        TECHNICAL = "TECHNICAL", "Technical (offline)"
        OPENAI = "OPENAI", "The platform's OpenAI vision model"
        OWN_MODEL = "OWN_MODEL", "Your own model (one of your model connections)"

    TIMEFRAME_CHOICES = [(t, timeframe_name(t)) for t in TIMEFRAMES]

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bots")
    name = models.CharField(max_length=100)
    exchange = models.CharField(max_length=50)
    exchange_account = models.ForeignKey(
        "accounts.ExchangeAccount", null=True, blank=True, on_delete=models.PROTECT, related_name="bots"
    )
    symbol = models.CharField(max_length=31, validators=[symbol_validator])
    timeframe = models.CharField(max_length=5, choices=TIMEFRAME_CHOICES, default="1h")
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.SIMULATION)
    # Live orders need the operator's LIVE_TRADING_ENABLED and this explicit confirmation by the owner.
    live_confirmed = models.BooleanField(default=False)
    chart_source = models.CharField(max_length=12, choices=ChartSource.choices, default=ChartSource.RENDERED)
    tradingview_url = models.URLField(blank=True)
    analyst = models.CharField(max_length=10, choices=Analyst.choices, default=Analyst.TECHNICAL)
    # For OWN_MODEL: the owner's model server and the model asked there (automation.analysts.service).
    model_connection = models.ForeignKey(
        "accounts.ModelConnection",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="bots",
        help_text="For your own model: one of your model connections (Settings → Models).",
    )
    model_name = models.CharField(
        max_length=100,
        blank=True,
        validators=[
            RegexValidator(
                r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$",
                "A model name as the server knows it, e.g. gpt-4o-mini, llava:13b or "
                "Qwen/Qwen2.5-VL-7B-Instruct.",
            )
        ],
        help_text="For your own model: the model to ask, as the server names it; it must read images.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.STOPPED)
    # When the dispatcher (automation.dispatch) next sends the cycle of a running bot: its next slot plus its
    # offset; empty while stopped or paused. Kept with the bot, so that starting or stopping one changes no
    # beat schedule, and indexed, so that each minute's dispatch reads the bots due and no others.
    next_due = models.DateTimeField(null=True, blank=True, editable=False)

    # Risk settings: the hard limits the policy works within (docs/architecture.md, "Steps 5-8").
    starting_balance = models.DecimalField(
        max_digits=20,
        decimal_places=8,
        default=Decimal("10000"),
        validators=[MinValueValidator(Decimal("1"))],
        help_text="Paper balance in the quote currency for a simulation bot.",
    )
    risk_per_trade_pct = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("10"))],
        help_text="Share of equity lost if the stop is hit.",
    )
    max_position_pct = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("25.00"),
        validators=[MinValueValidator(Decimal("1")), MaxValueValidator(Decimal("100"))],
        help_text="Largest position as a share of equity.",
    )
    max_open_trades = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(20)]
    )
    daily_loss_limit_pct = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("5.00"),
        validators=[MinValueValidator(Decimal("0.1")), MaxValueValidator(Decimal("100"))],
        help_text="The bot pauses when the day's losses reach this share of equity.",
    )
    min_confidence = models.PositiveSmallIntegerField(
        default=70,
        validators=[MaxValueValidator(100)],
        help_text="Trade only analyses at least this confident, until the bot has learned its own threshold.",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="bot_name_per_owner")]
        indexes = [
            models.Index(fields=["owner", "status"]),
            models.Index(fields=["status"]),
            models.Index(fields=["exchange", "symbol", "timeframe"]),
            models.Index(fields=["next_due"], name="bot_next_due"),
        ]
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("bot_detail", args=[self.pk])

    @property
    def quote(self) -> str:
        """The currency the bot's money is counted in: USDT for BTC/USDT."""
        return self.symbol.partition("/")[2]


class AutomationSession(models.Model):
    """A period in which a bot ran: from start to stop, and why it stopped."""

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="sessions")
    started_at = models.DateTimeField(auto_now_add=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(max_length=255, blank=True)

    class Meta:
        indexes = [models.Index(fields=["bot", "-started_at"])]
        constraints = [
            # At most one open session per bot.
            models.UniqueConstraint(
                fields=["bot"], condition=models.Q(stopped_at__isnull=True), name="one_open_session_per_bot"
            )
        ]
        ordering = ["-started_at"]

    def __str__(self):
        return f"{self.bot} from {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def is_open(self) -> bool:
        return self.stopped_at is None


class CycleRun(models.Model):
    """One scheduled cycle of one bot. Creating the row claims the slot: the unique constraint is what
    makes a slot run at most once across duplicate ticks, redeliveries and workers."""

    class Status(models.TextChoices):
        CLAIMED = "CLAIMED", "Claimed"
        RUNNING = "RUNNING", "Running"
        SUCCEEDED = "SUCCEEDED", "Succeeded"
        FAILED = "FAILED", "Failed"
        SKIPPED = "SKIPPED", "Skipped"

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="runs")
    session = models.ForeignKey(
        AutomationSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    slot = models.DateTimeField(help_text="Start of the timeframe period this run is for.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CLAIMED)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds spent in each step.")
    # Kept up to date while the run runs, so that a run whose worker died can say where it stopped.
    step = models.CharField(max_length=30, blank=True, help_text="The step running, or the last one started.")
    failed_step = models.CharField(max_length=30, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # The cycle's steps in the order they run (automation.cycle); the database may keep a JSON object's keys
    # in another order.
    STEPS = (
        "prompt", "market_data", "indicators", "chart", "chart_store", "analysis", "record", "monitor",
        "learn", "decide", "execute",
    )  # fmt: skip

    class Meta:
        constraints = [models.UniqueConstraint(fields=["bot", "slot"], name="one_run_per_bot_slot")]
        indexes = [
            models.Index(fields=["bot", "-slot"]),
            models.Index(fields=["status", "-created_at"]),
            # The day's cycles of a user's bots, counted against the plan (automation.quotas).
            models.Index(fields=["bot", "created_at"]),
        ]
        ordering = ["-slot"]

    def __str__(self):
        return f"{self.bot} @ {self.slot:%Y-%m-%d %H:%M} ({self.status})"

    def step_timings(self) -> list[tuple[str, float]]:
        known = [(step, self.timings[step]) for step in self.STEPS if step in self.timings]
        return known + [(step, took) for step, took in self.timings.items() if step not in self.STEPS]


class RunNowRequest(models.Model):
    """A run-now its owner asked for, counted against the plan's run-now per hour (automation.quotas) by
    user, not by bot: a bot stopped and started again, or another bot, is no way round the count."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    bot = models.ForeignKey(Bot, null=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["user", "at"])]

    def __str__(self):
        return f"run-now by {self.user_id} at {self.at:%Y-%m-%d %H:%M}"


class Heartbeat(models.Model):
    """When each background process last proved it was alive: `queue:<name>`, a worker of that queue ran the
    heartbeat task beat sent on it; `beat`, beat ticked (automation.health)."""

    name = models.CharField(max_length=100, unique=True)
    seen_at = models.DateTimeField()
    detail = models.CharField(max_length=255, blank=True)

    def __str__(self):
        return self.name


class MetricTotal(models.Model):
    """A running total of one of the product's Prometheus metrics for one set of labels, added to by the
    cycles on any worker and read by `/metrics` on any web process (automation.metrics)."""

    name = models.CharField(max_length=100)
    labels = models.CharField(max_length=255)  # JSON, keys sorted: the same labels are the same row
    value = models.FloatField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "labels"], name="metric_total_once")]

    def __str__(self):
        return f"{self.name}{self.labels} = {self.value:g}"


class KillSwitch(models.Model):
    """The operator's global kill switch: one row; while engaged no bot opens a trade."""

    engaged = models.BooleanField(default=False)
    reason = models.CharField(max_length=255, blank=True)
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "kill switch"

    def __str__(self):
        return "engaged" if self.engaged else "off"

    @classmethod
    def is_engaged(cls) -> bool:
        return cls.objects.filter(engaged=True).exists()


class Backtest(models.Model):
    """A replay of a stored market its owner started from the browser or the API (automation.backtests): what
    it replays with which settings, how far it got, and its report (automation.evaluation's figures). It runs
    on the default queue into an account of its own under `replay.invalid`, so its cycles, analyses and trades
    never mix with the owner's bots, insights or daily cycle count."""

    class Status(models.TextChoices):
        QUEUED = "QUEUED", "Queued"
        RUNNING = "RUNNING", "Running"
        DONE = "DONE", "Done"
        FAILED = "FAILED", "Failed"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="backtests")
    exchange = models.CharField(max_length=50)
    symbol = models.CharField(max_length=31)
    timeframe = models.CharField(max_length=5, choices=Bot.TIMEFRAME_CHOICES)
    start = models.DateTimeField(help_text="The first slot replayed.")
    end = models.DateTimeField(help_text="The last slot replayed.")
    # The policy settings, with a bot's own limits: the replay's bot is made with them.
    starting_balance = Bot._meta.get_field("starting_balance").clone()
    risk_per_trade_pct = Bot._meta.get_field("risk_per_trade_pct").clone()
    max_open_trades = Bot._meta.get_field("max_open_trades").clone()
    daily_loss_limit_pct = Bot._meta.get_field("daily_loss_limit_pct").clone()
    min_confidence = Bot._meta.get_field("min_confidence").clone()

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    cycles_done = models.PositiveIntegerField(default=0)
    cycles_total = models.PositiveIntegerField(
        null=True, blank=True, help_text="Known once the replay starts."
    )
    cycles_failed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    report = models.JSONField(null=True, blank=True, help_text="The evaluation's figures, once done.")
    bot = models.OneToOneField(Bot, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Moved on by each report of progress: a RUNNING backtest that has not moved for long was lost with its
    # worker (automation.backtests.fail_lost_backtests).
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["status", "updated_at"]),
        ]
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"backtest {self.pk} of {self.exchange} {self.symbol} {self.timeframe}"

    def get_absolute_url(self):
        return reverse("backtest_detail", args=[self.pk])

    @property
    def market(self) -> str:
        return f"{self.exchange} {self.symbol}, {timeframe_name(self.timeframe)}"

    @property
    def is_over(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)


class ModelPrice(models.Model):
    """What a model costs, per million tokens, as operators set it in the admin: the cost kept with each
    analysis is computed from it (automation.analysts.pricing), and a model it does not list is priced at
    OPENAI_INPUT_USD_PER_MTOK / OPENAI_OUTPUT_USD_PER_MTOK. Images are priced as the input tokens the API
    counts them as, so there is no separate image price."""

    model = models.CharField(
        max_length=100,
        unique=True,
        help_text="As a bot asks for it, e.g. gpt-4o-mini (not a dated snapshot).",
    )
    input_usd_per_mtok = models.DecimalField(
        "input, US$ per 1M tokens",
        max_digits=10,
        decimal_places=4,
        validators=[MinValueValidator(Decimal(0))],
    )
    output_usd_per_mtok = models.DecimalField(
        "output, US$ per 1M tokens",
        max_digits=10,
        decimal_places=4,
        validators=[MinValueValidator(Decimal(0))],
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]

    def __str__(self):
        return self.model
