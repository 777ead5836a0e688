"""Charts (issue 15, finding 2): a chart written for one user's bot is never shown to another user or sent to
another bot's analyst. Before, charts were named by symbol, timeframe and time only, and a rendered chart
was taken from any file under that name: alice's TradingView capture became charlie's "chart the AI saw",
and a bot on another exchange's EUR/USD got the `sample` market's chart."""

import hashlib
from datetime import UTC, datetime

import pytest
from django.test import Client

from automation.cycle import Outside, run_cycle
from automation.models import AutomationSession, Bot
from learning.models import AILearningData
from market.models import Candle
from tests.automation.test_cycle import SeeingAnalyst
from tests.factories import BotFactory, UserFactory, import_eurusd

SLOT = datetime(2017, 10, 2, 10, tzinfo=UTC)
CAPTURE = b"\x89PNG alice's private TradingView capture"


def running_bot(owner, **fields):
    bot = BotFactory(owner=owner, symbol="EUR/USD", timeframe="1h", status=Bot.Status.RUNNING, **fields)
    AutomationSession.objects.create(bot=bot)
    return bot


def copy_market_at_double_prices(exchange: str) -> None:
    """The shipped EUR/USD hours as another exchange's EUR/USD, at twice the price (≈ 2.49, not ≈ 1.245)."""
    rows = Candle.objects.filter(exchange="sample", symbol="EUR/USD", timeframe="1h").values()
    Candle.objects.bulk_create(
        Candle(
            **{
                **{k: v for k, v in row.items() if k != "id"},
                "exchange": exchange,
                **{price: row[price] * 2 for price in ("open", "high", "low", "close")},
            }
        )
        for row in rows
    )


def cycle(bot, outside=None) -> tuple[AILearningData, bytes]:
    analyst = SeeingAnalyst()
    run = run_cycle(bot.pk, SLOT, outside or Outside(analyst=analyst), on_schedule=False)
    assert run.status == "SUCCEEDED", run.error
    record = AILearningData.objects.get(bot=bot)
    with record.screenshot.open("rb") as stored:
        return record, stored.read()


@pytest.mark.django_db
def test_no_bot_is_shown_a_chart_written_for_another_users_bot(alice, charlie):
    import_eurusd()
    copy_market_at_double_prices("othersample")
    # alice's TradingView bot runs first, so that its capture is on disk when the others look for a chart.
    hers = running_bot(
        alice,
        exchange="sample",
        chart_source=Bot.ChartSource.TRADINGVIEW,
        tradingview_url="https://www.tradingview.com/chart/EURUSD/",
    )
    capture_analyst = SeeingAnalyst()
    her_record, her_chart = cycle(hers, Outside(analyst=capture_analyst, chart=lambda *a: CAPTURE))
    assert her_chart == CAPTURE == capture_analyst.seen

    his = running_bot(charlie, exchange="sample")
    his_record, his_chart = cycle(his)
    assert his_chart.startswith(b"\x89PNG") and his_chart != CAPTURE
    assert his_record.screenshot.name != her_record.screenshot.name

    # The rendered chart is shared only under its whole key: a third user's bot on the same market and
    # candle gets charlie's file; a bot on another exchange's EUR/USD gets its own.
    same_market = running_bot(UserFactory(email="dora@example.com"), exchange="sample")
    shared_record, shared_chart = cycle(same_market)
    assert (shared_record.screenshot.name, shared_chart) == (his_record.screenshot.name, his_chart)
    other_exchange = running_bot(UserFactory(email="erin@example.com"), exchange="othersample")
    other_record, other_chart = cycle(other_exchange)
    assert other_record.screenshot.name not in {his_record.screenshot.name, her_record.screenshot.name}
    assert hashlib.sha256(other_chart).digest() not in {
        hashlib.sha256(chart).digest() for chart in (his_chart, her_chart)
    }
    assert other_record.market_conditions["close"] == pytest.approx(2 * his_record.market_conditions["close"])

    # Over HTTP: charlie's chart is his rendered one; alice's is a 404 to him.
    browser = Client()
    browser.force_login(charlie)
    assert browser.get(f"/analyses/{her_record.pk}/chart.png").status_code == 404
    served = browser.get(f"/analyses/{his_record.pk}/chart.png")
    assert served.status_code == 200
    assert b"".join(served.streaming_content) == his_chart


@pytest.mark.django_db
def test_a_bots_captures_are_its_own_even_at_the_same_candle(alice, charlie):
    import_eurusd()
    first = running_bot(alice, exchange="sample", chart_source=Bot.ChartSource.TRADINGVIEW)
    second = running_bot(charlie, exchange="sample", chart_source=Bot.ChartSource.TRADINGVIEW)

    first_record, first_chart = cycle(first, Outside(analyst=SeeingAnalyst(), chart=lambda *a: CAPTURE))
    analyst = SeeingAnalyst()
    second_record, second_chart = cycle(second, Outside(analyst=analyst, chart=lambda *a: b"\x89PNG his"))

    assert (first_chart, second_chart, analyst.seen) == (CAPTURE, b"\x89PNG his", b"\x89PNG his")
    assert first_record.screenshot.name.startswith(f"charts/bots/bot{first.pk}/")
    assert second_record.screenshot.name.startswith(f"charts/bots/bot{second.pk}/")
