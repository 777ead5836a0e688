"""The analyses and trades pages: the owner's only (another user's is a 404), filters, pages, empty states."""

from decimal import Decimal

from django.core.files.base import ContentFile

from learning.models import AILearningData
from tests.factories import BotFactory
from trades.models import Trade


def analysis(user, bot, **fields):
    defaults = {"symbol": "BTC/USDT", "timeframe": "1h", "recommendation": "BUY", "confidence_score": 72}
    return AILearningData.objects.create(
        user=user, bot=bot, analysis_data={"summary": "Higher highs.", "reasoning": "Trend.", "horizon": 5},
        market_conditions={}, **{**defaults, **fields},
    )  # fmt: skip


def test_analyses_list_and_detail_with_the_chart_and_the_trade(alice_client, alice, charlie):
    bot = BotFactory(owner=alice, name="btc")
    shown = analysis(alice, bot, outcome="WIN", accuracy_score=0.9, actual_price=Decimal(101))
    shown.screenshot.save("c.png", ContentFile(b"\x89PNG fake"))
    trade = Trade.objects.create(
        owner=alice,
        bot=bot,
        analysis=shown,
        symbol="BTC/USDT",
        side="BUY",
        amount=Decimal(1),
        price=Decimal(100),
    )
    hidden = analysis(charlie, BotFactory(owner=charlie))

    listing = alice_client.get("/analyses/")
    assert listing.status_code == 200
    assert list(listing.context["page"].object_list) == [shown]
    page = alice_client.get(f"/analyses/{shown.pk}/").content.decode()
    assert f'src="/analyses/{shown.pk}/chart.png"' in page and "Higher highs." in page
    assert f'href="/trades/{trade.pk}/"' in page
    assert alice_client.get(f"/analyses/{hidden.pk}/").status_code == 404


def test_a_trades_costs_are_shown_in_money_and_in_r_and_an_untraded_calls_in_r(alice_client, alice):
    bot = BotFactory(owner=alice)
    traded = analysis(alice, bot, outcome="LOSS", outcome_r=-1.04, feedback_data={"cost_r": 0.04})
    trade = Trade.objects.create(
        owner=alice, bot=bot, analysis=traded, symbol="BTC/USDT", side="BUY", amount=Decimal(1),
        price=Decimal(100), stop_loss=Decimal(95), status="CLOSED", exit_price=Decimal(95),
        learning_data={"costs": "0.2", "cost_r": 0.04},
    )  # fmt: skip
    page = alice_client.get(f"/analyses/{traded.pk}/").content.decode()
    assert "0.2000 USDT (0.04 R)" in page
    assert "costs 0.2000 USDT in fees and slippage, 0.04 R" in page
    assert "0.2000 in fees and slippage (0.04 R)" in alice_client.get(f"/trades/{trade.pk}/").content.decode()
    untraded = analysis(
        alice, bot, outcome="WIN", outcome_r=0.9, untraded=True, feedback_data={"cost_r": 0.1}
    )
    page = alice_client.get(f"/analyses/{untraded.pk}/").content.decode()
    assert "0.10 R (its paper trade's fees and slippage)" in page


def test_analyses_filters_and_pages(alice_client, alice):
    bot, other = BotFactory(owner=alice), BotFactory(owner=alice)
    for i in range(60):
        analysis(alice, bot, outcome="WIN" if i % 2 else "")
    analysis(alice, other, recommendation="SELL")

    first = alice_client.get("/analyses/").context["page"]
    assert (first.paginator.count, len(first.object_list), first.has_next()) == (61, 50, True)
    assert alice_client.get("/analyses/", {"bot": other.pk}).context["page"].paginator.count == 1
    assert alice_client.get("/analyses/", {"outcome": "open"}).context["page"].paginator.count == 31
    assert alice_client.get("/analyses/", {"recommendation": "SELL"}).context["page"].paginator.count == 1
    filtered = alice_client.get("/analyses/", {"bot": bot.pk, "page": 2}).content.decode()
    assert f"bot={bot.pk}&amp;page=1" in filtered  # the pages keep the filter
    refused = alice_client.get("/analyses/", {"bot": 10**9})
    assert refused.status_code == 200 and "bot:" in refused.content.decode()


def test_trades_list_and_detail(alice_client, alice, charlie):
    bot = BotFactory(owner=alice)
    mine = Trade.objects.create(
        owner=alice, bot=bot, symbol="BTC/USDT", side="SELL", amount=Decimal(2), price=Decimal(50),
        status="CLOSED", outcome="LOSS", pnl=Decimal(-3), pnl_percent=Decimal(-3), exit_price=Decimal("51.5"),
    )  # fmt: skip
    theirs = Trade.objects.create(owner=charlie, symbol="ETH/USDT", side="BUY", amount=1, price=10)
    assert list(alice_client.get("/trades/").context["page"].object_list) == [mine]
    assert alice_client.get("/trades/", {"status": "OPEN"}).context["page"].paginator.count == 0
    assert "-3.00" in alice_client.get(f"/trades/{mine.pk}/").content.decode()
    assert alice_client.get(f"/trades/{theirs.pk}/").status_code == 404


def test_empty_states_say_what_to_do(alice_client):
    assert "start a bot" in alice_client.get("/analyses/").content.decode()
    assert "No trades yet" in alice_client.get("/trades/").content.decode()
