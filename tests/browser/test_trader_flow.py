"""A trader's first hour, in a real browser (Debian's Chromium through Selenium) against a live server: sign
up (through the e-mailed link), create a paper bot, start it, run it now, see the analysis and the chart the
analyst saw; after cycles over real candles, the insights page draws its plots; another user's pages are
404s."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from automation.browser import chromium, wait_for_plots
from automation.cycle import run_cycle
from automation.models import Bot
from learning.models import AILearningData
from tests.factories import BotFactory, import_eurusd
from trades.models import Trade

FIRST_SLOT = datetime(2017, 10, 2, 0, tzinfo=UTC)
PASSWORD = "a long passphrase nobody guesses 42"


@pytest.fixture
def browser():
    driver = chromium(1280)
    yield driver
    driver.quit()


def fill(browser, **fields):
    for name, value in fields.items():
        element = browser.find_element(By.NAME, name)
        if element.tag_name == "select":
            Select(element).select_by_value(value)
        else:
            element.clear()
            element.send_keys(value)


def follow(browser, element):
    """Click, and wait for the next page: the old one's elements go stale when it is replaced."""
    page = browser.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(browser, 60).until(gone(page))


def gone(element):
    """staleness_of, also when ChromeDriver reports the stale element as a node "that does not belong to the
    document" instead, as it does on a few percent of page changes (SeleniumHQ/selenium#15401)."""

    def check(browser) -> bool:
        try:
            return expected_conditions.staleness_of(element)(browser)
        except WebDriverException as e:
            if "does not belong to the document" in str(e):
                return True
            raise

    return check


def press(browser, by: str, value: str):
    """Click the element found by (`by`, `value`) and wait for the next page. A page's live parts
    (templates/_live.html) are replaced every few seconds, buttons and links included: one replaced between
    being found and being clicked is stale, the click never landed, and the element is found again."""
    for _ in range(3):
        try:
            follow(browser, browser.find_element(by, value))
            return
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"{value!r} was replaced each time before it could be clicked")


def submit(browser, label: str):
    press(browser, By.XPATH, f"//button[normalize-space()='{label}']")


def text(browser) -> str:
    return browser.find_element(By.TAG_NAME, "body").text


def test_a_trader_signs_up_runs_a_bot_and_reads_its_insights(
    live_server, transactional_db, browser, eager_tasks, charlie
):
    import_eurusd()
    url = live_server.url

    browser.get(f"{url}/accounts/signup/")
    fill(browser, email="Trader@Example.com", password1=PASSWORD, password2=PASSWORD)
    submit(browser, "Sign up")
    assert "Check your e-mail" in text(browser)
    browser.get(re.search(r"https?://\S+", mail.outbox[-1].body).group(0))
    submit(browser, "Create my account")
    assert "Create your first bot" in text(browser)

    follow(browser, browser.find_element(By.LINK_TEXT, "Create your first bot"))
    fill(browser, name="EUR hourly", exchange="sample", symbol="EUR/USD", timeframe="1h", mode="SIMULATION")
    submit(browser, "Create bot")
    assert "Bot “EUR hourly” created" in text(browser)
    bot = Bot.objects.get(name="EUR hourly", owner__email="trader@example.com")
    assert browser.current_url == f"{url}/bots/{bot.pk}/"

    submit(browser, "Start")
    assert "is running" in text(browser)
    # An hour at a time over real EUR/USD candles, as the bot's schedule would have run them. They come before
    # run-now, whose slot is this hour of the sample market that moves with the clock: a trade it opened
    # first would stay open through these older slots, and whether it opens one depends on the hour.
    for i in range(150):
        run_cycle(bot.pk, FIRST_SLOT + i * timedelta(hours=1))
    submit(browser, "Run now")
    assert "is on its way" in text(browser)

    browser.get(f"{url}/bots/{bot.pk}/")  # the run has happened by the time the answer came
    press(browser, By.CSS_SELECTOR, "td a[href^='/analyses/']")
    analysis = AILearningData.objects.filter(bot=bot).latest("cycle_run__slot")
    assert analysis.cycle_run.slot > FIRST_SLOT + timedelta(days=3000), "not run-now's run"
    assert browser.current_url == f"{url}/analyses/{analysis.pk}/"
    assert "The chart the AI saw" in text(browser)
    chart = browser.find_element(By.CSS_SELECTOR, "img.chart")
    size = browser.execute_script("return [arguments[0].complete, arguments[0].naturalWidth]", chart)
    assert size[0] and size[1] > 500, f"the chart image did not load: {size}"
    assert analysis.recommendation in text(browser)

    follow(browser, browser.find_element(By.LINK_TEXT, "Insights"))
    wait_for_plots(browser, timeout=60)
    plots = browser.find_elements(By.CSS_SELECTOR, "[data-plot][data-rendered]")
    assert len(plots) == 6
    for plot in plots:
        assert plot.find_elements(By.CSS_SELECTOR, "svg.main-svg"), plot.get_attribute("data-plot")
        assert plot.size["height"] > 200 and plot.size["width"] > 300
    assert "Accuracy over time" in text(browser) and "Calibration" in text(browser)
    assert browser.find_elements(By.CSS_SELECTOR, ".plot .errorbar"), "no interval drawn"

    follow(browser, browser.find_element(By.LINK_TEXT, "Dashboard"))
    wait_for_plots(browser, timeout=60)
    assert browser.find_elements(By.CSS_SELECTOR, "[data-plot='plot-equity'][data-rendered]")
    assert Trade.objects.filter(bot=bot, status="CLOSED").exists()

    # Charlie's bot, analysis, chart and trade do not exist as far as this trader can tell.
    theirs = BotFactory(owner=charlie, exchange="sample", symbol="EUR/USD", status=Bot.Status.RUNNING)
    run_cycle(theirs.pk, FIRST_SLOT)
    their_analysis = AILearningData.objects.get(bot=theirs)
    their_trade = Trade.objects.create(
        owner=charlie, bot=theirs, symbol="EUR/USD", side="BUY", amount=1, price=1
    )
    for path in (
        f"/bots/{theirs.pk}/",
        f"/bots/{theirs.pk}/edit/",
        f"/analyses/{their_analysis.pk}/",
        f"/analyses/{their_analysis.pk}/chart.png",
        f"/trades/{their_trade.pk}/",
    ):
        browser.get(url + path)
        WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.TAG_NAME, "h1"))
        assert browser.find_element(By.TAG_NAME, "h1").text == "Not Found", path
