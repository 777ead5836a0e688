"""The first login to a fresh product, in Debian's Chromium against a live server and a real Celery worker:
`seed_demo --history N --background` (what `make run` does) returns before the history is there, the
dashboard shows its progress, and fills by itself, without a reload, as the worker replays it; the demo bot
then runs on the moving sample market. A bot's page shows a new run without a reload too."""

import io
import json
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from automation.browser import chromium, csp_violations, horizontal_overflow, log_in
from automation.cycle import run_cycle
from automation.demo import history_progress
from automation.models import AutomationSession, Bot, CycleRun
from tests.automation.test_celery_worker import celery_env, start
from tests.factories import BotFactory, import_eurusd

__all__ = ["celery_env"]  # the worker's environment, a fixture

# Hourly cycles: enough for closed trades, hence a P&L and a win rate, and a history long enough that the
# dashboard, refreshed every 5 s, shows its bar between the ends (60 were over between two refreshes once, on
# PostgreSQL, after the replay got faster).
HISTORY = 240


# Read in one script: the polled parts of the page are replaced every few seconds, and an element found
# by one WebDriver call may be gone by the next.
def card_text(driver) -> str:
    return driver.execute_script("return document.querySelector('.bot-card').innerText;")


def progress_values(driver) -> list[int]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.bot-card progress'), bar => bar.value);"
    )


def figure_of(driver, selector: str) -> str:
    return driver.execute_script(f"return document.querySelector('.bot-card {selector}').innerText;")


def mark_page(driver) -> None:
    """A flag on this page's window: a reload or a new page loses it."""
    driver.execute_script("window.sameDocument = true;")


def same_page(driver) -> bool:
    return driver.execute_script("return window.sameDocument === true;")


@pytest.mark.worker
def test_the_demo_login_fills_the_dashboard_as_the_worker_replays_its_history(
    live_server, transactional_db, celery_env, tmp_path
):
    out = io.StringIO()
    call_command("seed_demo", "--history", str(HISTORY), "--background", "--json", stdout=out)
    seeded = json.loads(out.getvalue())
    assert seeded["queued"] > 0
    bot = Bot.objects.get(pk=seeded["bot_id"])
    assert not CycleRun.objects.filter(bot=bot).exists(), "the command waited for the history"
    assert history_progress(bot).total == seeded["queued"]

    driver = chromium(390)
    worker = None
    try:
        log_in(driver, live_server.url, bot.owner)
        driver.get(live_server.url + "/")
        # The first page does not wait: the bot's card says its history waits for a worker, with a bar.
        assert progress_values(driver) == [0]
        assert "waiting for the background worker" in card_text(driver)
        intro = driver.find_element(By.CSS_SELECTOR, ".intro")
        assert "Welcome to TradingAI" in intro.text and "Run now" in intro.text
        mark_page(driver)

        with (tmp_path / "worker.log").open("w") as log:
            worker = start(
                ["worker", "--pool=prefork", "--concurrency=1", "--queues=default"], celery_env, log
            )
        seen_progress = set()

        def filled(d) -> bool:
            values = progress_values(d)
            seen_progress.update(values)
            return not values and "Running" in card_text(d)

        WebDriverWait(driver, 300, poll_frequency=0.5).until(
            filled, f"the dashboard did not fill: {(tmp_path / 'worker.log').read_text()[-3000:]}"
        )
        assert same_page(driver), "the dashboard was reloaded"
        assert seen_progress - {0}, "the bar never moved"

        bot.refresh_from_db()
        assert bot.status == Bot.Status.RUNNING  # started on the moving sample market after its history
        assert AutomationSession.objects.filter(bot=bot, stopped_at__isnull=True).exists()
        ran = CycleRun.objects.filter(bot=bot).count()
        assert ran >= HISTORY - 5, ran  # the slots of hours when the market was shut are not run
        card = card_text(driver)
        assert "never" not in card and "none yet" not in card, card
        assert "%" in figure_of(driver, ".win-rate")
        assert figure_of(driver, ".pnl").strip() not in ("", "—")
        # On a phone every figure of the card is in sight: none hidden in a sideways scroll.
        assert horizontal_overflow(driver) == 0
        edges = driver.execute_script(
            "return Array.from(document.querySelectorAll('.bot-card dd'),"
            " dd => [dd.innerText, dd.getBoundingClientRect().right]);"
        )
        assert len(edges) == 4 and all(right <= 390 for _, right in edges), edges
        assert not csp_violations(driver)

        # Dismissed, the first-visit card stays away.
        driver.find_element(By.XPATH, "//button[normalize-space()='Got it, hide this']").click()
        WebDriverWait(driver, 30).until(lambda d: not same_page(d))
        assert not driver.find_elements(By.CSS_SELECTOR, ".intro")
        driver.get(live_server.url + "/")
        assert not driver.find_elements(By.CSS_SELECTOR, ".intro")
    finally:
        driver.quit()
        if worker:
            worker.terminate()
            worker.wait(30)


def test_a_bot_page_shows_a_new_run_without_a_reload(live_server, transactional_db, alice):
    import_eurusd()
    bot = BotFactory(
        owner=alice, exchange="sample", symbol="EUR/USD", timeframe="1h", status=Bot.Status.RUNNING
    )
    AutomationSession.objects.create(bot=bot)
    driver = chromium(1280)
    try:
        log_in(driver, live_server.url, alice)
        driver.get(live_server.url + bot.get_absolute_url())
        assert "No cycles have run for this bot yet" in driver.find_element(By.ID, "bot-runs").text
        mark_page(driver)
        run_cycle(bot.pk, datetime(2017, 10, 2, 9, tzinfo=UTC))
        runs = "return document.getElementById('bot-runs').innerText;"
        WebDriverWait(driver, 30, poll_frequency=0.5).until(lambda d: "Succeeded" in d.execute_script(runs))
        assert same_page(driver)
        assert "2017-10-02 09:00" in driver.execute_script(runs)
        assert not csp_violations(driver)
    finally:
        driver.quit()


def test_the_analyses_list_shows_a_new_analysis_without_a_reload(live_server, transactional_db, alice):
    import_eurusd()
    bot = BotFactory(
        owner=alice, exchange="sample", symbol="EUR/USD", timeframe="1h", status=Bot.Status.RUNNING
    )
    AutomationSession.objects.create(bot=bot)
    driver = chromium(1280)
    try:
        log_in(driver, live_server.url, alice)
        driver.get(live_server.url + "/analyses/")
        mark_page(driver)
        run_cycle(bot.pk, datetime(2017, 10, 2, 9, tzinfo=UTC))
        rows = "return document.getElementById('analyses').innerText;"
        WebDriverWait(driver, 30, poll_frequency=0.5).until(
            lambda d: "2017-10-02 09:00" in d.execute_script(rows)
        )
        assert same_page(driver) and "EUR/USD, 1 hour" in driver.execute_script(rows)
        assert not csp_violations(driver)
    finally:
        driver.quit()
