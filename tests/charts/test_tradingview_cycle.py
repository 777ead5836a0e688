"""A bot whose chart source is TradingView: its cycle shows the analyst a screenshot of the bot's chart page,
taken by the real headless Chromium (of a local page standing in for tradingview.com)."""

from datetime import UTC, datetime

import pytest
from PIL import Image

from automation.cycle import Outside, run_cycle
from automation.models import AutomationSession, Bot
from learning.models import AILearningData
from tests.automation.test_cycle import FakeAnalyst, SeeingAnalyst
from tests.charts.conftest import BACKGROUND, tagged_processes
from tests.factories import BotFactory, import_eurusd

pytestmark = pytest.mark.browser


def running_tradingview_bot(owner, url: str) -> Bot:
    """A running bot on the shipped EUR/USD hours whose chart is the TradingView page at `url`."""
    import_eurusd()
    bot = BotFactory(
        owner=owner,
        exchange="sample",
        symbol="EUR/USD",
        status=Bot.Status.RUNNING,
        chart_source=Bot.ChartSource.TRADINGVIEW,
        tradingview_url=url,
    )
    AutomationSession.objects.create(bot=bot)
    return bot


def test_a_tradingview_bot_is_shown_its_chart_page(site, make_capture, monkeypatch, alice):
    capture = make_capture()
    monkeypatch.setattr("automation.cycle.shared_capture", lambda: capture)
    bot = running_tradingview_bot(alice, site.url("/chart?delay_ms=100"))
    analyst = SeeingAnalyst()

    run = run_cycle(
        bot.pk, datetime(2017, 12, 4, 10, tzinfo=UTC), Outside(analyst=analyst), on_schedule=False
    )

    assert run.status == "SUCCEEDED", run.error
    record = AILearningData.objects.get()
    with record.screenshot.open("rb") as stored:
        assert stored.read() == analyst.seen
    chart = Image.open(record.screenshot.path).convert("RGB")
    assert chart.size == (1280, 720)
    assert chart.getpixel((0, 0)) == BACKGROUND  # the page's canvas, not a rendered chart


def test_a_bot_whose_stored_url_leads_elsewhere_fails_at_its_chart_and_opens_nothing(
    site, make_capture, monkeypatch, alice, browser_tag
):
    """A URL written past the form (before the check existed, or by an operator) is refused by the capture."""
    capture = make_capture()
    monkeypatch.setattr("automation.cycle.shared_capture", lambda: capture)
    bot = running_tradingview_bot(alice, "http://127.0.0.1:18999\\@www.tradingview.com/internal-admin")

    run = run_cycle(
        bot.pk, datetime(2017, 12, 4, 10, tzinfo=UTC), Outside(analyst=FakeAnalyst()), on_schedule=False
    )

    assert (run.status, run.failed_step) == ("FAILED", "chart")
    assert "the chart URL is refused" in run.error
    assert not AILearningData.objects.exists()
    assert capture.driver is None and not tagged_processes(browser_tag)  # no browser was even started
