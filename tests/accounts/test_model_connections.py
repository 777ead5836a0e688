"""A user's model connections (Settings → Models, /api/v1/model-connections/): the key is stored encrypted,
never shown or returned, kept when an edit leaves it out, and sent only to the server it was given for; the
base URL is held to core/outbound.py's policy; another user's connection is a 404."""

import html

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection as db
from django.urls import reverse

from accounts.models import ModelConnection
from tests.api.conftest import client_of
from tests.factories import BotFactory

KEY = "sk-proj-alice-model-key-3e9d1c7b"
LOCAL = "http://127.0.0.1:11434/v1"


def add(client, **overrides):
    return client.post(
        reverse("model_connections"), {"label": "Mine", "base_url": LOCAL, "api_key": KEY, **overrides}
    )


def page(client, name, *args) -> str:
    return html.unescape(client.get(reverse(name, args=args)).content.decode())


def test_the_key_is_stored_encrypted_and_shown_only_as_set(alice_client, alice):
    assert add(alice_client).status_code == 302
    with db.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ModelConnection._meta.db_table}")  # noqa: S608 - our table
        [row] = cursor.fetchall()
    assert KEY not in " ".join(map(str, row))
    connection = ModelConnection.objects.get(owner=alice)
    assert connection.api_key() == KEY
    for name, args in (
        ("model_connections", ()),
        ("model_connection_edit", (connection.pk,)),
        ("settings", ()),
    ):
        shown = page(alice_client, name, *args)
        assert KEY not in shown
        assert f"••••{KEY[-4:]}" in shown  # set, with the hint its owner tells keys apart by


def test_an_edit_keeps_the_key_unless_given_a_new_one_or_told_to_remove_it(alice_client, alice):
    add(alice_client)
    connection = ModelConnection.objects.get(owner=alice)
    edit = reverse("model_connection_edit", args=[connection.pk])

    assert alice_client.post(edit, {"label": "Renamed", "base_url": LOCAL}).status_code == 302
    connection.refresh_from_db()
    assert (connection.label, connection.api_key()) == ("Renamed", KEY)

    # A new base URL without the key again: refused, so that a stolen session cannot send the key elsewhere.
    moved = alice_client.post(edit, {"label": "Renamed", "base_url": "http://127.0.0.1:9999/v1"})
    assert moved.status_code == 200 and "Enter the key again" in moved.context["form"].errors["api_key"][0]
    connection.refresh_from_db()
    assert connection.base_url == LOCAL
    assert (
        alice_client.post(
            edit,
            {"label": "Renamed", "base_url": "http://127.0.0.1:9999/v1", "api_key": "sk-new-key-0000000"},
        ).status_code
        == 302
    )
    connection.refresh_from_db()
    assert (connection.base_url, connection.api_key()) == ("http://127.0.0.1:9999/v1", "sk-new-key-0000000")

    alice_client.post(edit, {"label": "Renamed", "base_url": LOCAL, "remove_api_key": "on"})
    connection.refresh_from_db()
    assert (connection.base_url, connection.has_api_key) == (LOCAL, False)
    assert "not set" in page(alice_client, "model_connections")


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "not an address this server calls"),
        ("http://127.0.0.1:18999\\@api.openai.com/v1", "backslashes"),
        ("https://user:pw@127.0.0.1/v1", "user name or password"),
        ("gopher://127.0.0.1:6379/_", "must start with https://"),
    ],
)
def test_a_base_url_the_platform_will_not_call_is_a_form_error_and_an_api_400(
    alice_client, alice, base_url, reason
):
    response = add(alice_client, base_url=base_url)
    assert response.status_code == 200 and reason in response.context["form"].errors["base_url"][0]
    api = client_of(alice).post(
        "/api/v1/model-connections/", {"label": "x", "base_url": base_url}, format="json"
    )
    assert api.status_code == 400 and reason in api.json()["base_url"][0]
    assert not ModelConnection.objects.exists()


def test_a_server_on_a_private_network_needs_the_operators_consent(alice_client, settings):
    settings.ALLOW_PRIVATE_MODEL_SERVERS = False
    response = add(alice_client)
    assert "is on a private network" in response.context["form"].errors["base_url"][0]
    assert "servers on a private network are taken only where the operator allows them" in page(
        alice_client, "model_connections"
    )


def test_the_api_takes_the_key_and_never_returns_it(alice):
    api = client_of(alice)
    made = api.post("/api/v1/model-connections/", {"label": "Ollama", "base_url": LOCAL, "api_key": KEY})
    assert made.status_code == 201, made.json()
    body = made.json()
    assert (body["has_api_key"], body["masked_key"]) == (True, f"••••{KEY[-4:]}")
    assert "api_key" not in body and KEY not in str(body)
    url = f"/api/v1/model-connections/{body['id']}/"
    renamed = api.patch(url, {"label": "Ollama at home"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["has_api_key"] is True
    moved = api.patch(url, {"base_url": "http://127.0.0.1:9999/v1"}, format="json")
    assert moved.status_code == 400 and "Enter the key again" in moved.json()["api_key"][0]
    removed = api.patch(url, {"remove_api_key": True}, format="json")
    assert (removed.json()["has_api_key"], removed.json()["masked_key"]) == (False, "not set")
    assert KEY not in str(api.get("/api/v1/model-connections/").json())


def test_a_connection_a_bot_uses_cannot_be_deleted(alice, alice_client):
    add(alice_client)
    connection = ModelConnection.objects.get(owner=alice)
    BotFactory(owner=alice, analyst="OWN_MODEL", model_connection=connection, model_name="llava")
    response = alice_client.post(reverse("model_connection_delete", args=[connection.pk]), follow=True)
    assert "is used by a bot" in html.unescape(response.content.decode())
    assert client_of(alice).delete(f"/api/v1/model-connections/{connection.pk}/").status_code == 409
    assert ModelConnection.objects.filter(pk=connection.pk).exists()


def test_another_users_connection_is_a_404(alice, charlie, alice_client):
    theirs = ModelConnection.objects.create(owner=charlie, label="charlie's", base_url=LOCAL)
    assert alice_client.get(reverse("model_connection_edit", args=[theirs.pk])).status_code == 404
    assert alice_client.post(reverse("model_connection_delete", args=[theirs.pk])).status_code == 404
    api = client_of(alice)
    assert api.get(f"/api/v1/model-connections/{theirs.pk}/").status_code == 404
    assert api.patch(f"/api/v1/model-connections/{theirs.pk}/", {"label": "x"}).status_code == 404
    assert api.delete(f"/api/v1/model-connections/{theirs.pk}/").status_code == 404
    assert ModelConnection.objects.get(pk=theirs.pk).label == "charlie's"


def test_connections_are_capped_by_the_plan(alice, settings):
    settings.DEFAULT_MAX_MODEL_CONNECTIONS = 2
    api = client_of(alice)
    answers = [
        api.post("/api/v1/model-connections/", {"label": f"c{i}", "base_url": LOCAL}).status_code
        for i in range(4)
    ]
    assert answers == [201, 201, 400, 400]
    assert ModelConnection.objects.filter(owner=alice).count() == 2


def test_rotating_the_encryption_key_re_encrypts_connection_keys(alice_client, alice, settings):
    add(alice_client)
    old = settings.FIELD_ENCRYPTION_KEYS[0]
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), old]
    call_command("rotate_encryption_keys", stdout=open("/dev/null", "w"))  # noqa: SIM115
    settings.FIELD_ENCRYPTION_KEYS = settings.FIELD_ENCRYPTION_KEYS[:1]  # the old key gone: still readable
    assert ModelConnection.objects.get(owner=alice).api_key() == KEY
