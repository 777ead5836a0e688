from django.conf import settings
from django.db import models

from core.values import Outcome, Recommendation, Sentiment


class PromptVersion(models.Model):
    """A version of the analyst's prompt: the instructions and what the learned section says, with its
    figures masked (each number a #), identified by the hash of that text. Prompts that say the same things
    with newer figures are one version, so versions can be compared on enough analyses each; each analysis
    keeps the exact section it was given (`AILearningData.prompt_section`)."""

    sha256 = models.CharField(max_length=64, unique=True)
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.sha256[:12]


class AnalystAnswer(models.Model):
    """The answer to one distinct analyst request, asked once and shared by every analysis that made the same
    request (automation/analysts/asked_once.py): a thousand bots on twenty markets with the same prompt send
    twenty requests, not a thousand. `key` is the hash of everything that decides the answer and who pays
    for it (who is billed, the server, the model, the instructions, the prompt, the image). A row is first
    a claim (ASKING) by the one worker that asks, then the answer (ANSWERED); it stays as the store a
    replay over the same slots, prompt and model reads instead of asking again."""

    class Status(models.TextChoices):
        ASKING = "ASKING"
        ANSWERED = "ANSWERED"

    key = models.CharField(max_length=64, unique=True)
    billed_to = models.CharField(max_length=100, help_text="Whose key pays: 'operator' for the platform's.")
    model = models.CharField(max_length=100, blank=True, help_text="The model asked.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ASKING)
    # Who holds the claim, and since when: a claim older than the analyst's deadline belongs to a worker
    # that gave up or died, and is taken over.
    claim = models.CharField(max_length=32, blank=True)
    claimed_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True, help_text="The analyst's result, as it answered.")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    # Set by the first analysis that takes the answer, which records the call's tokens and cost; the others
    # record none (docs/architecture.md, "Ask once").
    paid = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["answered_at"])]

    def __str__(self):
        return f"{self.model} {self.key[:12]} ({self.status.lower()})"


class AILearningData(models.Model):
    """One analysis and, once known, what happened after it. Its fields, the bot, the prompt
    version, the analyst and its cost; sentiment, recommendation and regime are columns as well as part of
    `analysis_data` so that insights can group by them in the database."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="analyses")
    bot = models.ForeignKey(
        "automation.Bot", null=True, blank=True, on_delete=models.SET_NULL, related_name="analyses"
    )
    session = models.ForeignKey(
        "automation.AutomationSession",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="analyses",
    )
    cycle_run = models.OneToOneField(
        "automation.CycleRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="analysis"
    )
    # `trade` is the reverse side of Trade.analysis: one column, one truth.

    analysis_data = models.JSONField(help_text="The analyst's complete, validated answer.")
    market_conditions = models.JSONField(default=dict, help_text="Indicators and context at analysis time.")
    symbol = models.CharField(max_length=31)
    timeframe = models.CharField(max_length=5)
    market_sentiment = models.CharField(max_length=8, choices=Sentiment.choices, blank=True)
    recommendation = models.CharField(max_length=4, choices=Recommendation.choices, blank=True)
    regime = models.CharField(max_length=30, blank=True)
    confidence_score = models.FloatField(null=True, blank=True, help_text="The analyst's confidence, 0-100.")
    predicted_price = models.DecimalField(max_digits=28, decimal_places=12, null=True, blank=True)
    screenshot = models.FileField(upload_to="charts/%Y/%m/", blank=True, max_length=255)

    outcome = models.CharField(max_length=9, choices=Outcome.choices, blank=True)
    actual_price = models.DecimalField(max_digits=28, decimal_places=12, null=True, blank=True)
    accuracy_score = models.FloatField(null=True, blank=True, help_text="0-1; formula in docs/learning.md.")
    outcome_r = models.FloatField(
        null=True, blank=True, help_text="Result in units of the initial risk (stop distance), net of fees."
    )
    untraded = models.BooleanField(
        default=False, help_text="Resolved against the price after its horizon, with no trade taken."
    )
    feedback_data = models.JSONField(default=dict, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    analyst = models.CharField(max_length=20, blank=True)
    model_name = models.CharField(max_length=100, blank=True)
    prompt_version = models.ForeignKey(
        PromptVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="analyses"
    )
    prompt_section = models.TextField(blank=True, help_text="The learned section of the prompt, as given.")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)

    class BilledTo(models.TextChoices):
        OPERATOR = "OPERATOR", "The platform"
        OWNER = "OWNER", "The user's own key"

    # Whose key paid for the call: only the operator's count against the plan's monthly LLM spend
    # (automation.quotas). Kept apart from the connection, which its owner may delete.
    billed_to = models.CharField(max_length=8, choices=BilledTo.choices, default=BilledTo.OPERATOR)
    model_connection = models.ForeignKey(
        "accounts.ModelConnection",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="analyses",
        help_text="The user's own model server that answered, if any.",
    )

    class Call(models.TextChoices):
        ASKED = "ASKED", "asked: carries the call's tokens and cost"
        REUSED = "REUSED", "reused: the answer to an identical request, paid for by another analysis"

    # For an analyst that asks a model: the answer this analysis took, and whether it paid for the call or
    # reused an answer already paid for (then its tokens and cost are 0). Blank for the technical analyst.
    answer = models.ForeignKey(
        AnalystAnswer, null=True, blank=True, on_delete=models.SET_NULL, related_name="analyses"
    )
    llm_call = models.CharField(max_length=6, choices=Call.choices, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "AI learning data"
        verbose_name_plural = "AI learning data"
        indexes = [
            models.Index(fields=["user", "-created_at"]),
            models.Index(fields=["bot", "-created_at"]),
            models.Index(fields=["user", "outcome"]),
            models.Index(fields=["user", "symbol", "timeframe"]),
            models.Index(fields=["bot", "resolved_at"]),
            # The outcome model reads a user's calls by when they resolved, every hour (learning.ml), and
            # counts them: with what it reads of them in the index, neither touches the rows, whose JSON
            # columns make reading them dear (a replay's daily count: 4.6 ms on 5,000 calls, 0.6 ms so).
            models.Index(
                fields=["user", "resolved_at", "recommendation", "outcome", "confidence_score", "created_at"],
                name="learning_ai_calls_resolved",
            ),
        ]
        ordering = ["-created_at"]

    def __str__(self):
        return (
            f"{self.symbol} {self.timeframe} {self.recommendation or '?'} @ {self.created_at:%Y-%m-%d %H:%M}"
        )


class InsightCounter(models.Model):
    """Running totals of one figure of the insights for one bot: how many analyses fall under `dimension` =
    `value` (confidence bucket, timeframe, regime, week...), how many were right, and the sums behind the
    calibration and the Brier score. Kept in step with the analyses as they are recorded and resolved
    (learning.counters), so a user's insights are a SUM over a few hundred of these rows rather than scans
    of every analysis; `learning.counters.rebuild` recomputes them from the analyses."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # The bot's id, 0 for none: a plain number, so a deleted bot's analyses keep counting for its owner.
    bot_id = models.BigIntegerField(default=0)
    symbol = models.CharField(max_length=31)
    timeframe = models.CharField(max_length=5)
    dimension = models.CharField(max_length=20)
    value = models.CharField(max_length=80, blank=True)
    n = models.BigIntegerField(default=0)
    hits = models.BigIntegerField(default=0)
    scored = models.BigIntegerField(default=0, help_text="Of n, those with a stated confidence.")
    confidence_sum = models.FloatField(default=0.0)
    squared_error = models.FloatField(default=0.0, help_text="Sum of (confidence/100 - hit)², for Brier.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "bot_id", "symbol", "timeframe", "dimension", "value"],
                name="one_counter_per_key",
            )
        ]

    def __str__(self):
        return f"{self.dimension}={self.value}: {self.hits}/{self.n}"


class PolicyCounter(models.Model):
    """Running totals of a bot's resolved BUY/SELL calls in R, by stated confidence (in fives), regime,
    sentiment, RSI band and when they resolved: what the adaptive policy learns from (learning.policy),
    summed from the rows of a bot instead of aggregating its whole history on every cycle. Kept in step
    with the resolutions (learning.counters.count_policy); `learning.counters.rebuild` recomputes them."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    bot_id = models.BigIntegerField(default=0)
    bucket = models.PositiveSmallIntegerField(help_text="The stated confidence, floored to a multiple of 5.")
    regime = models.CharField(max_length=30, blank=True)
    market_sentiment = models.CharField(max_length=8, blank=True)
    rsi_band = models.CharField(max_length=5, blank=True, help_text="learning.conditions.RSI_BANDS")
    block = models.IntegerField(
        default=0,
        help_text="When the calls resolved, in blocks of POLICY_BLOCK_CANDLES of the bot's timeframe since "
        "1970: what weighs recent evidence more (docs/learning.md).",
    )
    n = models.BigIntegerField(default=0)
    r_sum = models.FloatField(default=0.0)
    r_squares = models.FloatField(default=0.0)
    wins = models.BigIntegerField(default=0, help_text="Calls with a positive R.")
    win_r = models.FloatField(default=0.0)
    losses = models.BigIntegerField(default=0, help_text="Calls with a negative R.")
    loss_r = models.FloatField(default=0.0)
    hold_sum = models.FloatField(default=0.0, help_text="Candles from the call to its outcome, summed.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "bot_id", "bucket", "regime", "market_sentiment", "rsi_band", "block"],
                name="one_policy_counter_by_block",
            )
        ]

    def __str__(self):
        return f"bot {self.bot_id} ≥{self.bucket} {self.regime}/{self.market_sentiment}: {self.n}"


class InsightSnapshot(models.Model):
    """The insights as computed at one moment, kept so their history can be plotted."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="insight_snapshots"
    )
    bot = models.ForeignKey(
        "automation.Bot", null=True, blank=True, on_delete=models.CASCADE, related_name="insight_snapshots"
    )
    computed_at = models.DateTimeField(auto_now_add=True)
    resolved_count = models.PositiveIntegerField(default=0)
    data = models.JSONField()

    class Meta:
        indexes = [models.Index(fields=["user", "bot", "-computed_at"])]
        ordering = ["-computed_at"]

    def __str__(self):
        return f"insights of {self.user} at {self.computed_at:%Y-%m-%d %H:%M}"


class LearnedPolicy(models.Model):
    """A bot's trading policy as learned from its history, with where it came from and the owner's pins."""

    bot = models.ForeignKey("automation.Bot", on_delete=models.CASCADE, related_name="policies")
    min_confidence = models.FloatField()
    size_factor = models.FloatField(default=1.0)
    avoid_conditions = models.JSONField(default=list, blank=True)
    patterns = models.JSONField(
        default=list,
        blank=True,
        help_text="The conditions learned to trade inside of, or to avoid, each with its evidence.",
    )
    pins = models.JSONField(default=dict, blank=True, help_text="Values the owner fixed by hand.")
    data_from = models.DateTimeField(null=True, blank=True)
    data_to = models.DateTimeField(null=True, blank=True)
    sample_sizes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "learned policies"
        indexes = [models.Index(fields=["bot", "-created_at"])]
        ordering = ["-created_at"]

    def __str__(self):
        return f"policy of {self.bot} at {self.created_at:%Y-%m-%d %H:%M}"


class TrainedModel(models.Model):
    """A fitted outcome model with its training window and out-of-sample metrics."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="trained_models",
    )
    version = models.CharField(max_length=50)
    algorithm = models.CharField(max_length=100)
    features = models.JSONField(default=list)
    trained_from = models.DateTimeField()
    trained_to = models.DateTimeField()
    metrics = models.JSONField(default=dict)
    artifact = models.FileField(upload_to="models/", max_length=255)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "version"], name="model_version_per_user")]
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.algorithm} {self.version}"
