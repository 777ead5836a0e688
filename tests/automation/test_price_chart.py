"""The price chart's figure (automation/price_chart.py) over the shipped EUR/USD hours: the candles of the
bot's market around its activity, its trades' entries, exits, stops and targets, its analyses' calls with
their hover text; the trade's window; another user's bot or trade is a 404."""

import html
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from automation.models import AutomationSession, CycleRun
from automation.price_chart import AFTER_EXIT, AFTER_LATEST, BEFORE_ENTRY, BOT_CANDLES
from learning.models import AILearningData
from tests.factories import BotFactory, import_eurusd
from trades.models import Trade

ENTRY = datetime(2017, 10, 3, 9, tzinfo=UTC)
EXIT = ENTRY + timedelta(hours=7)
REASONING = "The <b>MACD</b> turned & RSI is 38: " + "a long reason " * 30


@pytest.fixture
def traded(alice):
    """Alice's bot on the stored EUR/USD hours with a BUY call at ENTRY and the trade it opened, closed at
    EXIT, and an older HOLD call."""
    import_eurusd()
    bot = BotFactory(owner=alice, exchange="sample", symbol="EUR/USD", timeframe="1h")
    session = AutomationSession.objects.create(bot=bot)
    calls = {}
    for slot, call in ((ENTRY - timedelta(hours=3), "HOLD"), (ENTRY, "BUY")):
        run = CycleRun.objects.create(bot=bot, session=session, slot=slot)
        calls[call] = AILearningData.objects.create(
            user=alice, bot=bot, session=session, cycle_run=run, symbol="EUR/USD", timeframe="1h",
            recommendation=call, confidence_score=72.4, analysis_data={"reasoning": REASONING},
        )  # fmt: skip
    trade = Trade.objects.create(
        owner=alice, bot=bot, session=session, analysis=calls["BUY"], symbol="EUR/USD", side="BUY",
        amount=Decimal("1000"), price=Decimal("1.17434"), stop_loss=Decimal("1.1710"),
        take_profit=Decimal("1.1800"), status=Trade.Status.CLOSED, exit_price=Decimal("1.1800"),
        pnl=Decimal("5.66"), outcome="WIN", execution_time=ENTRY, closed_at=EXIT,
    )  # fmt: skip
    return bot, trade, calls


def traces(figure) -> dict:
    return {trace["name"]: trace for trace in figure["data"]}


def test_the_bot_chart_shows_its_trade_and_calls(alice_client, traded):
    bot, trade, calls = traded
    response = alice_client.get(reverse("bot_price_chart", args=[bot.pk]))
    assert response.status_code == 200
    by_name = traces(response.json())

    candles = by_name["EUR/USD"]
    assert candles["type"] == "candlestick"
    assert len(candles["x"]) == BOT_CANDLES
    # Up to a few candles after the latest exit: the closed candles by EXIT + AFTER_LATEST hours.
    assert datetime.fromisoformat(candles["x"][-1]) == EXIT + (AFTER_LATEST - 1) * timedelta(hours=1)

    entries, exits = by_name["Entries"], by_name["Exits"]
    assert (entries["x"], entries["y"], entries["customdata"]) == ([ENTRY.isoformat()], [1.17434], [trade.pk])
    assert entries["marker"]["symbol"] == ["triangle-up"]
    assert (exits["x"], exits["y"]) == ([EXIT.isoformat()], [1.18])
    assert "WIN, P&amp;L 5.66" in exits["text"][0]
    assert by_name["Stop-losses"]["y"] == [1.171, 1.171, None]
    assert by_name["Take-profits"]["x"] == [ENTRY.isoformat(), EXIT.isoformat(), None]

    analyses = by_name["Analyses"]
    assert analyses["customdata"] == [calls["HOLD"].pk, calls["BUY"].pk]
    hover = analyses["text"][1]
    assert hover.startswith(f"BUY · 72 % confident · analysis {calls['BUY'].pk}<br>")
    # The reasoning's start, escaped (the analyst's text is no markup of ours), in lines a phone can hold.
    assert "The &lt;b&gt;MACD&lt;/b&gt; turned &amp; RSI is 38" in hover
    assert "<b>" not in hover and hover.endswith("…")
    assert all(len(html.unescape(line)) <= 60 for line in hover.split("<br>")[1:])
    # The call's dot sits on the close of the last candle the analyst saw, the one that closed at its slot.
    close = candles["close"][candles["x"].index((ENTRY - timedelta(hours=1)).isoformat())]
    assert analyses["y"][1] == close


def test_the_trade_chart_is_the_stretch_around_the_trade(alice_client, traded):
    bot, trade, _ = traded
    other = Trade.objects.create(
        owner=bot.owner, bot=bot, symbol="EUR/USD", side="SELL", amount=Decimal(1), price=Decimal("1.19"),
        status=Trade.Status.OPEN, execution_time=EXIT + timedelta(days=30),
    )  # fmt: skip
    figure = alice_client.get(reverse("trade_price_chart", args=[trade.pk])).json()
    by_name = traces(figure)
    times = [datetime.fromisoformat(x) for x in by_name["EUR/USD"]["x"]]
    assert times[-1] == EXIT + (AFTER_EXIT - 1) * timedelta(hours=1)
    assert times[0] <= ENTRY - BEFORE_ENTRY * timedelta(hours=1)
    assert by_name["Entries"]["customdata"] == [trade.pk]  # the later trade is outside the window
    assert "(this trade)" in by_name["Entries"]["text"][0]
    assert other.pk not in by_name["Entries"]["customdata"]

    # An open trade of a market run over past slots ends at the bot's latest activity, not at the wall clock.
    by_name = traces(alice_client.get(reverse("trade_price_chart", args=[other.pk])).json())
    times = [datetime.fromisoformat(x) for x in by_name["EUR/USD"]["x"]]
    assert times[-1] <= other.execution_time + AFTER_LATEST * timedelta(hours=1)
    assert other.pk in by_name["Entries"]["customdata"]


def test_a_market_without_candles_says_so(alice_client, alice):
    bot = BotFactory(owner=alice, exchange="sample", symbol="GBP/USD", timeframe="1h")
    figure = alice_client.get(reverse("bot_price_chart", args=[bot.pk])).json()
    assert "data" not in figure
    assert "GBP/USD" in figure["empty"]


def test_another_users_bot_and_trade_charts_are_404(client, charlie, traded):
    bot, trade, _ = traded
    client.force_login(charlie)
    assert client.get(reverse("bot_price_chart", args=[bot.pk])).status_code == 404
    assert client.get(reverse("trade_price_chart", args=[trade.pk])).status_code == 404
    client.logout()
    response = client.get(reverse("bot_price_chart", args=[bot.pk]))
    assert response.status_code == 302 and "/login" in response["Location"]


def test_the_pages_carry_the_chart_and_the_full_size_link(alice_client, traded):
    bot, trade, calls = traded
    page = alice_client.get(reverse("bot_detail", args=[bot.pk])).content.decode()
    assert f'data-price-chart="{reverse("bot_price_chart", args=[bot.pk])}"' in page
    assert "js/price_chart.js" in page
    page = alice_client.get(reverse("trade_detail", args=[trade.pk])).content.decode()
    assert f'data-price-chart="{reverse("trade_price_chart", args=[trade.pk])}"' in page
    calls["BUY"].screenshot = "charts/x.png"
    calls["BUY"].save()
    page = alice_client.get(reverse("analysis_detail", args=[calls["BUY"].pk])).content.decode()
    assert f'<a class="chart-link" href="{reverse("analysis_chart", args=[calls["BUY"].pk])}"' in page
