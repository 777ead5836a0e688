"""Issue 15, finding 5, the user's side: text the database cannot store (NUL; a lone UTF-16 surrogate, which
JSON can spell) sent as a bot's name, an exchange account's label (the API), or a token's name (its page) is
a 400 naming the field or a form error, never a 500 from PostgreSQL. (DRF's CharField refuses both by
default, Django's form fields NUL; a form body cannot carry a surrogate: Django decodes it as UTF-8 with
replacement.) Run on PostgreSQL (DATABASE_URL) to mean anything."""

import json

import pytest

from accounts.models import ApiToken
from automation.models import Bot

from .conftest import client_of

ODD = [pytest.param("bot\x00name", id="nul"), pytest.param("bot\ud800name", id="lone-surrogate")]


def post_json(api, url, body, method="post"):
    # ensure_ascii spells both as JSON escapes (\u0000, \ud800), which is how a client would send them.
    return getattr(api, method)(url, json.dumps(body), content_type="application/json")


@pytest.mark.parametrize("text", ODD)
def test_odd_text_in_api_fields_is_a_400_naming_the_field(alice, text):
    api = client_of(alice)
    bot = {"name": text, "exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h"}
    account = {"label": text, "exchange": "binance", "api_key": "k", "secret": "s"}
    cases = [("/api/v1/bots/", bot, "name"), ("/api/v1/exchange-accounts/", account, "label")]
    for url, body, field in cases:
        response = post_json(api, url, body)
        assert response.status_code == 400, (url, response.status_code)
        assert field in response.json(), (url, response.json())

    created = post_json(api, "/api/v1/bots/", {**bot, "name": "plain"})
    assert created.status_code == 201, created.json()
    response = post_json(api, f"/api/v1/bots/{created.json()['id']}/", {"name": text}, method="patch")
    assert (response.status_code, list(response.json())) == (400, ["name"])
    assert Bot.objects.get().name == "plain"


def test_a_nul_in_a_web_form_is_a_form_error(alice_client, alice):
    response = alice_client.post(
        "/bots/new/", {"name": "bot\x00name", "exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h"}
    )
    assert response.status_code == 200  # the form again, with its error
    assert "Null characters are not allowed" in response.content.decode()
    assert not Bot.objects.exists()

    response = alice_client.post("/accounts/api-tokens/", {"name": "token\x00name"})
    assert response.status_code == 200
    assert "Null characters are not allowed" in response.content.decode()
    assert not ApiToken.objects.filter(user=alice).exists()


def test_a_surrogate_cannot_reach_a_web_form(alice_client):
    # The UTF-8-like bytes of U+D800 (ED A0 80) are not UTF-8; Django reads them as replacement characters.
    response = alice_client.post(
        "/bots/new/",
        b"name=bot%ED%A0%80name&exchange=sample&symbol=EUR%2FUSD&timeframe=1h&analyst=TECHNICAL",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code in (200, 302)
    for name in Bot.objects.values_list("name", flat=True):
        assert "\ud800" not in name
