"""Backtests through the API: created with the web form's rules (400 with each field and its reason, the
plan's caps in words), run by the task, read back with the report; another user's is a 404."""

import pytest

from automation.models import Backtest
from tests.factories import import_eurusd

from .conftest import client_of

BODY = {"market": "sample|EUR/USD|1h", "start_day": "2017-10-02", "end_day": "2017-10-04"}


def test_a_backtest_is_created_run_and_read_back_with_its_report(
    api, alice, charlie, eager_tasks, django_capture_on_commit_callbacks
):
    import_eurusd()
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/v1/backtests/", {**BODY, "risk_per_trade_pct": "0.5"}, format="json")

    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["exchange"], body["symbol"], body["timeframe"], body["status"]) == (
        "sample", "EUR/USD", "1h", "QUEUED",
    )  # fmt: skip
    assert (body["start"], body["end"], body["risk_per_trade_pct"]) == (
        "2017-10-02T00:00:00Z", "2017-10-05T00:00:00Z", "0.50",
    )  # fmt: skip
    assert "market" not in body and "report" not in body

    detail = api.get(f"/api/v1/backtests/{body['id']}/").json()
    backtest = Backtest.objects.get(owner=alice)
    assert detail["status"] == "DONE" and detail["cycles_done"] == detail["cycles_total"] > 50
    assert detail["report"] == backtest.report and detail["report"]["market"] == "sample EUR/USD 1h"
    listed = api.get("/api/v1/backtests/").json()["results"]
    assert [row["id"] for row in listed] == [body["id"]] and "report" not in listed[0]

    theirs = client_of(charlie)
    assert theirs.get(f"/api/v1/backtests/{body['id']}/").status_code == 404
    assert theirs.get("/api/v1/backtests/").json()["results"] == []


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"market": "kraken|BTC/USD|1h"}, "market", "not one of the available choices"),
        ({"market": None}, "market", "may not be null"),
        ({"end_day": "2017-10-01"}, "end_day", "The range ends before it starts."),
        ({"start_day": "2017-13-01"}, "start_day", "Date has wrong format"),
        ({"max_open_trades": 99}, "max_open_trades", "less than or equal to 20"),
    ],
)
def test_a_bad_backtest_is_a_400_naming_the_field(api, changes, field, words):
    import_eurusd()
    response = api.post("/api/v1/backtests/", {**BODY, **changes}, format="json")

    assert response.status_code == 400
    assert any(words in message for message in response.json()[field]), response.json()
    assert not Backtest.objects.exists()


def test_a_second_backtest_while_one_is_queued_is_refused_in_words(api, django_capture_on_commit_callbacks):
    import_eurusd()
    with django_capture_on_commit_callbacks(execute=True):  # sent to the broker; no worker runs it here
        assert api.post("/api/v1/backtests/", BODY, format="json").status_code == 201
        second = api.post("/api/v1/backtests/", BODY, format="json")

    assert second.status_code == 400
    assert second.json() == {
        "non_field_errors": [
            "Your backtest of sample EUR/USD, 1 hour is still queued and your plan runs 1 at a time: wait "
            "for it to finish, then start this one."
        ]
    }
    assert Backtest.objects.count() == 1
