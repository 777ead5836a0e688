"""Every main page fits a phone (390 px) and a desktop (1280 px) without scrolling sideways, with real data
to show: a paper bot's cycles over real EUR/USD candles (analyses with their charts, trades, insights),
in Debian's Chromium against a live server. And `screenshots` takes a PNG of every page at both widths."""

import struct
from datetime import UTC, datetime, timedelta

from django.core.management import call_command
from selenium.webdriver.common.by import By

from accounts.models import ModelConnection
from accounts.services import trading_halt_set
from automation.backtest_start import backtest_start
from automation.backtests import backtest_run
from automation.browser import chromium, csp_violations, horizontal_overflow, overflowing_elements
from automation.cycle import run_cycle
from automation.demo import seed_demo
from automation.management.commands.screenshots import main_pages, walk
from automation.models import AutomationSession, Backtest, Bot
from notifications.delivery import deliver
from notifications.models import Delivery
from tests.factories import BotFactory, import_eurusd
from tests.notifications.conftest import TELEGRAM_TOKEN, add_channel

FIRST_SLOT = datetime(2017, 10, 2, 0, tzinfo=UTC)  # a Monday: the pair trades through the week
# Enough hours for closed trades and resolved analyses, hence insights, on these candles.
CYCLES = 60
WIDTHS = (390, 1280)


def test_every_page_fits_the_screen(live_server, transactional_db, alice, settings):
    import_eurusd()
    bot = BotFactory(
        owner=alice, exchange="sample", symbol="EUR/USD", timeframe="1h", status=Bot.Status.RUNNING,
        max_open_trades=3,
    )  # fmt: skip
    AutomationSession.objects.create(bot=bot)
    settings.TELEGRAM_API_BASE = "http://127.0.0.1:9"
    # Channels, so that the cycles' trades fill the delivery log; a few tried, one failing with its error.
    add_channel(alice, kind="EMAIL")
    add_channel(alice, kind="TELEGRAM", label="Trading desk", token=TELEGRAM_TOKEN, target="-1001234567890")
    for i in range(CYCLES):
        run_cycle(bot.pk, FIRST_SLOT + i * timedelta(hours=1))
    for delivery in Delivery.objects.order_by("pk")[:6]:
        deliver(delivery.pk, last_try=True)  # "could not connect": nothing listens on port 9 here
    for halted in (True, False):  # rows for the audit log (paper trading records none)
        trading_halt_set(alice, halted, actor=alice)
    backtest = backtest_start(
        Backtest(
            owner=alice, exchange="sample", symbol="EUR/USD", timeframe="1h", start=FIRST_SLOT,
            end=FIRST_SLOT + timedelta(days=4),
        )
    )  # fmt: skip
    backtest_run(backtest.pk)  # its report, with plots and tables, to fit
    # A model connection with the longest address a phone must wrap (Settings, Models and its edit page).
    connection = ModelConnection(
        owner=alice, label="Ollama on the desk", base_url="http://192.168.100.200:11434/v1/openai-compatible/"
    )
    connection.set_api_key("sk-proj-a-long-key-of-the-users-own-9f3e")
    connection.save()
    pages, skipped = main_pages(alice)
    assert not skipped, skipped  # every detail page has something to show

    too_wide, refused = [], []
    for width in WIDTHS:
        driver = chromium(width)
        try:
            for name in walk(driver, live_server.url, alice, pages):
                assert driver.find_elements(By.TAG_NAME, "h1"), f"{name} at {width} px has no heading"
                # Plots are drawn by now (walk waits for them): plotly.js ran under the policy too.
                refused += [f"{name} at {width} px: {message}" for message in csp_violations(driver)]
                if overflow := horizontal_overflow(driver):
                    culprits = "; ".join(overflowing_elements(driver))
                    too_wide.append(f"{name} at {width} px by {overflow} px: {culprits}")
        finally:
            driver.quit()
    assert not too_wide, "pages wider than the screen:\n" + "\n".join(too_wide)
    assert not refused, "the Content-Security-Policy refused:\n" + "\n".join(refused)


def png_width(path) -> int:
    png = path.read_bytes()
    assert png[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">I", png[16:20])[0]


def test_screenshots_of_every_page_at_both_widths(transactional_db, tmp_path, capsys):
    demo = seed_demo()  # a bot, but no analysis or trade yet

    call_command("screenshots", tmp_path / "shots", "--email", demo.email, "--widths", "390,1280")

    out = capsys.readouterr().out
    pages, skipped = main_pages(demo.bot.owner)
    left_out = [note.split(":")[0] for note in skipped]
    assert left_out == ["analysis_detail", "trade_detail", "backtest_detail", "model_connection_edit"]
    assert all(note in out for note in skipped)
    for name, _ in pages:
        for width in WIDTHS:
            shot = tmp_path / "shots" / f"{name}-{width}.png"
            assert png_width(shot) == width
            assert f"{name} at {width} px: {shot} (overflow 0 px)" in out
    assert len(list((tmp_path / "shots").iterdir())) == len(pages) * len(WIDTHS)
