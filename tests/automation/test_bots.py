from datetime import UTC, datetime

import pytest
from django.urls import reverse

from automation.models import Bot
from market.importers import Bar, store_bars
from tests.api.conftest import client_of
from tests.factories import BotFactory, ExchangeAccountFactory

VALID = {
    "name": "My BTC bot",
    "exchange": "binance",
    "symbol": "btc/usdt",
    "timeframe": "1h",
    "mode": "SIMULATION",
    "analyst": "TECHNICAL",
    "chart_source": "RENDERED",
    "starting_balance": "10000",
    "risk_per_trade_pct": "1",
    "max_position_pct": "25",
    "max_open_trades": "1",
    "daily_loss_limit_pct": "5",
    "min_confidence": "70",
}


def post_bot(client, **overrides):
    return client.post(reverse("bot_create"), {**VALID, **overrides})


def errors(response):
    assert response.status_code == 200, "the form should be shown again with its errors"
    return response.context["form"].errors


def test_create_a_simulation_bot_and_see_it_on_the_dashboard(alice_client, alice):
    response = post_bot(alice_client)
    bot = Bot.objects.get()
    assert response.status_code == 302
    assert response["Location"] == bot.get_absolute_url()
    assert (bot.owner, bot.symbol, bot.mode, bot.status) == (alice, "BTC/USDT", "SIMULATION", "STOPPED")
    assert "My BTC bot" in alice_client.get(reverse("dashboard")).content.decode()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("symbol", "BTCUSDT", "BASE/QUOTE"),
        ("symbol", "BTC/USDT/EUR", "BASE/QUOTE"),
        ("symbol", "", "required"),
        ("timeframe", "5m", "not one of the available choices"),
        ("mode", "YOLO", "not one of the available choices"),
        ("exchange", "nowhere", "not an exchange TradingAI can connect to"),
        ("risk_per_trade_pct", "50", "less than or equal to 10"),
        ("min_confidence", "101", "less than or equal to 100"),
        ("max_open_trades", "0", "greater than or equal to 1"),
        ("starting_balance", "abc", "Enter a number"),
        ("name", "", "required"),
    ],
)
def test_bot_form_reports_each_bad_field(alice_client, field, value, message):
    form_errors = errors(post_bot(alice_client, **{field: value}))
    assert message in " ".join(form_errors[field])
    assert not Bot.objects.exists()


def test_bot_names_are_unique_per_owner_only(alice_client, charlie):
    BotFactory(owner=charlie, name="My BTC bot")
    assert post_bot(alice_client).status_code == 302
    assert "already have a bot with this name" in errors(post_bot(alice_client))["name"][0]


def test_tradingview_chart_needs_a_tradingview_url(alice_client):
    assert (
        "Give the TradingView chart URL"
        in errors(post_bot(alice_client, chart_source="TRADINGVIEW"))["tradingview_url"][0]
    )
    bad = post_bot(alice_client, chart_source="TRADINGVIEW", tradingview_url="https://evil.example.com/chart")
    assert "tradingview.com" in errors(bad)["tradingview_url"][0]
    ok = post_bot(
        alice_client, chart_source="TRADINGVIEW", tradingview_url="https://www.tradingview.com/chart/x/"
    )
    assert ok.status_code == 302


def test_live_bot_without_an_exchange_account_is_refused_with_a_clear_message(alice_client, settings):
    settings.LIVE_TRADING_ENABLED = True
    form_errors = errors(post_bot(alice_client, mode="LIVE", live_confirmed="on"))
    assert form_errors["exchange_account"] == [
        "A live bot needs an exchange account of yours; add one first."
    ]
    assert not Bot.objects.exists()


def test_live_bot_cannot_use_another_users_exchange_account(alice_client, charlie, settings):
    settings.LIVE_TRADING_ENABLED = True
    charlies = ExchangeAccountFactory(owner=charlie, exchange="binance")
    form_errors = errors(
        post_bot(alice_client, mode="LIVE", live_confirmed="on", exchange_account=charlies.pk)
    )
    assert "Select a valid choice" in form_errors["exchange_account"][0]


def test_live_bot_with_own_account_needs_confirmation_and_a_matching_exchange(
    alice_client, alice_account, alice_two_factor, settings
):
    settings.LIVE_TRADING_ENABLED = True
    live = {"mode": "LIVE", "exchange_account": alice_account.pk}
    assert "Confirm" in errors(post_bot(alice_client, **live))["live_confirmed"][0]
    assert (
        "is for binance, not kraken"
        in errors(post_bot(alice_client, **live, live_confirmed="on", exchange="kraken"))["exchange_account"][
            0
        ]
    )
    assert post_bot(alice_client, **live, live_confirmed="on").status_code == 302
    bot = Bot.objects.get()
    assert (bot.mode, bot.exchange_account, bot.live_confirmed) == ("LIVE", alice_account, True)


def test_live_trading_disabled_by_the_operator_is_said_so(
    alice_client, alice_account, alice_two_factor, settings
):
    settings.LIVE_TRADING_ENABLED = False
    response = post_bot(alice_client, mode="LIVE", live_confirmed="on", exchange_account=alice_account.pk)
    assert errors(response)["mode"] == ["Live trading is disabled on this server; use simulation."]


def test_a_stored_candle_market_can_be_paper_traded_but_not_traded_live(
    alice_client, alice_account, settings
):
    settings.LIVE_TRADING_ENABLED = True
    store_bars(
        "sample",
        "EUR/USD",
        "1h",
        [Bar(open_time=datetime(2024, 1, 1, tzinfo=UTC), open=1, high=1.1, low=0.9, close=1, volume=5)],
    )
    paper = {"exchange": "sample", "symbol": "EUR/USD"}
    assert "not an exchange" in errors(post_bot(alice_client, **paper, timeframe="4h"))["exchange"][0]
    live = {**paper, "mode": "LIVE", "live_confirmed": "on", "exchange_account": alice_account.pk}
    assert "not an exchange" in errors(post_bot(alice_client, **live))["exchange"][0]
    assert post_bot(alice_client, **paper).status_code == 302


def test_another_users_bot_is_a_404_everywhere(client, alice_bot, charlie):
    client.force_login(charlie)
    assert client.get(reverse("bot_detail", args=[alice_bot.pk])).status_code == 404
    assert client.get(reverse("bot_edit", args=[alice_bot.pk])).status_code == 404
    assert (
        client.post(reverse("bot_edit", args=[alice_bot.pk]), {**VALID, "name": "stolen"}).status_code == 404
    )
    alice_bot.refresh_from_db()
    assert alice_bot.name == "Alice's BTC bot"
    assert "Alice" not in client.get(reverse("dashboard")).content.decode()


def test_edit_keeps_the_owner_and_saves_changes(alice_client, alice_bot, alice):
    response = alice_client.post(reverse("bot_edit", args=[alice_bot.pk]), {**VALID, "name": "Renamed"})
    assert response.status_code == 302
    alice_bot.refresh_from_db()
    assert (alice_bot.name, alice_bot.owner) == ("Renamed", alice)


def test_a_running_bots_market_cannot_change_but_its_risk_settings_can(alice_client, alice_bot):
    Bot.objects.filter(pk=alice_bot.pk).update(status=Bot.Status.RUNNING)
    url = reverse("bot_edit", args=[alice_bot.pk])
    same_market = {**VALID, "exchange": "binance", "symbol": "BTC/USDT"}
    response = alice_client.post(url, {**same_market, "symbol": "ETH/USDT"})
    assert "Stop the bot before changing symbol" in errors(response)["__all__"][0]
    assert alice_client.post(url, {**same_market, "min_confidence": "80"}).status_code == 302
    alice_bot.refresh_from_db()
    assert (alice_bot.symbol, alice_bot.min_confidence) == ("BTC/USDT", 80)


def test_bot_pages_render_for_the_owner(alice_client, alice_bot):
    for name in ("bot_detail", "bot_edit"):
        response = alice_client.get(reverse(name, args=[alice_bot.pk]))
        assert response.status_code == 200
        assert "Alice&#x27;s BTC bot" in response.content.decode()
    assert "You have no bots yet" not in alice_client.get(reverse("dashboard")).content.decode()


def test_empty_dashboard_says_what_to_do(alice_client):
    assert "Create your first bot" in alice_client.get(reverse("dashboard")).content.decode()


# Issue 15, finding 1: urlparse read tradingview.com in these; Chromium opens the address before the `\`.
SSRF_URLS = [
    "http://127.0.0.1:18999\\@www.tradingview.com/internal-admin",
    "https://127.0.0.1:18999\\@www.tradingview.com/internal-admin",
    "http://169.254.169.254\\@www.tradingview.com/latest/meta-data/",
    "https://www.tradingview.com@127.0.0.1/chart/",
    "https://www.tradingview.com:8443/chart/",
    "http://www.tradingview.com/chart/",
]


@pytest.mark.parametrize("url", SSRF_URLS)
def test_a_url_the_browser_would_read_as_another_host_is_refused_by_the_form(alice_client, url):
    bad = post_bot(alice_client, chart_source="TRADINGVIEW", tradingview_url=url)
    assert errors(bad)["tradingview_url"]
    # Refused whatever the chart source, so it cannot be stored now and switched on later.
    assert errors(post_bot(alice_client, tradingview_url=url))["tradingview_url"]
    assert not Bot.objects.exists()


@pytest.mark.parametrize("url", SSRF_URLS)
def test_a_url_the_browser_would_read_as_another_host_is_a_400_in_the_api(alice, url):
    bot = BotFactory(owner=alice, chart_source="RENDERED")
    response = client_of(alice).patch(
        f"/api/v1/bots/{bot.pk}/", {"chart_source": "TRADINGVIEW", "tradingview_url": url}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["tradingview_url"]
    bot.refresh_from_db()
    assert (bot.chart_source, bot.tradingview_url) == ("RENDERED", "")
