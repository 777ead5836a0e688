"""Each kind of channel sends to a stand-in of its service over real HTTP (e-mail to Django's locmem outbox);
retries on 429, 5xx and no answer, none on another 4xx; the log keeps status codes and errors, never a
secret. The task itself runs on a real worker in test_end_to_end.py."""

import hashlib
import hmac
import socket

import pytest
from django.core import mail

from notifications.delivery import deliver, wait_before
from notifications.events import Event
from notifications.models import Delivery
from notifications.services import notify
from notifications.transports import signature

from .conftest import HMAC_KEY, TELEGRAM_TOKEN, add_channel


def told(user, event=Event.TRADE_OPENED, **kwargs):
    return notify(user, event, "BUY EUR/USD opened", "BUY 1000 EUR/USD at 1.17", {"trade": 7}, **kwargs)


def delivery_of(notification, kind) -> Delivery:
    return notification.deliveries.get(kind=kind)


def test_every_kind_of_channel_delivers_as_its_service_takes_it(alice, channels, notify_stand_in):
    notification = told(alice)
    assert notification.deliveries.count() == 5
    for delivery in notification.deliveries.all():
        assert delivery.status == Delivery.Status.QUEUED
        assert deliver(delivery.pk, last_try=False) is None
        delivery.refresh_from_db()
        assert delivery.status == Delivery.Status.SENT, (delivery.kind, delivery.error)
        assert len(delivery.attempts) == 1

    assert [m.to for m in mail.outbox] == [["alice@example.com"]]
    assert mail.outbox[0].subject == "BUY EUR/USD opened"
    (slack,) = notify_stand_in.to("/services/T000/B000/slack-secret-part")
    assert slack.json() == {"text": "BUY EUR/USD opened\nBUY 1000 EUR/USD at 1.17"}
    (discord,) = notify_stand_in.to("/api/webhooks/42/discord-secret-part")
    assert discord.json()["content"] == "BUY EUR/USD opened\nBUY 1000 EUR/USD at 1.17"
    assert discord.json()["allowed_mentions"] == {"parse": []}  # an @everyone in a symbol pings no one
    (telegram,) = notify_stand_in.to(f"/bot{TELEGRAM_TOKEN}/sendMessage")
    assert telegram.json() == {
        "chat_id": "-1001234567890",
        "text": "BUY EUR/USD opened\nBUY 1000 EUR/USD at 1.17",
    }
    assert delivery_of(notification, "DISCORD").status_code == 204
    assert delivery_of(notification, "TELEGRAM").status_code == 200


def test_the_generic_webhook_is_signed_so_that_the_receiver_can_verify_it(alice, channels, notify_stand_in):
    notification = told(alice)
    delivery = delivery_of(notification, "WEBHOOK")
    deliver(delivery.pk, last_try=False)
    (request,) = notify_stand_in.to("/hook")
    assert request.path == "/hook?team=7"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-tradingai-event"] == "TRADE_OPENED"
    assert request.headers["x-tradingai-delivery"] == str(delivery.pk)
    # What docs/notifications.md tells a receiver to do, written out independently of our code:
    timestamp = request.headers["x-tradingai-timestamp"]
    expected = hmac.new(
        HMAC_KEY.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(request.headers["x-tradingai-signature"], f"v1={expected}")
    # Another key, or the body changed, gives another signature.
    assert signature("another-key-entirely-000", timestamp, request.body) != f"v1={expected}"
    assert signature(HMAC_KEY, timestamp, request.body + b" ") != f"v1={expected}"
    body = request.json()
    assert (body["event"], body["title"], body["data"], body["delivery"]) == (
        "TRADE_OPENED", "BUY EUR/USD opened", {"trade": 7}, delivery.pk,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "prefix"),
    [("SLACK", "/services/"), ("DISCORD", "/api/webhooks/"), ("TELEGRAM", "/bot"), ("WEBHOOK", "/hook")],
)
def test_a_429_is_tried_again_after_the_wait_the_service_asked_for(
    alice, channels, notify_stand_in, kind, prefix
):
    notify_stand_in.fail(prefix, 429, retry_after=7)
    delivery = delivery_of(told(alice), kind)

    assert deliver(delivery.pk, last_try=False) == 7
    delivery.refresh_from_db()
    assert (delivery.status, delivery.status_code) == (Delivery.Status.RETRYING, 429)

    assert deliver(delivery.pk, last_try=False) is None
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert [a["status_code"] for a in delivery.attempts] == [429, delivery.status_code]


def test_a_server_error_backs_off_and_the_last_try_fails_for_good(alice, channels, notify_stand_in, settings):
    settings.NOTIFICATIONS_RETRY_BASE_SECONDS = 30
    notify_stand_in.fail("/hook", 503, times=3)
    delivery = delivery_of(told(alice), "WEBHOOK")
    assert deliver(delivery.pk, last_try=False) == 30
    assert deliver(delivery.pk, last_try=False) == 60
    assert deliver(delivery.pk, last_try=True) is None
    delivery.refresh_from_db()
    assert (delivery.status, delivery.status_code, len(delivery.attempts)) == ("FAILED", 503, 3)
    assert delivery.error.startswith("HTTP 503")
    assert deliver(delivery.pk, last_try=False) is None  # a redelivered task finds it done
    assert len(notify_stand_in.to("/hook")) == 3


def test_a_client_error_is_not_tried_again(alice, channels, notify_stand_in):
    notify_stand_in.fail("/bot", 400)
    delivery = delivery_of(told(alice), "TELEGRAM")
    assert deliver(delivery.pk, last_try=False) is None
    delivery.refresh_from_db()
    assert (delivery.status, delivery.status_code) == ("FAILED", 400)
    assert "chat not found" in delivery.error


def test_no_answer_is_tried_again_and_the_log_never_holds_the_secret(alice, notify_stand_in, settings):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens here once the socket is closed
    settings.TELEGRAM_API_BASE = f"http://127.0.0.1:{port}"
    add_channel(alice, kind="TELEGRAM", token=TELEGRAM_TOKEN, target="@alice_trades")
    delivery = told(alice).deliveries.get()
    assert deliver(delivery.pk, last_try=False) == settings.NOTIFICATIONS_RETRY_BASE_SECONDS
    delivery.refresh_from_db()
    assert delivery.status == "RETRYING"
    assert delivery.error == "could not connect (ConnectionError)"
    row = str(Delivery.objects.filter(pk=delivery.pk).values().get())
    assert TELEGRAM_TOKEN not in row and TELEGRAM_TOKEN.split(":")[1] not in row


def test_waits_grow_and_are_capped(settings):
    settings.NOTIFICATIONS_RETRY_BASE_SECONDS = 30
    settings.NOTIFICATIONS_RETRY_MAX_SECONDS = 3600
    assert [wait_before(n, None) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert wait_before(9, None) == 3600
    assert wait_before(1, 86400) == 3600  # a receiver cannot park a delivery for a day
    assert wait_before(1, 0) == 0


def test_a_webhook_whose_host_became_private_is_not_called(alice, channels, notify_stand_in, settings):
    settings.NOTIFICATIONS_LOCAL_HOSTS = []  # as in production: 127.0.0.1 is no longer an exception
    delivery = delivery_of(told(alice), "WEBHOOK")
    assert deliver(delivery.pk, last_try=False) is None
    delivery.refresh_from_db()
    assert delivery.status == "FAILED"
    assert "https://" in delivery.error or "private" in delivery.error
    assert not notify_stand_in.to("/hook")


def test_a_deleted_channel_fails_its_queued_deliveries(alice, channels):
    delivery = delivery_of(told(alice), "SLACK")
    channels["SLACK"].delete()
    assert deliver(delivery.pk, last_try=False) is None
    delivery.refresh_from_db()
    assert (delivery.status, delivery.channel_label) == ("FAILED", "slack")
    assert "deleted" in delivery.error


def test_switches_and_keys_decide_what_is_told(alice, charlie, channels):
    from notifications.services import switches_set

    switches_set(alice, {Event.TRADE_OPENED: False})
    assert told(alice) is None
    assert told(alice, Event.TRADE_CLOSED) is not None
    assert told(charlie) is None  # no channel, nothing recorded
    assert told(alice, Event.SPEND_CAP, key="2026-12") is not None
    assert told(alice, Event.SPEND_CAP, key="2026-12") is None  # once per period
    assert told(alice, Event.SPEND_CAP, key="2027-01") is not None


def test_rotating_keys_re_encrypts_channels_too(alice, channels, settings):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    from accounts.crypto import SecretDecryptionError

    old_key, new_key = settings.FIELD_ENCRYPTION_KEYS[0], Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("rotate_encryption_keys", stdout=open("/dev/null", "w"))  # noqa: SIM115
    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    channel = channels["TELEGRAM"]
    channel.refresh_from_db()
    assert channel.secrets() == {"token": TELEGRAM_TOKEN}
    settings.FIELD_ENCRYPTION_KEYS = [old_key]
    with pytest.raises(SecretDecryptionError):
        channel.secrets()


def test_a_delivery_whose_task_never_reached_the_broker_is_sent_again_once(
    alice, channels, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from notifications.services import STUCK_AFTER, requeue_stuck

    notification = told(alice)
    stuck = delivery_of(notification, "SLACK")
    sent = delivery_of(notification, "DISCORD")
    long_ago = timezone.now() - STUCK_AFTER - timedelta(minutes=1)
    Delivery.objects.filter(pk__in=[stuck.pk, sent.pk]).update(updated_at=long_ago)
    Delivery.objects.filter(pk=sent.pk).update(status=Delivery.Status.SENT)
    with django_capture_on_commit_callbacks() as queued:
        assert requeue_stuck() == 1
        assert requeue_stuck() == 0  # claimed: a second sweep sends nothing
    assert len(queued) == 1
    stuck.refresh_from_db()
    assert stuck.updated_at > long_ago
