"""How the pages write things: prices at the market's precision, amounts to a hundredth of the quote
currency, timeframes and labels in words, one date format in the user's time zone, analyses by slot, the
exchange from a list, and the pages that explain (the first-visit card, the policy's help page)."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from automation.models import Bot, CycleRun
from learning.models import AILearningData
from market import precision
from market.importers import Bar, store_bars
from market.timeframes import timeframe_name
from tests.factories import BotFactory
from trades.models import Trade


@pytest.fixture(autouse=True)
def _forget_precision():
    precision._known.clear()
    yield
    precision._known.clear()


def stored(exchange, symbol, *closes):
    bars = [
        Bar(datetime(2024, 1, 1, i, tzinfo=UTC), close, close, close, close, 1.0)
        for i, close in enumerate(closes)
    ]
    store_bars(exchange=exchange, symbol=symbol, timeframe="1h", bars=bars)


def test_prices_take_the_decimals_the_market_is_quoted_in_and_amounts_a_hundredth_of_its_quote(db):
    stored("sample", "EUR/USD", 1.2214, 1.22146, 1.2)
    stored("binance", "BTC/USDT", 64250.5, 64251.0)
    assert precision.format_price(Decimal("1.221468960000"), "sample", "EUR/USD") == "1.22147"
    assert precision.format_price(Decimal("64250.12345"), "binance", "BTC/USDT") == "64,250.1"
    # The trade: 2041.824448720000 EUR at 1.22: a thousandth of a euro is worth 0.12 cent.
    assert precision.format_amount(Decimal("2041.824448720000"), Decimal("1.221468960000")) == "2,041.824"
    assert precision.format_amount(Decimal("0.0123456789"), Decimal("64250.5")) == "0.0123457"
    # No candles stored yet: six significant digits, at most eight decimals.
    assert precision.format_price(Decimal("0.000123456789"), "kraken", "SHIB/EUR") == "0.00012346"


def test_a_trade_is_written_at_its_markets_precision(alice):
    stored("sample", "EUR/USD", 1.22146)
    bot = BotFactory(owner=alice, exchange="sample", symbol="EUR/USD")
    trade = Trade.objects.create(
        owner=alice, bot=bot, symbol="EUR/USD", side="SELL",
        amount=Decimal("2041.824448720000"), price=Decimal("1.221468960000"),
    )  # fmt: skip
    assert str(trade) == "SELL 2,041.824 EUR/USD at 1.22147"


def test_timeframes_in_words(alice_client):
    assert [timeframe_name(t) for t in ("15m", "1h", "4h", "1d")] == [
        "15 minutes",
        "1 hour",
        "4 hours",
        "1 day",
    ]
    page = alice_client.get("/bots/new/").content.decode()
    assert '<option value="15m">15 minutes</option>' in page
    assert "Risk per trade (% of equity)" in page and "Risk per trade pct" not in page


def test_the_exchange_is_chosen_from_a_list_and_live_fields_name_their_condition(alice_client, db):
    stored("sample", "EUR/USD", 1.1)
    page = alice_client.get("/bots/new/").content.decode()
    assert '<select name="exchange"' in page
    assert '<option value="sample">sample (stored candles, paper trading)</option>' in page
    assert '<option value="binance">binance</option>' in page
    assert page.count('data-show-when="mode=LIVE"') == 2  # the account and the confirmation
    assert 'data-show-when="mode=SIMULATION"' in page and 'src="/static/js/bot_form.js"' in page
    # The list is a help, not the rule: a name that is no exchange gets the same words as from the API.
    form = {"name": "x", "exchange": "nowhere", "symbol": "BTC/USDT", "timeframe": "1h", "mode": "SIMULATION"}
    refused = alice_client.post("/bots/new/", form)
    assert "is not an exchange TradingAI can connect to" in refused.content.decode()


def test_analyses_are_listed_by_their_slot_not_by_when_their_row_was_written(alice_client, alice):
    bot = BotFactory(owner=alice, exchange="sample", symbol="EUR/USD", status=Bot.Status.RUNNING)
    slots = [datetime(2017, 10, 2, h, tzinfo=UTC) for h in (9, 7, 8)]  # written out of order, as a replay may
    for slot in slots:
        run = CycleRun.objects.create(bot=bot, slot=slot, status=CycleRun.Status.SUCCEEDED)
        AILearningData.objects.create(
            user=alice, bot=bot, cycle_run=run, symbol="EUR/USD", timeframe="1h", recommendation="BUY",
            confidence_score=60, analysis_data={}, market_conditions={},
        )  # fmt: skip
    page = alice_client.get("/analyses/")
    listed = [a.cycle_run.slot.hour for a in page.context["page"].object_list]
    assert listed == [9, 8, 7]
    text = page.content.decode()
    assert "<th>Slot</th>" in text and "2017-10-02 09:00" in text and "EUR/USD, 1 hour" in text


def test_times_are_shown_in_the_users_time_zone(alice_client, alice):
    bot = BotFactory(owner=alice, exchange="sample", symbol="EUR/USD")
    CycleRun.objects.create(
        bot=bot, slot=datetime(2017, 10, 2, 9, tzinfo=UTC), status=CycleRun.Status.SUCCEEDED
    )
    assert "2017-10-02 09:00" in alice_client.get(bot.get_absolute_url()).content.decode()
    saved = alice_client.post("/accounts/settings/", {"time_zone": "Asia/Tokyo"}, follow=True)
    assert "Times are now shown in Asia/Tokyo" in saved.content.decode()
    page = alice_client.get(bot.get_absolute_url()).content.decode()
    assert "2017-10-02 18:00" in page and "Times are in Asia/Tokyo" in page
    refused = alice_client.post("/accounts/settings/", {"time_zone": "Mars/Olympus"})
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    alice.refresh_from_db()
    assert alice.time_zone == "Asia/Tokyo"


def test_the_first_visit_card_goes_once_dismissed_and_the_policy_has_a_help_page(alice_client, alice):
    BotFactory(owner=alice)
    assert "Welcome to TradingAI" in alice_client.get("/").content.decode()
    assert alice_client.get("/accounts/intro/dismiss/").status_code == 405  # a POST only
    alice_client.post("/accounts/intro/dismiss/")
    assert "Welcome to TradingAI" not in alice_client.get("/").content.decode()
    bot_page = alice_client.get(Bot.objects.get(owner=alice).get_absolute_url()).content.decode()
    assert "The market is: trend, high volatility" in bot_page and "The analyst is: bullish" in bot_page
    assert 'href="/help/policy/"' in bot_page and "docs/learning.md" not in bot_page
    help_page = alice_client.get("/help/policy/").content.decode()
    assert "Size factor" in help_page and "1 risks the full setting" in help_page


def test_a_favicon(client):
    page = client.get("/accounts/login/").content.decode()
    assert 'rel="icon" href="/static/favicon.svg"' in page
    assert client.get("/favicon.ico").headers["Location"] == "/static/favicon.svg"
