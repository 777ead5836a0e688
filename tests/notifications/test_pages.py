"""The Notifications page and the delivery log: channels added through the form (errors in words, secrets
never shown back), test-sends, deletes, switches; another user's channel is a 404."""

import pytest
from django.urls import reverse

from notifications.models import Channel, Delivery, EventSwitch

from .conftest import TELEGRAM_TOKEN, add_channel


def post(client, **fields):
    return client.post(reverse("notifications"), {"label": "mine", **fields})


def errors(response) -> dict:
    return response.context["form"].errors


def test_a_slack_channel_is_added_and_its_url_never_shown_again(alice_client, notify_stand_in):
    url = f"{notify_stand_in.base_url}/services/T000/B000/XyZsecretpart1234"
    response = post(alice_client, kind="SLACK", url=url)
    assert response.status_code == 302
    channel = Channel.objects.get()
    assert channel.secrets() == {"url": url}
    assert "XyZsecretpart1234" not in channel.secrets_encrypted
    page = alice_client.get(reverse("notifications")).content.decode()
    assert "mine" in page and "…1234" in page
    assert "XyZsecretpart" not in page


def test_a_signed_webhook_without_a_key_gets_one_shown_once(alice_client, notify_stand_in):
    response = post(alice_client, kind="WEBHOOK", url=f"{notify_stand_in.base_url}/hook/path-token")
    assert response.status_code == 302
    key = Channel.objects.get().secrets()["hmac_key"]
    assert len(key) >= 32
    assert key in alice_client.get(response.url).content.decode()  # the message, once
    page = alice_client.get(reverse("notifications")).content.decode()
    assert key not in page and "path-token" not in page


UNSAFE = [
    ("https://10.0.0.5/hook", "private network"),
    ("https://169.254.169.254/latest/meta-data/", "not an address this server calls"),
    ("https://[::1]/hook", "private network"),
    ("https://[::ffff:10.0.0.1]/hook", "private network"),
    ("https://localhost/hook", "private network"),
    ("https://0x7f000002/hook", "private network"),  # 127.0.0.2, as a browser reads it
    ("http://example.com/hook", "https://"),
    ("https://user:pw@example.com/hook", "user name or password"),
    ("https://127.0.0.1:8000\\@example.com/", "backslashes"),
    ("ftp://example.com/x", "https://"),
    ("not a url", "spaces"),
    ("https://no-such-host.invalid/hook", "cannot be resolved"),
]


@pytest.mark.parametrize(("url", "reason"), UNSAFE)
def test_a_webhook_url_to_an_internal_address_is_refused_in_words(alice_client, settings, url, reason):
    settings.NOTIFICATIONS_LOCAL_HOSTS = []  # as in production
    response = post(alice_client, kind="WEBHOOK", url=url)
    assert response.status_code == 200
    assert any(reason in e for e in errors(response)["url"]), errors(response)
    assert not Channel.objects.exists()


def test_a_named_local_host_may_be_private_but_the_metadata_service_never(alice_client, settings):
    # NOTIFICATIONS_LOCAL_HOSTS lets the hosts it names be on the operator's networks, and no more: another
    # private host is refused, and a link-local one even when named (core/outbound.py).
    settings.NOTIFICATIONS_LOCAL_HOSTS = ["127.0.0.1", "169.254.169.254"]
    other = post(alice_client, kind="WEBHOOK", url="https://10.0.0.5/hook")
    assert "private network" in errors(other)["url"][0]
    metadata = post(alice_client, kind="WEBHOOK", url="http://169.254.169.254/latest/meta-data/")
    assert "not an address this server calls" in errors(metadata)["url"][0]
    assert not Channel.objects.exists()
    named = post(alice_client, kind="WEBHOOK", url="http://127.0.0.1:9/hook?from=tradingai")
    assert named.status_code == 302
    assert (
        Channel.objects.get().secrets()["url"] == "http://127.0.0.1:9/hook?from=tradingai"
    )  # its query kept


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com.evil.example/services/T/B/x",
        "https://evil.example/services/T/B/x",
        "https://hooks.slack.com/servicesX/T/B/x",
        "https://hooks.slack.com/services/",
        "http://hooks.slack.com/services/T/B/x",
        "https://hooks.slack.com:444/services/T/B/x",
    ],
)
def test_a_slack_url_must_be_slacks(alice_client, settings, url):
    settings.SLACK_WEBHOOK_BASE = "https://hooks.slack.com/services/"
    response = post(alice_client, kind="SLACK", url=url)
    assert "not a Slack webhook URL" in errors(response)["url"][0]


def test_telegram_and_the_rest_say_what_is_wrong(alice_client, alice):
    bad = post(alice_client, kind="TELEGRAM", token="not-a-token", target="someone")
    assert "not a Telegram bot token" in errors(bad)["token"][0]
    assert "numeric id" in errors(bad)["target"][0]
    assert "Give the webhook URL" in errors(post(alice_client, kind="DISCORD"))["url"][0]
    assert errors(post(alice_client, kind="NOPE"))["kind"]
    add_channel(alice, kind="EMAIL", label="mail")
    assert "already have an e-mail channel" in errors(post(alice_client, kind="EMAIL"))["kind"][0]
    assert (
        "already have a channel with this name"
        in errors(post(alice_client, label="mail", kind="EMAIL"))["label"][0]
    )
    ok = post(alice_client, kind="TELEGRAM", token=TELEGRAM_TOKEN, target="-100123")
    assert ok.status_code == 302
    assert Channel.objects.get(kind="TELEGRAM").target == "-100123"


def test_test_send_delete_and_switches(alice_client, alice, notify_stand_in):
    channel = add_channel(alice, kind="EMAIL")
    response = alice_client.post(reverse("channel_test", args=[channel.pk]), follow=True)
    delivery = Delivery.objects.get()
    assert (delivery.channel, delivery.notification.event) == (channel, "TEST")
    assert "test message to “email” is on its way" in response.content.decode()
    assert "TradingAI test message" in response.content.decode()  # the log lists it

    alice_client.post(reverse("notification_switches"), {"TRADE_CLOSED": "on", "RUN_FAILED": "on"})
    assert set(EventSwitch.objects.filter(enabled=False).values_list("event", flat=True)) == {
        "TRADE_OPENED", "BOT_PAUSED", "SPEND_CAP", "WEEKLY_SUMMARY",
    }  # fmt: skip
    page = alice_client.get(reverse("notifications")).context["switches"]
    assert page.initial["TRADE_CLOSED"] is True and page.initial["TRADE_OPENED"] is False

    alice_client.post(reverse("channel_delete", args=[channel.pk]))
    assert not Channel.objects.exists()
    assert Delivery.objects.get().channel_label == "email"  # the log outlives the channel


def test_another_users_channel_is_a_404(client, alice, charlie):
    channel = add_channel(alice, kind="EMAIL")
    client.force_login(charlie)
    assert client.post(reverse("channel_test", args=[channel.pk])).status_code == 404
    assert client.post(reverse("channel_delete", args=[channel.pk])).status_code == 404
    assert client.get(reverse("channel_test", args=[channel.pk])).status_code == 405
    assert Channel.objects.filter(pk=channel.pk).exists()
    assert not Delivery.objects.exists()
