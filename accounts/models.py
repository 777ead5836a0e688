import hashlib
import secrets
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MinValueValidator
from django.db import models

from . import crypto
from .quotas import room_for


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email, password, **extra):
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email, password=None, **extra):
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create_user(email, password, **extra)

    def get_by_natural_key(self, email):
        # Logins are case-insensitive; addresses are stored lower-case (see _create_user and the forms).
        return self.get(email__iexact=email)


class Plan(models.Model):
    """What an account may hold and spend, set by operators in the admin. A user without a plan gets the
    TRADINGAI_DEFAULT_* settings (accounts.quotas)."""

    name = models.CharField(max_length=50, unique=True)
    max_running_bots = models.PositiveSmallIntegerField(default=3)
    max_bots = models.PositiveIntegerField(default=20, help_text="Bots, running or not.")
    max_exchange_accounts = models.PositiveIntegerField(default=10)
    max_api_tokens = models.PositiveIntegerField(default=10)
    max_model_connections = models.PositiveIntegerField(default=10)
    run_now_per_hour = models.PositiveIntegerField(
        default=10, help_text="Run-now requests in any hour, whatever the bots' states."
    )
    cycles_per_day = models.PositiveIntegerField(
        default=500, help_text="Cycles of all the user's bots in a UTC day; more are skipped."
    )
    monthly_llm_usd = models.DecimalField(
        "monthly LLM spend (USD)",
        max_digits=10,
        decimal_places=2,
        default=Decimal("10.00"),
        validators=[MinValueValidator(Decimal(0))],
        help_text="Paid analyses (the OpenAI analyst) stop for the rest of the UTC calendar month once the "
        "user's analyses of the month cost this much.",
    )
    backtests_at_once = models.PositiveSmallIntegerField(
        default=1, help_text="Backtests queued or running at once; another is refused until one ends."
    )
    backtest_max_candles = models.PositiveIntegerField(
        default=10000, help_text="The most candles one backtest may replay (one cycle each)."
    )

    def __str__(self):
        return self.name


def time_zone_validator(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"“{value}” is not a time zone; choose one from the list, e.g. Europe/Paris.")


class User(AbstractUser):
    """Logs in with the e-mail address; there is no username."""

    username = None
    first_name = None
    last_name = None
    email = models.EmailField("e-mail address", unique=True)
    display_name = models.CharField(max_length=100, blank=True)
    plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.SET_NULL, related_name="users")
    # The user's own kill switch: no bot of theirs opens a trade while it is on.
    trading_halted = models.BooleanField(default=False)
    # Every date and time on the pages is shown in this zone (accounts.middleware.UserTimeZoneMiddleware).
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[time_zone_validator],
        help_text="Dates and times on the pages are shown in this time zone.",
    )
    # The dashboard's first-visit card (what the user is looking at, what to try) until they dismiss it.
    intro_dismissed_at = models.DateTimeField(null=True, blank=True)

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = []

    objects = UserManager()

    def __str__(self):
        return self.email

    @property
    def max_running_bots(self) -> int:
        return self.plan.max_running_bots if self.plan else settings.DEFAULT_MAX_RUNNING_BOTS


@dataclass(frozen=True, repr=False)
class Credentials:
    api_key: str
    secret: str
    password: str

    def __repr__(self):
        # Keeps secrets out of tracebacks, logs and debuggers that print locals.
        return "Credentials(****)"


class ExchangeAccount(models.Model):
    """A user's API keys for one exchange. The key, secret and passphrase are stored only as Fernet
    tokens; nothing reads them back except `credentials()`, which the live broker calls."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exchange_accounts"
    )
    label = models.CharField(max_length=100)
    exchange = models.CharField(max_length=50, help_text="ccxt exchange id, e.g. binance or kraken")
    sandbox = models.BooleanField(default=False, help_text="Use the exchange's test network.")
    api_key_encrypted = models.TextField(editable=False)
    secret_encrypted = models.TextField(editable=False)
    password_encrypted = models.TextField(editable=False, blank=True)
    # The key's last four characters, so the owner can tell keys apart; none for keys under 12 characters,
    # where four would give too much away. The secret has no hint.
    api_key_hint = models.CharField(max_length=8, editable=False)
    # What the exchange said about the key's permissions when it was added (market.exchanges.key_permissions):
    # a warning (no IP restriction) or why it could not tell. Empty: the key is as it should be.
    key_note = models.CharField(max_length=500, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "label"], name="exchange_account_label_per_owner")
        ]
        indexes = [models.Index(fields=["owner", "exchange"])]

    def __str__(self):
        return f"{self.label} ({self.exchange})"

    def set_credentials(self, api_key: str, secret: str, password: str = "") -> None:
        self.api_key_encrypted = crypto.encrypt(api_key)
        self.secret_encrypted = crypto.encrypt(secret)
        self.password_encrypted = crypto.encrypt(password) if password else ""
        self.api_key_hint = api_key[-4:] if len(api_key) >= 12 else ""

    def credentials(self) -> Credentials:
        return Credentials(
            api_key=crypto.decrypt(self.api_key_encrypted),
            secret=crypto.decrypt(self.secret_encrypted),
            password=crypto.decrypt(self.password_encrypted) if self.password_encrypted else "",
        )

    # Re-encrypted by rotate_encryption(), which the rotate_encryption_keys command calls on every row.
    ENCRYPTED_FIELDS = ("api_key_encrypted", "secret_encrypted", "password_encrypted")

    def rotate_encryption(self) -> None:
        self.api_key_encrypted = crypto.rotate(self.api_key_encrypted)
        self.secret_encrypted = crypto.rotate(self.secret_encrypted)
        if self.password_encrypted:
            self.password_encrypted = crypto.rotate(self.password_encrypted)

    @property
    def masked_key(self) -> str:
        return f"••••{self.api_key_hint}" if self.api_key_hint else "••••"


class ModelConnection(models.Model):
    """A user's own model server: an OpenAI-compatible base URL (OpenAI itself, or Ollama or vLLM on the
    user's network) and its API key, which a bot may use instead of the operator's analyst. The key is
    stored only as a Fernet token, like an exchange key, and read back only by `api_key()`, which the
    analyst calls; a local server may need none. Calls through it are the user's, not charged to the
    operator's spending caps (automation.quotas)."""

    DEFAULT_BASE_URL = "https://api.openai.com/v1"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="model_connections"
    )
    label = models.CharField(max_length=100)
    base_url = models.CharField(
        "base URL",
        max_length=500,
        default=DEFAULT_BASE_URL,
        help_text="The server's OpenAI-compatible API, e.g. https://api.openai.com/v1 or, for Ollama, "
        "http://192.168.1.20:11434/v1.",
    )
    api_key_encrypted = models.TextField(editable=False, blank=True)
    # As for exchange keys: the last four characters, none for a key under 12 characters.
    api_key_hint = models.CharField(max_length=8, editable=False, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "label"], name="model_connection_label_per_owner")
        ]

    def __str__(self):
        return self.label

    def set_api_key(self, api_key: str) -> None:
        """Store `api_key`, encrypted; an empty one removes the key (a local server that needs none)."""
        self.api_key_encrypted = crypto.encrypt(api_key) if api_key else ""
        self.api_key_hint = api_key[-4:] if len(api_key) >= 12 else ""

    def api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted) if self.api_key_encrypted else ""

    # Re-encrypted by rotate_encryption(), which the rotate_encryption_keys command calls on every row.
    ENCRYPTED_FIELDS = ("api_key_encrypted",)

    def rotate_encryption(self) -> None:
        if self.api_key_encrypted:
            self.api_key_encrypted = crypto.rotate(self.api_key_encrypted)

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_encrypted)

    @property
    def masked_key(self) -> str:
        if not self.has_api_key:
            return "not set"
        return f"••••{self.api_key_hint}" if self.api_key_hint else "••••"


class ApiToken(models.Model):
    """A key for the REST API. Only its SHA-256 is stored, so a leaked database gives no usable token; the
    token itself is shown once, when created. Revoking deletes it."""

    PREFIX = "tai_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    # The first characters after the prefix, so the owner can tell tokens apart.
    hint = models.CharField(max_length=8, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.PREFIX}{self.hint}…)"

    @classmethod
    def issue(cls, user, name: str) -> tuple["ApiToken", str]:
        """A new token for `user`, and its plain value: the only time it exists outside the client.
        QuotaExceededError when the user holds as many tokens as their plan allows."""
        plain = cls.PREFIX + secrets.token_urlsafe(32)
        with room_for(user, "max_api_tokens", cls.objects.filter(user=user)):
            token = cls.objects.create(user=user, name=name, key_hash=cls.digest(plain), hint=plain[4:12])
        return token, plain

    @staticmethod
    def digest(plain: str) -> str:
        return hashlib.sha256(plain.encode()).hexdigest()


class AuditEvent(models.Model):
    """One action on an account's live trading: who did what, and when, for its owner (Settings → Audit log,
    the API) and for operators (the admin). Written by `accounts.audit.record` in the transaction of the
    action it records, so neither exists without the other; never changed afterwards. `details` holds ids
    and figures only: never a key, a secret or more of a key than the hint its owner is shown."""

    class Action(models.TextChoices):
        EXCHANGE_ACCOUNT_ADDED = "EXCHANGE_ACCOUNT_ADDED", "Exchange account added"
        EXCHANGE_ACCOUNT_DELETED = "EXCHANGE_ACCOUNT_DELETED", "Exchange account deleted"
        BOT_MODE_CHANGED = "BOT_MODE_CHANGED", "Bot mode changed"
        LIVE_CONFIRMED = "LIVE_CONFIRMED", "Live trading confirmed"
        LIVE_CONFIRMATION_WITHDRAWN = "LIVE_CONFIRMATION_WITHDRAWN", "Live confirmation withdrawn"
        LIVE_BOT_STARTED = "LIVE_BOT_STARTED", "Live bot started"
        LIVE_BOT_STOPPED = "LIVE_BOT_STOPPED", "Live bot stopped"
        LIVE_BOT_PAUSED = "LIVE_BOT_PAUSED", "Live bot paused"
        LIVE_ORDER_PLACED = "LIVE_ORDER_PLACED", "Live order placed"
        LIVE_ORDER_PROTECTED = "LIVE_ORDER_PROTECTED", "Stop-loss and take-profit placed"
        LIVE_TRADE_CLOSED = "LIVE_TRADE_CLOSED", "Live trade closed"
        TRADING_HALTED = "TRADING_HALTED", "Trading halted"
        TRADING_RESUMED = "TRADING_RESUMED", "Trading resumed"
        KILL_SWITCH_ENGAGED = "KILL_SWITCH_ENGAGED", "Platform kill switch engaged"
        KILL_SWITCH_RELEASED = "KILL_SWITCH_RELEASED", "Platform kill switch released"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="audit_events",
        help_text="The account the event concerns; none for the platform's kill switch, which concerns all.",
    )
    # RESTRICT, not SET_NULL: an operator's actions must not turn into the platform's when the operator's
    # login is deleted (deactivate it instead). A user's own events go with the user, so they do not block.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.RESTRICT,
        related_name="+",
        help_text="Who did it: the user, an operator, or none: the platform itself (a cycle, the monitor).",
    )
    action = models.CharField(max_length=32, choices=Action.choices)
    summary = models.TextField()
    details = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "-created_at"]),
            models.Index(fields=["-created_at"]),  # the operators' list of every account's events
        ]

    def __str__(self):
        return f"{self.get_action_display()} ({self.created_at:%Y-%m-%d %H:%M})"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("Audit events are not changed once written.")
        super().save(*args, **kwargs)

    ACTOR_KINDS = ("owner", "operator", "platform")

    @property
    def actor_kind(self) -> str:
        """Who acted, as the account's owner reads it (one of ACTOR_KINDS)."""
        if self.actor_id is None:
            return "platform"
        return "owner" if self.actor_id == self.user_id else "operator"
