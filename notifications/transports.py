"""One function per kind of channel, each sending one notification the way that service takes it:

- e-mail: Django's mail (EMAIL_URL), to the account's own address;
- Slack: an incoming webhook, `{"text": ...}`, answered `200 ok`;
- Discord: a webhook, `{"content": ...}` (at most 2,000 characters), answered `204`;
- Telegram: the Bot API's `sendMessage`, `{"chat_id", "text"}` (at most 4,096 characters);
- a generic webhook: the notification as JSON, signed (`signature`, the scheme in docs/notifications.md).

Each raises outbound.DeliveryError when the message did not go; tasks.deliver_task decides on a retry."""

import hashlib
import hmac
import json
import smtplib
import time

from django.conf import settings
from django.core.mail import send_mail

from core.outbound import UnsafeServerUrlError

from .models import Channel, Delivery, Notification
from .outbound import DeliveryError, checked_public, checked_under, post

DISCORD_LIMIT = 2000
TELEGRAM_LIMIT = 4096
SIGNATURE_VERSION = "v1"


def message_of(notification: Notification) -> str:
    return f"{notification.title}\n{notification.text}"


def send(channel: Channel, notification: Notification, delivery: Delivery) -> int | None:
    """Send `notification` on `channel`; the HTTP status of the answer (None for e-mail)."""
    return SENDERS[channel.kind](channel, notification, delivery)


def _email(channel: Channel, notification: Notification, delivery: Delivery) -> None:
    try:
        send_mail(notification.title, notification.text, None, [channel.owner.email])
    except (smtplib.SMTPException, OSError) as e:
        raise DeliveryError(
            f"the mail server refused or could not be reached ({type(e).__name__})", transient=True
        ) from None


def _slack(channel: Channel, notification: Notification, delivery: Delivery) -> int:
    url = _under(channel.secrets()["url"], settings.SLACK_WEBHOOK_BASE, "Slack")
    return post(url, json={"text": message_of(notification)}, secret=url).status_code


def _discord(channel: Channel, notification: Notification, delivery: Delivery) -> int:
    url = _under(channel.secrets()["url"], settings.DISCORD_WEBHOOK_BASE, "Discord")
    content = message_of(notification)[:DISCORD_LIMIT]
    return post(url, json={"content": content, "allowed_mentions": {"parse": []}}, secret=url).status_code


def _telegram(channel: Channel, notification: Notification, delivery: Delivery) -> int:
    token = channel.secrets()["token"]
    url = f"{settings.TELEGRAM_API_BASE.rstrip('/')}/bot{token}/sendMessage"
    body = {"chat_id": channel.target, "text": message_of(notification)[:TELEGRAM_LIMIT]}
    return post(url, json=body, secret=token).status_code


def _webhook(channel: Channel, notification: Notification, delivery: Delivery) -> int:
    secrets = channel.secrets()
    try:
        url = checked_public(secrets["url"])
    except UnsafeServerUrlError as e:
        raise DeliveryError(str(e), transient=False) from None
    body = json.dumps(payload_of(notification, delivery), separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "TradingAI-Webhook/1",
        "X-TradingAI-Event": notification.event,
        "X-TradingAI-Delivery": str(delivery.pk),
        "X-TradingAI-Timestamp": timestamp,
        "X-TradingAI-Signature": signature(secrets["hmac_key"], timestamp, body),
    }
    return post(url, data=body, headers=headers, secret=secrets["hmac_key"]).status_code


def payload_of(notification: Notification, delivery: Delivery) -> dict:
    return {
        "id": notification.pk,
        "delivery": delivery.pk,
        "event": notification.event,
        "created_at": notification.created_at.isoformat(),
        "title": notification.title,
        "text": notification.text,
        "data": notification.data,
    }


def signature(key: str, timestamp: str, body: bytes) -> str:
    """`v1=` and the hex HMAC-SHA256, under the channel's key, of the timestamp, a dot and the body: the
    timestamp inside the signature, so that a captured request cannot be replayed later with a new one."""
    digest = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def _under(url: str, base: str, service: str) -> str:
    try:
        return checked_under(url, base, service)
    except UnsafeServerUrlError as e:
        raise DeliveryError(str(e), transient=False) from None


SENDERS = {
    Channel.Kind.EMAIL: _email,
    Channel.Kind.SLACK: _slack,
    Channel.Kind.DISCORD: _discord,
    Channel.Kind.TELEGRAM: _telegram,
    Channel.Kind.WEBHOOK: _webhook,
}
