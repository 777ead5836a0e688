"""The API's notification endpoints: channels validated by the page's form (a 400 with the field and its
reason), secrets write-only, the signing key returned once, test-sends, the delivery log, switches; another
user's channel a 404."""

from notifications.models import Channel, Delivery, EventSwitch
from notifications.services import send_test_message
from tests.api.conftest import client_of

from .conftest import TELEGRAM_TOKEN, add_channel

CHANNELS = "/api/v1/notification-channels/"


def test_a_channel_is_created_with_its_secrets_write_only(alice, notify_stand_in):
    api = client_of(alice)
    url = f"{notify_stand_in.base_url}/api/webhooks/42/discord-secret-part"
    created = api.post(CHANNELS, {"label": "desk", "kind": "DISCORD", "url": url}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["signing_key"] is None
    listed = api.get(CHANNELS)
    assert [c["label"] for c in listed.json()] == ["desk"]
    assert "discord-secret-part" not in listed.content.decode()
    assert Channel.objects.get().secrets() == {"url": url}


def test_a_signed_webhook_gets_its_key_once(alice, notify_stand_in):
    api = client_of(alice)
    created = api.post(
        CHANNELS,
        {"label": "hook", "kind": "WEBHOOK", "url": f"{notify_stand_in.base_url}/hook"},
        format="json",
    )
    key = created.json()["signing_key"]
    assert key == Channel.objects.get().secrets()["hmac_key"]
    assert key not in api.get(f"{CHANNELS}{created.json()['id']}/").content.decode()


def test_bad_channels_are_400s_naming_the_field(alice, settings):
    settings.NOTIFICATIONS_LOCAL_HOSTS = []
    api = client_of(alice)
    private = api.post(CHANNELS, {"label": "x", "kind": "WEBHOOK", "url": "https://10.1.2.3/"}, format="json")
    assert private.status_code == 400
    assert "private network" in private.json()["url"][0]
    telegram = api.post(CHANNELS, {"label": "t", "kind": "TELEGRAM", "token": "nope"}, format="json")
    assert set(telegram.json()) == {"token", "target"}
    assert api.post(CHANNELS, {"label": "k", "kind": "FAX"}, format="json").json()["kind"]
    assert api.post(CHANNELS, ["not", "an", "object"], format="json").status_code == 400
    assert not Channel.objects.exists()


def test_test_send_the_log_and_switches(alice):
    api = client_of(alice)
    channel = add_channel(alice, kind="TELEGRAM", token=TELEGRAM_TOKEN, target="@alice_trades")
    sent = api.post(f"{CHANNELS}{channel.pk}/test/")
    assert sent.status_code == 202
    assert (sent.json()["event"], sent.json()["status"]) == ("TEST", "QUEUED")
    log = api.get("/api/v1/notification-deliveries/").json()
    assert [d["id"] for d in log["results"]] == [Delivery.objects.get().pk]

    switches = api.patch("/api/v1/notification-switches/", {"TRADE_OPENED": False}, format="json")
    assert switches.status_code == 200
    assert switches.json()["TRADE_OPENED"] is False and switches.json()["TRADE_CLOSED"] is True
    assert EventSwitch.objects.get(user=alice, event="TRADE_OPENED").enabled is False
    refused = api.put("/api/v1/notification-switches/", {"TRADE_CLOSED": 0}, format="json")
    assert refused.status_code == 400 and "TRADE_CLOSED" in refused.json()


def test_another_users_channel_and_delivery_are_404s(alice, charlie):
    channel = add_channel(alice, kind="EMAIL")
    delivery = send_test_message(channel).deliveries.get()
    api = client_of(charlie)
    assert api.get(f"{CHANNELS}{channel.pk}/").status_code == 404
    assert api.post(f"{CHANNELS}{channel.pk}/test/").status_code == 404
    assert api.delete(f"{CHANNELS}{channel.pk}/").status_code == 404
    assert api.get(f"/api/v1/notification-deliveries/{delivery.pk}/").status_code == 404
    assert api.get(CHANNELS).json() == []
    assert Channel.objects.filter(pk=channel.pk).exists()
    assert Delivery.objects.count() == 1
