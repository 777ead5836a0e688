"""Exchange keys' permissions (issue 15): where the exchange reports them (Binance's
GET /sapi/v1/account/apiRestrictions, through ccxt, against the Binance stand-in), a key that can withdraw
is refused, one without an IP restriction is taken with a warning; an exchange that cannot tell (not
Binance, or the endpoint failing) is taken with a note. No message holds the key or the secret."""

import pytest
from django.urls import reverse

from accounts.models import ExchangeAccount
from tests.stand_ins.exchange_server import API_RESTRICTIONS

API_KEY = "AKIA-perm-check-0123456789"
SECRET = "perm-SECRET-never-shown-7c6b5a"
WITHDRAWING = "This key can withdraw funds; create a key without withdrawal permission."


def body(exchange="binance", label="main") -> dict:
    return {"label": label, "exchange": exchange, "api_key": API_KEY, "secret": SECRET}


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert API_KEY not in text and SECRET not in text


def test_a_key_that_can_withdraw_is_refused_on_the_page_and_in_the_api(alice_client, api, exchange_stand_in):
    exchange_stand_in.restrictions["enableWithdrawals"] = True

    page = alice_client.post(reverse("exchange_accounts"), body())
    assert page.status_code == 200
    assert page.context["form"].errors["api_key"] == [WITHDRAWING]
    response = api.post("/api/v1/exchange-accounts/", body())
    assert response.status_code == 400
    assert response.json() == {"api_key": [WITHDRAWING]}

    assert not ExchangeAccount.objects.exists()
    # The exchange was asked, with the key, each time.
    assert len(exchange_stand_in.requests_to(API_RESTRICTIONS)) == 2
    assert_no_secret(page.content.decode(), response.content.decode())


def test_a_key_without_an_ip_restriction_is_accepted_with_a_warning(alice_client, api, exchange_stand_in):
    exchange_stand_in.restrictions["ipRestrict"] = False

    page = alice_client.post(reverse("exchange_accounts"), body(), follow=True)
    shown = page.content.decode()
    assert "saved" in shown and "This key has no IP restriction" in shown
    response = api.post("/api/v1/exchange-accounts/", body(label="second"))
    assert response.status_code == 201
    assert response.json()["key_note"].startswith("This key has no IP restriction")
    assert ExchangeAccount.objects.get(label="main").key_note.startswith("This key has no IP restriction")
    assert_no_secret(shown, response.content.decode())


def test_a_key_as_it_should_be_is_accepted_without_a_note(api, exchange_stand_in):
    response = api.post("/api/v1/exchange-accounts/", body())
    assert response.status_code == 201
    assert response.json()["key_note"] == ""


@pytest.mark.parametrize(
    ("script", "note"),
    [
        ((500, '{"code": -1000, "msg": "An unknown error occurred."}'), "could not ask binance"),
        # An error body that echoes the key and the secret: masked.
        (
            (400, {"code": -1022, "msg": f"Signature invalid for {API_KEY} / {SECRET}"}),
            "could not ask binance",
        ),
        ((200, ["not", "the", "restrictions"]), "binance answered without the key's permissions"),
    ],
)
def test_a_failing_endpoint_is_accepted_with_a_note(alice_client, api, exchange_stand_in, script, note):
    exchange_stand_in.fail_next(API_RESTRICTIONS, *script)
    response = api.post("/api/v1/exchange-accounts/", body())
    assert response.status_code == 201
    said = response.json()["key_note"]
    assert said.startswith("The key's permissions could not be checked (") and note in said
    assert said.endswith("Make sure it cannot withdraw funds.")
    page = alice_client.get(reverse("exchange_accounts")).content.decode()
    assert_no_secret(said, response.content.decode(), page)


def test_an_exchange_that_does_not_tell_is_accepted_with_a_note(api):
    response = api.post("/api/v1/exchange-accounts/", body(exchange="kraken"))
    assert response.status_code == 201
    assert "kraken does not report what an API key may do" in response.json()["key_note"]


def test_the_page_says_which_permissions_to_give(alice_client):
    page = alice_client.get(reverse("exchange_accounts")).content.decode()
    assert "<strong>reading</strong> and <strong>spot trading</strong>" in page
    assert "<strong>never withdrawals</strong>" in page
    assert "Restrict it to this server's IP addresses" in page
