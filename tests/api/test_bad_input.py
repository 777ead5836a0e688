"""Issue 15, finding 8: input a hostile client can send that was a 500 (as an HTML page) is a 400 naming
what is wrong, and a real server error under /api/ is JSON."""

import base64
from datetime import timedelta

import pytest
from django.test import RequestFactory

from automation.models import CycleRun
from core.api_parsers import MAX_DEPTH
from learning.models import AILearningData
from trades.models import Trade
from tradingai.urls import server_failed

# "p=garbage": a cursor that decodes, with a position that is no time (nor number).
TAMPERED = base64.b64encode(b"p=garbage").decode()
OUT_OF_RANGE = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]
# Every time filter of the API, on each endpoint that has one.
TIME_FILTERS = [
    ("sessions", "started_after"),
    ("sessions", "started_before"),
    ("runs", "slot_after"),
    ("runs", "slot_before"),
    ("analyses", "created_after"),
    ("analyses", "created_before"),
    ("trades", "created_after"),
    ("trades", "created_before"),
]
CURSOR_LISTS = [
    ("runs", {}),
    ("runs", {"ordering": "slot"}),
    ("sessions", {}),
    ("analyses", {}),
    ("analyses", {"ordering": "confidence_score"}),
    ("analyses", {"ordering": "-confidence_score"}),
    ("trades", {"ordering": "pnl"}),
    ("audit-events", {}),
    ("backtests", {}),
]


@pytest.fixture
def api_lenient(api):
    """The client gets the response a real client would (a 500 page), not the exception."""
    api.raise_request_exception = False
    return api


def assert_400_naming(response, field):
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/json"
    reasons = response.json()[field]
    assert reasons and all(isinstance(reason, str) and reason for reason in reasons)
    return reasons


@pytest.mark.parametrize(("endpoint", "params"), CURSOR_LISTS)
@pytest.mark.parametrize("cursor", [TAMPERED, "garbage", base64.b64encode(b"p=1e999").decode()])
def test_a_tampered_cursor_is_a_400_naming_the_cursor(api_lenient, objects, endpoint, params, cursor):
    reasons = assert_400_naming(
        api_lenient.get(f"/api/v1/{endpoint}/", {**params, "cursor": cursor}), "cursor"
    )
    assert "Invalid cursor" in reasons[0]


def test_a_cursor_time_without_an_offset_is_read_as_utc(api, objects):
    cursor = base64.b64encode(b"p=2024-01-01 00:00:01").decode()  # just after the one run's slot
    response = api.get("/api/v1/runs/", {"ordering": "-slot", "cursor": cursor})
    assert [row["id"] for row in response.json()["results"]] == [objects["runs"]]


def test_the_cursors_a_page_gives_still_work(api, alice, objects):
    run = CycleRun.objects.get()
    for hour in range(1, 4):
        copy = AILearningData.objects.get(pk=objects["analyses"])
        copy.pk, copy.cycle_run, copy.confidence_score = None, None, 60 + hour
        copy.save()
        CycleRun.objects.create(bot=run.bot, slot=run.slot + timedelta(hours=hour))
        Trade.objects.create(owner=alice, bot=run.bot, symbol="BTC/USDT", side="BUY", amount=1, price=1)
    for endpoint, ordering in [("runs", "slot"), ("analyses", "confidence_score"), ("trades", "created_at")]:
        seen, link = [], f"/api/v1/{endpoint}/?ordering={ordering}&page_size=1"
        while link:
            page = api.get(link).json()
            seen += [row["id"] for row in page["results"]]
            link = page["next"]
        assert len(seen) == len(set(seen)) == 4, endpoint
        back = api.get(api.get(f"/api/v1/{endpoint}/?ordering={ordering}&page_size=1").json()["next"]).json()
        assert api.get(back["previous"]).status_code == 200


@pytest.mark.parametrize("ordering", ["pnl", "-pnl"])
def test_trades_ordered_by_pnl_page_through_the_closed_ones(api, alice, objects, ordering):
    bot = CycleRun.objects.get().bot
    Trade.objects.filter(owner=alice).update(pnl=None)  # open: no P&L yet
    for pnl in (5, -3, 5, 0):
        Trade.objects.create(owner=alice, bot=bot, symbol="BTC/USDT", side="BUY", amount=1, price=1, pnl=pnl)
    seen, link = [], f"/api/v1/trades/?ordering={ordering}&page_size=1"
    while link:
        response = api.get(link)
        assert response.status_code == 200, response.json()
        seen += [float(row["pnl"]) for row in response.json()["results"]]
        link = response.json()["next"]
    assert seen == sorted([5.0, -3.0, 5.0, 0.0], reverse=ordering.startswith("-"))


@pytest.mark.parametrize(("endpoint", "field"), TIME_FILTERS)
@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_a_time_with_no_utc_equivalent_is_a_400_naming_the_filter(
    api_lenient, objects, endpoint, field, value
):
    reasons = assert_400_naming(api_lenient.get(f"/api/v1/{endpoint}/", {field: value}), field)
    assert "UTC" in reasons[0]


def test_the_extreme_times_utc_holds_still_filter(api, objects):
    assert len(api.get("/api/v1/runs/", {"slot_after": "0001-01-01T00:00:00-01:00"}).json()["results"]) == 1
    assert api.get("/api/v1/runs/", {"slot_after": "9999-12-31T23:59:59+01:00"}).json()["results"] == []


@pytest.mark.parametrize("levels", [100_000, MAX_DEPTH + 1])
def test_a_body_nested_too_deep_is_a_400(api_lenient, objects, levels):
    body = "[" * levels + "]" * levels
    response = api_lenient.generic(
        "PATCH", f"/api/v1/bots/{objects['bots']}/", body, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["detail"] == f"JSON parse error - nested deeper than {MAX_DEPTH} levels."


def test_a_body_within_the_depth_limit_is_read(api, objects):
    body = {"avoid_conditions": [{"field": "regime", "value": "UNKNOWN"}]}
    assert api.patch(f"/api/v1/bots/{objects['bots']}/policy/", body).status_code == 200


def test_a_server_error_under_the_api_is_json_and_an_html_page_elsewhere():
    api_error = server_failed(RequestFactory().get("/api/v1/bots/"))
    assert (api_error.status_code, api_error["Content-Type"]) == (500, "application/json")
    assert api_error.content == b'{"detail": "Server error."}'
    page_error = server_failed(RequestFactory().get("/bots/"))
    assert page_error.status_code == 500 and page_error["Content-Type"].startswith("text/html")
