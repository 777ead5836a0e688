import re
import secrets

from django import forms
from django.conf import settings

from core.outbound import UnsafeServerUrlError

from .events import SWITCHABLE
from .models import Channel
from .outbound import checked_public, checked_under

# Enough for every way of being told, not so many that one account fans one event out to hundreds of URLs.
MAX_CHANNELS = 10
# Telegram's bot tokens: the bot's numeric id, a colon, 35 characters (BotFather's format).
TELEGRAM_TOKEN = re.compile(r"\d{5,15}:[A-Za-z0-9_-]{30,60}")
# A chat's numeric id (negative for groups and channels) or a public channel's @username.
TELEGRAM_CHAT = re.compile(r"-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31}")
MIN_HMAC_KEY = 16


def _secret_field(label: str, help_text: str = "", required: bool = False) -> forms.CharField:
    return forms.CharField(
        label=label,
        max_length=500,
        required=required,
        help_text=help_text,
        widget=forms.PasswordInput(render_value=False),
    )


class ChannelForm(forms.ModelForm):
    """A channel of the kind chosen; the webhook URL, the bot token and the HMAC key are taken in, checked,
    encrypted, and never rendered back. A generic webhook without a key gets one made here (`made_key`),
    shown once."""

    url = _secret_field(
        "Webhook URL",
        "Slack: https://hooks.slack.com/services/…; Discord: https://discord.com/api/webhooks/…; signed "
        "webhook: your HTTPS endpoint."
    )  # fmt: skip
    token = _secret_field("Telegram bot token", "From @BotFather, e.g. 123456789:AA…")
    target = forms.CharField(
        label="Telegram chat",
        max_length=100,
        required=False,
        help_text="The chat's numeric id, or @name of a public channel the bot may post in.",
    )
    hmac_key = _secret_field(
        "Signing key",
        f"Signed webhook only: at least {MIN_HMAC_KEY} characters; leave empty and one is made for you and "
        "shown once."
    )  # fmt: skip

    class Meta:
        model = Channel
        fields = ("label", "kind", "target")
        labels = {"label": "Name", "kind": "Kind"}

    def __init__(self, *args, owner, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner
        self.made_key = ""

    def clean_label(self):
        label = self.cleaned_data["label"].strip()
        if Channel.objects.filter(owner=self.owner, label=label).exists():
            raise forms.ValidationError("You already have a channel with this name.")
        return label

    def clean(self):
        cleaned = super().clean()
        if Channel.objects.filter(owner=self.owner).count() >= MAX_CHANNELS:
            raise forms.ValidationError(
                f"You have {MAX_CHANNELS} channels, the most allowed: delete one first."
            )
        kind = cleaned.get("kind")
        url, token = cleaned.get("url", "").strip(), cleaned.get("token", "").strip()
        chat, key = cleaned.get("target", "").strip(), cleaned.get("hmac_key", "")
        self.secrets, self.hint = {}, ""
        if kind == Channel.Kind.EMAIL:
            if Channel.objects.filter(owner=self.owner, kind=Channel.Kind.EMAIL).exists():
                self.add_error(
                    "kind", "You already have an e-mail channel: it writes to your account's address."
                )
            self.hint = self.owner.email
        elif kind in (Channel.Kind.SLACK, Channel.Kind.DISCORD):
            base, service = (
                (settings.SLACK_WEBHOOK_BASE, "Slack")
                if kind == Channel.Kind.SLACK
                else (settings.DISCORD_WEBHOOK_BASE, "Discord")
            )
            self._take_url(url, lambda u: checked_under(u, base, service), f"{base}…{url[-4:]}")
        elif kind == Channel.Kind.TELEGRAM:
            if not TELEGRAM_TOKEN.fullmatch(token):
                self.add_error(
                    "token", "This is not a Telegram bot token (digits, a colon, then 35 characters)."
                )
            if not TELEGRAM_CHAT.fullmatch(chat):
                self.add_error("target", "Give the chat's numeric id (e.g. -1001234567890) or @channelname.")
            self.secrets, self.hint = {"token": token}, f"bot …{token[-4:]}, chat {chat}"
        elif kind == Channel.Kind.WEBHOOK:
            if key and len(key) < MIN_HMAC_KEY:
                self.add_error("hmac_key", f"Use at least {MIN_HMAC_KEY} characters, or leave it empty.")
            self.made_key = "" if key else secrets.token_urlsafe(32)
            self._take_url(url, checked_public, "")
            if "url" in self.secrets:
                self.secrets["hmac_key"] = key or self.made_key
                self.hint = "/".join(self.secrets["url"].split("/")[:3]) + "/…"  # the path may hold a token
        if kind != Channel.Kind.TELEGRAM:
            cleaned["target"] = ""
        return cleaned

    def _take_url(self, url: str, check, hint: str) -> None:
        if not url:
            self.add_error("url", "Give the webhook URL.")
            return
        try:
            self.secrets = {"url": check(url)}
        except UnsafeServerUrlError as e:
            self.add_error("url", str(e))
            return
        self.hint = hint or self.secrets["url"]

    def save(self, commit=True):
        channel = super().save(commit=False)
        channel.owner = self.owner
        channel.set_secrets(self.secrets, self.hint)
        if commit:
            channel.save()
        return channel


class SwitchesForm(forms.Form):
    """One box per event: ticked, the event is told on every channel."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for event in SWITCHABLE:
            self.fields[event.value] = forms.BooleanField(label=event.label, required=False)
