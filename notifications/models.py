import json

from django.conf import settings
from django.db import models
from django.db.models import Q

from accounts import crypto

from .events import Event


class Channel(models.Model):
    """Where a user's notifications go. The secret part (a Slack or Discord webhook URL, which is its own
    credential, a Telegram bot token, a generic webhook's URL and HMAC key) is encrypted at rest like an
    exchange key (accounts.crypto) and never shown again; `hint` says which one it is."""

    class Kind(models.TextChoices):
        EMAIL = "EMAIL", "E-mail"
        SLACK = "SLACK", "Slack"
        DISCORD = "DISCORD", "Discord"
        TELEGRAM = "TELEGRAM", "Telegram"
        WEBHOOK = "WEBHOOK", "Signed webhook"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_channels"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    label = models.CharField(max_length=100)
    # Not secret: a Telegram chat id. An e-mail channel writes to the account's own address.
    target = models.CharField(max_length=100, blank=True)
    secrets_encrypted = models.TextField(editable=False, blank=True)
    hint = models.CharField(max_length=120, editable=False, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "label"], name="one_channel_label_per_owner")]
        ordering = ["label"]

    def __str__(self):
        return f"{self.get_kind_display()} “{self.label}”"

    def set_secrets(self, secrets: dict[str, str], hint: str) -> None:
        self.secrets_encrypted = crypto.encrypt(json.dumps(secrets)) if secrets else ""
        self.hint = hint

    def secrets(self) -> dict[str, str]:
        return json.loads(crypto.decrypt(self.secrets_encrypted)) if self.secrets_encrypted else {}

    ENCRYPTED_FIELDS = ("secrets_encrypted",)  # for the rotate_encryption_keys command

    def rotate_encryption(self) -> None:
        if self.secrets_encrypted:
            self.secrets_encrypted = crypto.rotate(self.secrets_encrypted)


class EventSwitch(models.Model):
    """A user's switch for one event; an event without a row is on."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="event_switches"
    )
    event = models.CharField(max_length=14, choices=Event.choices)
    enabled = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "event"], name="one_switch_per_user_event")]

    def __str__(self):
        return f"{self.event} {'on' if self.enabled else 'off'} for {self.user}"


class Notification(models.Model):
    """One event told to one user, on every channel they have. `key` makes an event that must be told once
    per period (the spending cap's month, the summary's week) unique."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=14, choices=Event.choices)
    title = models.CharField(max_length=200)
    text = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    key = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "event", "key"], condition=~Q(key=""), name="one_notification_per_key"
            )
        ]
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return self.title


class Delivery(models.Model):
    """One notification sent on one channel: its state and every attempt (time, HTTP status, error), the
    log the user reads. The channel's label and kind are copied so the log outlives a deleted channel."""

    class Status(models.TextChoices):
        QUEUED = "QUEUED", "Queued"
        RETRYING = "RETRYING", "Retrying"
        SENT = "SENT", "Sent"
        FAILED = "FAILED", "Failed"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="deliveries")
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(Channel, null=True, on_delete=models.SET_NULL, related_name="deliveries")
    channel_label = models.CharField(max_length=100)
    kind = models.CharField(max_length=8, choices=Channel.Kind.choices)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    attempts = models.JSONField(default=list, blank=True)  # [{"at", "status_code", "error"}], oldest first
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)  # of the last attempt
    error = models.CharField(max_length=500, blank=True)  # of the last attempt
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["user", "-created_at"])]
        verbose_name_plural = "deliveries"

    def __str__(self):
        return f"{self.notification} via {self.channel_label}: {self.status}"
