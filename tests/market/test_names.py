"""Exchange and symbol names are normalised in one place (market.names) and every command, form, API field and
filter uses it: `Sample` and `eur/usd` find what `sample EUR/USD` stored."""

import io

import pytest
from django.core.management import call_command

from automation.models import Bot
from market.models import Candle
from market.names import normalise_exchange, normalise_market, normalise_symbol
from tests.api.conftest import API_KEY, SECRET, api, objects
from tests.factories import EURUSD_CSV

__all__ = ["api", "objects"]


def test_the_one_rule():
    assert normalise_market("  Sample ", " eur/usd\t") == ("sample", "EUR/USD")
    assert (normalise_exchange("BINANCE"), normalise_symbol("btc/usdt")) == ("binance", "BTC/USDT")


def test_replay_finds_candles_imported_under_another_capitalisation(db):
    call_command(
        "import_candles", str(EURUSD_CSV), "--exchange", "SAMPLE", "--symbol", " eur/usd ",
        "--timeframe", "1h", stdout=io.StringIO(),
    )  # fmt: skip
    assert Candle.objects.filter(exchange="sample", symbol="EUR/USD").count() == 5000

    out = io.StringIO()
    call_command(
        "replay", "--exchange", "Sample", "--symbol", "eur/usd", "--timeframe", "1h",
        "--from", "2017-10-02T00:00:00Z", "--to", "2017-10-02T02:00:00Z", stdout=out, stderr=io.StringIO(),
    )  # fmt: skip
    assert out.getvalue().startswith("Replay of sample EUR/USD 1h (technical): 3 cycles, 0 failed")


def test_the_api_stores_the_normal_names_and_its_filters_compare_them(api, objects):
    created = api.post(
        "/api/v1/bots/",
        {"name": "eth", "exchange": " Binance ", "symbol": "eth/usdt ", "timeframe": "1h"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert (created.json()["exchange"], created.json()["symbol"]) == ("binance", "ETH/USDT")
    assert Bot.objects.filter(exchange="binance", symbol="ETH/USDT").exists()

    bots = api.get("/api/v1/bots/", {"exchange": "BINANCE", "symbol": "eth/usdt"}).json()
    assert [b["name"] for b in bots] == ["eth"]
    for url in ("/api/v1/trades/", "/api/v1/analyses/"):
        assert [r["symbol"] for r in api.get(url, {"symbol": "btc/usdt"}).json()["results"]] == ["BTC/USDT"]
    assert api.get("/api/v1/insights/", {"symbol": "btc/usdt"}).json()["scope"]["symbol"] == "BTC/USDT"
    accounts = api.get("/api/v1/exchange-accounts/", {"exchange": "BINANCE"}).json()
    assert [a["id"] for a in accounts] == [objects["exchange-accounts"]]


@pytest.mark.parametrize("exchange", ["BINANCE", " binance"])
def test_an_exchange_account_is_stored_under_the_normal_name(api, exchange, exchange_stand_in):
    created = api.post(
        "/api/v1/exchange-accounts/",
        {"label": "main", "exchange": exchange, "api_key": API_KEY, "secret": SECRET},
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["exchange"] == "binance"
