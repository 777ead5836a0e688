import pytest

from notifications.forms import ChannelForm
from tests.stand_ins.notify_server import notify_stand_in

__all__ = ["notify_stand_in"]

TELEGRAM_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw9"
HMAC_KEY = "alice-webhook-signing-key-5f1c"


def add_channel(owner, **fields):
    """A channel made through the form, as the page and the API make it."""
    form = ChannelForm({"label": fields.pop("label", fields["kind"].lower()), **fields}, owner=owner)
    assert form.is_valid(), form.errors
    return form.save()


@pytest.fixture
def channels(alice, notify_stand_in):
    """One of each kind for alice, all pointing at the stand-in (e-mail at the locmem outbox)."""
    base = notify_stand_in.base_url
    return {
        "EMAIL": add_channel(alice, kind="EMAIL"),
        "SLACK": add_channel(alice, kind="SLACK", url=f"{base}/services/T000/B000/slack-secret-part"),
        "DISCORD": add_channel(alice, kind="DISCORD", url=f"{base}/api/webhooks/42/discord-secret-part"),
        "TELEGRAM": add_channel(alice, kind="TELEGRAM", token=TELEGRAM_TOKEN, target="-1001234567890"),
        "WEBHOOK": add_channel(alice, kind="WEBHOOK", url=f"{base}/hook?team=7", hmac_key=HMAC_KEY),
    }
