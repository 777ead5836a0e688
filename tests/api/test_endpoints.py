"""Every endpoint: no credentials → 401; another user's object → 404 and absent from lists; bad input → 400
naming the field; secrets never in a response."""

from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiToken
from automation.models import AutomationSession, CycleRun

from .conftest import API_KEY, SECRET, client_of

PASSPHRASE = "passphrase-never-shown"


LISTS = ["bots", "sessions", "runs", "analyses", "trades", "exchange-accounts", "tokens"]
DETAILS = ["bots", "sessions", "runs", "analyses", "trades", "exchange-accounts"]
OTHERS = ["insights", "recommendations", "kill-switch"]
ACTIONS = [("post", "start"), ("post", "stop"), ("post", "run-now"), ("get", "policy"), ("patch", "policy")]


def results(response) -> list:
    body = response.json()
    return body["results"] if isinstance(body, dict) else body


def test_without_credentials_every_endpoint_is_401(objects):
    anonymous = APIClient()
    urls = [f"/api/v1/{name}/" for name in LISTS + OTHERS]
    urls += [f"/api/v1/{name}/{objects[name]}/" for name in DETAILS]
    urls += [f"/api/v1/bots/{objects['bots']}/{action}/" for _, action in ACTIONS]
    urls.append(f"/api/v1/analyses/{objects['analyses']}/chart/")
    for url in urls:
        response = anonymous.get(url)
        assert response.status_code == 401, url
        assert response["WWW-Authenticate"] == "Token"


def test_a_wrong_or_revoked_token_is_401(api, alice, objects):
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Token tai_not-a-token")
    assert wrong.get("/api/v1/bots/").status_code == 401

    token, plain = ApiToken.issue(alice, "to revoke")
    mine = APIClient()
    mine.credentials(HTTP_AUTHORIZATION=f"Bearer {plain}")  # Bearer works too
    assert mine.get("/api/v1/bots/").status_code == 200
    assert api.delete(f"/api/v1/tokens/{token.pk}/").status_code == 204
    assert mine.get("/api/v1/bots/").status_code == 401


def test_another_users_objects_are_404_and_absent_from_lists(charlie_api, objects):
    for name in DETAILS:
        assert charlie_api.get(f"/api/v1/{name}/{objects[name]}/").status_code == 404, name
        assert results(charlie_api.get(f"/api/v1/{name}/")) == [], name
    bot = objects["bots"]
    for method, action in ACTIONS:
        assert getattr(charlie_api, method)(f"/api/v1/bots/{bot}/{action}/", {}).status_code == 404, action
    assert charlie_api.get(f"/api/v1/analyses/{objects['analyses']}/chart/").status_code == 404
    assert charlie_api.patch(f"/api/v1/bots/{bot}/", {"name": "mine now"}).status_code == 404
    assert charlie_api.delete(f"/api/v1/bots/{bot}/").status_code == 404
    assert charlie_api.delete(f"/api/v1/exchange-accounts/{objects['exchange-accounts']}/").status_code == 404
    alices_token, _ = ApiToken.issue(AutomationSession.objects.get().bot.owner, "hers")
    assert charlie_api.delete(f"/api/v1/tokens/{alices_token.pk}/").status_code == 404
    assert alices_token.pk not in {row["id"] for row in charlie_api.get("/api/v1/tokens/").json()}
    assert ApiToken.objects.filter(pk=alices_token.pk).exists()
    # Naming alice's bot in a filter or a scope is an invalid choice, not a way to read her data.
    for url in (
        "/api/v1/trades/",
        "/api/v1/analyses/",
        "/api/v1/runs/",
        "/api/v1/sessions/",
        "/api/v1/insights/",
    ):
        response = charlie_api.get(url, {"bot": bot})
        assert response.status_code == 400, url
        assert "bot" in response.json()


def test_alice_sees_her_objects(api, objects):
    for name in DETAILS:
        assert api.get(f"/api/v1/{name}/{objects[name]}/").status_code == 200, name
        assert [row["id"] for row in results(api.get(f"/api/v1/{name}/"))] == [objects[name]], name
    analysis = api.get(f"/api/v1/analyses/{objects['analyses']}/").json()
    assert (analysis["trade"], analysis["prompt_version"]) == (objects["trades"], None)
    assert analysis["chart_url"].endswith(f"/api/v1/analyses/{objects['analyses']}/chart/")
    chart = api.get(analysis["chart_url"])
    assert (chart.status_code, chart["Content-Type"]) == (200, "image/png")
    assert b"".join(chart.streaming_content).startswith(b"\x89PNG")


def test_secrets_are_never_in_a_response(api, objects):
    created = api.post(
        "/api/v1/exchange-accounts/",
        {
            "label": "second",
            "exchange": "kraken",
            "api_key": API_KEY + "X",
            "secret": SECRET,
            "password": PASSPHRASE,
        },
    )
    assert created.status_code == 201, created.json()
    assert set(created.json()) == {
        "id",
        "label",
        "exchange",
        "sandbox",
        "masked_key",
        "key_note",
        "created_at",
        "updated_at",
    }
    bodies = [created.content]
    for name in LISTS:
        bodies.append(api.get(f"/api/v1/{name}/").content)
    for name in DETAILS:
        bodies.append(api.get(f"/api/v1/{name}/{objects[name]}/").content)
    for body in bodies:
        for secret in (API_KEY, SECRET, PASSPHRASE):
            assert secret.encode() not in body


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        (
            "/api/v1/bots/",
            {"name": "x", "exchange": "nowhere", "symbol": "BTC/USDT", "timeframe": "1h"},
            "exchange",
        ),
        (
            "/api/v1/bots/",
            {"name": "x", "exchange": "binance", "symbol": "btc usdt", "timeframe": "1h"},
            "symbol",
        ),
        (
            "/api/v1/bots/",
            {"name": "x", "exchange": "binance", "symbol": "BTC/USDT", "timeframe": "7m"},
            "timeframe",
        ),
        ("/api/v1/bots/", {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h"}, "name"),
        (
            "/api/v1/bots/",
            {
                "name": "x",
                "exchange": "binance",
                "symbol": "BTC/USDT",
                "timeframe": "1h",
                "min_confidence": 150,
            },
            "min_confidence",
        ),
        ("/api/v1/bots/", {"name": "x", "exchange": "binance", "symbol": "BTC/USDT", "mode": "LIVE"}, "mode"),
        (
            "/api/v1/exchange-accounts/",
            {"label": "y", "exchange": "nowhere", "api_key": "k", "secret": "s"},
            "exchange",
        ),
        ("/api/v1/exchange-accounts/", {"label": "y", "exchange": "binance", "api_key": "k"}, "secret"),
        ("/api/v1/auth/token/", {"email": "alice@example.com", "password": "wrong"}, "password"),
        ("/api/v1/auth/token/", {"email": "not an email", "password": "x"}, "email"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, objects, url, body, field):
    response = api.post(url, body)
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert all(isinstance(reason, str) and reason for reason in response.json()[field])


def test_bad_input_on_policy_kill_switch_insights_and_filters(api, objects):
    bot = objects["bots"]
    assert "min_confidence" in api.patch(f"/api/v1/bots/{bot}/policy/", {"min_confidence": 101}).json()
    assert (
        "avoid_conditions"
        in api.patch(
            f"/api/v1/bots/{bot}/policy/", {"avoid_conditions": [{"field": "moon", "value": "x"}]}
        ).json()
    )
    assert api.put("/api/v1/kill-switch/", {"engaged": "maybe"}).status_code == 400
    assert "bot" in api.get("/api/v1/insights/", {"bot": "x"}).json()
    assert "created_after" in api.get("/api/v1/trades/", {"created_after": "yesterday"}).json()
    assert "cursor" in api.get("/api/v1/trades/", {"cursor": "garbage"}).json()  # 400, DRF's was a 404


def test_a_running_bots_market_cannot_change_and_a_refused_action_is_409(api, objects):
    bot = objects["bots"]
    assert api.post(f"/api/v1/bots/{bot}/stop/").status_code == 409  # not running
    response = api.post(f"/api/v1/bots/{bot}/run-now/")
    assert response.status_code == 409
    assert "Start" in response.json()["detail"]


def test_the_kill_switch(api, alice):
    assert api.get("/api/v1/kill-switch/").json() == {"engaged": False, "global_engaged": False}
    assert api.put("/api/v1/kill-switch/", {"engaged": True}).json()["engaged"] is True
    alice.refresh_from_db()
    assert alice.trading_halted


def test_tokens_are_issued_once_and_listed_by_hint_only(alice):
    alice.set_password("a long enough password")
    alice.save()
    anonymous = APIClient()
    issued = anonymous.post(
        "/api/v1/auth/token/", {"email": alice.email, "password": "a long enough password"}
    )
    assert issued.status_code == 201
    plain = issued.json()["token"]
    assert plain.startswith("tai_") and len(plain) > 40
    assert ApiToken.objects.get(user=alice).key_hash != plain  # only its hash is stored
    listed = client_of(alice).get("/api/v1/tokens/").json()
    assert all(row["token"] is None for row in listed)
    assert plain[4:12] in {row["hint"] for row in listed}


def test_lists_are_cursor_paginated(api, alice, objects):
    bot = AutomationSession.objects.get().bot
    CycleRun.objects.bulk_create(
        CycleRun(bot=bot, slot=datetime(2024, 2, 1, hour, tzinfo=UTC)) for hour in range(0, 24)
    )
    first = api.get("/api/v1/runs/", {"page_size": 10}).json()
    assert len(first["results"]) == 10 and first["next"] and first["previous"] is None
    second = api.get(first["next"]).json()
    assert not {r["id"] for r in first["results"]} & {r["id"] for r in second["results"]}


def test_a_running_run_says_which_step_it_is_in(api, objects):
    bot = AutomationSession.objects.get().bot
    slot = datetime(2024, 3, 1, tzinfo=UTC)
    run = CycleRun.objects.create(bot=bot, slot=slot, status=CycleRun.Status.RUNNING, step="analysis")
    found = api.get(f"/api/v1/runs/{run.pk}/").json()
    assert (found["status"], found["step"], found["failed_step"]) == ("RUNNING", "analysis", "")


def test_token_requests_are_throttled(alice, settings):
    from django.core.cache import cache

    cache.clear()
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "login": "3/hour"},
    }
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    anonymous = APIClient()
    codes = [
        anonymous.post("/api/v1/auth/token/", {"email": alice.email, "password": "x"}).status_code
        for _ in range(4)
    ]
    assert codes == [400, 400, 400, 429]
    cache.clear()


def test_tokens_are_created_and_revoked_in_the_browser(alice_client, alice, charlie):
    page = alice_client.post("/accounts/api-tokens/", {"name": "cron job"})
    assert page.status_code == 200
    plain = page.context["issued"]
    assert plain in page.content.decode()
    token = ApiToken.objects.get(user=alice)
    assert (token.name, token.key_hash) == ("cron job", ApiToken.digest(plain))
    assert client_of_plain(plain).get("/api/v1/bots/").status_code == 200
    # Shown once: the list afterwards has the hint only.
    listing = alice_client.get("/accounts/api-tokens/").content.decode()
    assert plain not in listing and f"tai_{token.hint}…" in listing

    assert alice_client.post(f"/accounts/api-tokens/{token.pk}/revoke/").status_code == 302
    assert client_of_plain(plain).get("/api/v1/bots/").status_code == 401
    charlies, _ = ApiToken.issue(charlie, "his")
    assert alice_client.post(f"/accounts/api-tokens/{charlies.pk}/revoke/").status_code == 404
    assert "name" in alice_client.post("/accounts/api-tokens/", {"name": ""}).context["form"].errors


def client_of_plain(plain: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {plain}")
    return client


def test_a_time_filter_with_any_offset_python_reads_is_compared_in_utc(api, objects):
    # +16:00 is beyond what PostgreSQL takes (±15:59): it must reach the database as UTC, not as a 500.
    response = api.get("/api/v1/trades/", {"created_after": "2024-01-01T00:00:00+16:00"})
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [objects["trades"]]


def test_bodies_are_json_only(api, objects):
    # A form cannot say "engaged" is missing: it would read as false and switch the kill switch off.
    assert api.put("/api/v1/kill-switch/", {}, format="multipart").status_code == 415
    assert "engaged" in api.put("/api/v1/kill-switch/", {}).json()


def test_errors_under_the_api_are_json(api, objects):
    unmatched = api.get("/api/v1/bots/0.5/policy/")
    assert (unmatched.status_code, unmatched["Content-Type"]) == (404, "application/json")
    missing_chart = api.get("/api/v1/analyses/0/chart/", HTTP_ACCEPT="image/png")
    assert (missing_chart.status_code, missing_chart["Content-Type"]) == (404, "application/json")
    assert api.put("/api/v1/kill-switch/", {"engaged": 0}).status_code == 400  # true or false only


def test_the_api_root_lists_every_resource(alice):
    client = APIClient()
    client.force_authenticate(alice)
    listed = client.get("/api/v1/").json()
    for key in (
        "bots", "sessions", "runs", "analyses", "trades", "exchange-accounts", "tokens", "audit-events",
        "insights", "recommendations", "kill-switch", "auth-token", "schema", "docs",
    ):  # fmt: skip
        assert key in listed, key
        assert client.get(listed[key]).status_code in (200, 405), listed[key]  # the token URL takes a POST
    assert listed["insights"] == "http://testserver/api/v1/insights/"
