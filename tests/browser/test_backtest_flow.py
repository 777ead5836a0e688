"""A backtest from the browser, end to end: a trader chooses a stored market, a range and policy settings on
the form; a real Celery worker (prefork, as deploy/Procfile runs the default queue) replays it; the page's
progress bar moves without a reload, and the report opens in the app with its plots drawn; the backtest
stays listed, and is a 404 to another user."""

import time

import pytest
from django.test import Client
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from automation.browser import chromium, csp_violations, log_in, wait_for_plots
from automation.models import Backtest
from tests.automation.test_celery_worker import celery_env, start  # noqa: F401 (celery_env is a fixture)
from tests.factories import import_eurusd

from .test_trader_flow import follow, submit, text


@pytest.fixture
def browser():
    driver = chromium(1280)
    yield driver
    driver.quit()


def set_date(browser, name: str, value: str):
    # A date input's keyboard entry follows the browser's locale; its value, in ISO form, does not.
    field = browser.find_element(By.NAME, name)
    browser.execute_script("arguments[0].value = arguments[1]", field, value)


def progress_of(browser) -> tuple[float, float] | None:
    """The progress bar's value and maximum, or None once the page shows the backtest over."""
    # Found and read in one script: htmx swaps the bar in every few seconds, and an element found by one
    # command could be gone by the next (stale, as a CI run saw).
    shown = browser.execute_script(
        "const bar = document.getElementById('backtest-progress'); return bar && [bar.value, bar.max];"
    )
    return tuple(shown) if shown else None


@pytest.mark.worker
def test_a_trader_backtests_a_market_and_reads_the_report(
    live_server,
    transactional_db,
    browser,
    alice,
    charlie,
    celery_env,  # noqa: F811
    tmp_path,
):
    import_eurusd()
    url = live_server.url
    log_path = tmp_path / "celery.log"
    with log_path.open("w") as log:
        worker = start(["worker", "--queues=default", "--concurrency=1", "--without-mingle"], celery_env, log)
        try:
            log_in(browser, url, alice)
            browser.get(f"{url}/")
            follow(browser, browser.find_element(By.LINK_TEXT, "Backtests"))
            assert "No backtests yet" in text(browser)
            follow(browser, browser.find_element(By.LINK_TEXT, "New backtest"))
            Select(browser.find_element(By.NAME, "market")).select_by_value("sample|EUR/USD|1h")
            # Nine months of hours, some 4,700 cycles: long enough for the page's 5-second poll to see the bar
            # between its ends (at the replay's 500 cycles a second, a thousand were over within one poll),
            # and past automation.replay.AHEAD_FROM, where a replay forks a helper process, which a pool
            # process (a daemon) may not: the backtest failed so until the replay asked first.
            set_date(browser, "start_day", "2017-05-01")
            set_date(browser, "end_day", "2018-02-05")
            risk = browser.find_element(By.NAME, "risk_per_trade_pct")
            risk.clear()
            risk.send_keys("0.5")
            submit(browser, "Start backtest")
            backtest = Backtest.objects.get(owner=alice)
            assert browser.current_url == f"{url}/backtests/{backtest.pk}/"
            assert "is queued" in text(browser)

            # The bar moves on while the page stays: watched until the page loads itself again, done.
            page = browser.find_element(By.TAG_NAME, "html")
            seen = []
            deadline = time.monotonic() + 240
            while (shown := progress_of(browser)) is not None and time.monotonic() < deadline:
                seen.append(shown)
                time.sleep(0.3)
            assert shown is None, f"still running after 4 minutes: {seen[-1:]}\n{log_path.read_text()}"
            moving = sorted({value for value, maximum in seen if 0 < value < maximum})
            assert moving, (
                f"no progress seen between start and end: {sorted(set(seen))}, "
                f"{Backtest.objects.values_list('status', 'error').get()}"
            )
            assert page.id != browser.find_element(By.TAG_NAME, "html").id  # loaded again, by the poller
        finally:
            worker.terminate()
            worker.wait(timeout=30)

    backtest.refresh_from_db()
    assert backtest.status == Backtest.Status.DONE, backtest.error
    assert backtest.cycles_done == backtest.cycles_total > 900
    assert float(backtest.risk_per_trade_pct) == 0.5
    wait_for_plots(browser, timeout=60)
    assert "What the figures say" in text(browser) and "Done" in text(browser)
    plots = browser.find_elements(By.CSS_SELECTOR, "[data-plot][data-rendered]")
    assert {p.get_attribute("data-plot") for p in plots} >= {
        "plot-equity",
        "plot-accuracy",
        "plot-calibration",
    }
    assert not csp_violations(browser)

    follow(browser, browser.find_element(By.LINK_TEXT, "Backtests"))
    row = browser.find_element(By.CSS_SELECTOR, f"a[href='/backtests/{backtest.pk}/']")
    assert "Done" in text(browser) and row

    theirs = Client()
    theirs.force_login(charlie)
    for path in ("", "status.json", "report.json"):
        assert theirs.get(f"/backtests/{backtest.pk}/{path}").status_code == 404
