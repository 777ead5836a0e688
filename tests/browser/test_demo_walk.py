"""Issue 19's walk, in Debian's Chromium against a live server and a real Celery worker (prefork, the default
and io queues), as a new user meets the product after `make run`:

demo login → the dashboard fills by itself as the worker replays the demo bot's history → a backtest started
from the browser, its progress bar moving, its report → a trade opened by one of those cycles delivered to the
user's signed webhook (a stand-in on 127.0.0.1) → the bot's price chart shows that trade → the bot switched to
the user's own model (the OpenAI stand-in, reached by the real SDK) runs a cycle through it. The trade is
opened by a live cycle of a second bot of hers: the demo history is a replay, which tells no one of its
trades.

Each part has its own, closer test (test_first_login, test_backtest_flow, tests/notifications/test_end_to_end,
test_price_chart, test_own_model_flow); this one checks that they hold together, in one account."""

import io
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from accounts.models import ModelConnection
from automation.browser import chromium, csp_violations, log_in, wait_for_plots
from automation.cycle import run_cycle
from automation.models import AutomationSession, Backtest, Bot
from learning.models import AILearningData
from notifications.models import Delivery
from tests.automation.test_celery_worker import celery_env, start, wait_for
from tests.browser.test_backtest_flow import progress_of, set_date
from tests.browser.test_first_login import card_text, progress_values
from tests.browser.test_price_chart import DRAWN
from tests.browser.test_trader_flow import fill, follow, submit, text
from tests.factories import BotFactory
from tests.learning.test_prompt_reaches_the_model import ANSWER
from tests.stand_ins.notify_server import notify_stand_in
from tests.stand_ins.openai_server import openai_stand_in
from trades.models import Trade

__all__ = ["celery_env", "notify_stand_in", "openai_stand_in"]  # fixtures

HISTORY = 60  # hourly cycles of the demo bot: enough for trades
SIGNING_KEY = "the-demo-users-signing-key-7d2e"
OWN_KEY = "sk-demo-users-own-key-4c81f0"
FIRST_SLOT = datetime(2017, 10, 2, 0, tzinfo=UTC)  # a Monday of the shipped EUR/USD hours


@pytest.mark.worker
def test_the_demo_walk(live_server, transactional_db, celery_env, notify_stand_in, openai_stand_in, tmp_path):
    out = io.StringIO()
    call_command("seed_demo", "--history", str(HISTORY), "--background", "--json", stdout=out)
    bot = Bot.objects.get(pk=json.loads(out.getvalue())["bot_id"])
    user, url = bot.owner, live_server.url
    driver = chromium(1280)
    log_path = tmp_path / "worker.log"
    worker = None
    try:
        # Demo login: the first page answers at once, the history still to come.
        log_in(driver, url, user)
        driver.get(f"{url}/")
        assert progress_values(driver) == [0]
        assert "Welcome to TradingAI" in driver.find_element(By.CSS_SELECTOR, ".intro").text

        # Her signed webhook, before the cycles whose trades she is to be told of.
        driver.get(f"{url}/notifications/")
        fill(
            driver,
            label="My desk",
            kind="WEBHOOK",
            url=f"{notify_stand_in.base_url}/hook",
            hmac_key=SIGNING_KEY,
        )
        submit(driver, "Add channel")
        assert "My desk" in text(driver)

        with log_path.open("w") as log:
            worker = start(
                ["worker", "--pool=prefork", "--concurrency=2", "--queues=default,io", "--without-mingle"],
                celery_env,
                log,
            )

        # A full dashboard, filled without a reload.
        driver.get(f"{url}/")
        WebDriverWait(driver, 300, poll_frequency=0.5).until(
            lambda d: not progress_values(d) and "Running" in card_text(d),
            f"the dashboard did not fill: {log_path.read_text()[-3000:]}",
        )
        card = card_text(driver)
        assert "never" not in card and "none yet" not in card, card
        # A backtest from the browser: its progress, then its report.
        follow(driver, driver.find_element(By.LINK_TEXT, "Backtests"))
        follow(driver, driver.find_element(By.LINK_TEXT, "New backtest"))
        Select(driver.find_element(By.NAME, "market")).select_by_value("sample|EUR/USD|1h")
        # Nine months, as test_backtest_flow's: four weeks could be over between two of the page's polls.
        set_date(driver, "start_day", "2017-05-01")
        set_date(driver, "end_day", "2018-02-05")
        submit(driver, "Start backtest")
        backtest = Backtest.objects.get(owner=user)
        seen, deadline = [], time.monotonic() + 240
        while (shown := progress_of(driver)) is not None and time.monotonic() < deadline:
            seen.append(shown)
            time.sleep(0.3)
        assert shown is None, f"still running: {seen[-1:]}\n{log_path.read_text()[-3000:]}"
        backtest.refresh_from_db()
        assert backtest.status == Backtest.Status.DONE, backtest.error
        assert any(0 < value < maximum for value, maximum in seen), sorted(set(seen))
        wait_for_plots(driver, timeout=60)
        assert "What the figures say" in text(driver)

        # A trade opened by a cycle reaches her webhook, signed, through the worker. (The history is a replay,
        # which tells no one of its trades.) Her second bot, on the hours the notifications' own test uses.
        bot = BotFactory(
            owner=user, name="EUR hourly", exchange="sample", symbol="EUR/USD", timeframe="1h",
            status=Bot.Status.RUNNING, analyst=Bot.Analyst.TECHNICAL,
        )  # fmt: skip
        AutomationSession.objects.create(bot=bot)
        for hour in range(100):
            run_cycle(bot.pk, FIRST_SLOT + timedelta(hours=hour), on_schedule=False)
            if trade := Trade.objects.filter(bot=bot).first():
                break
        assert trade is not None, "no trade in 100 cycles"
        delivered = wait_for(
            lambda: Delivery.objects.filter(
                notification__data__trade=trade.pk, status=Delivery.Status.SENT
            ).exists(),
            120,
        )
        assert delivered, log_path.read_text()[-3000:]
        told = [r.json() for r in notify_stand_in.to("/hook")]
        assert any(b["event"] == "TRADE_OPENED" and b["data"]["trade"] == trade.pk for b in told), told
        driver.get(f"{url}/notifications/deliveries/")
        assert "Sent" in text(driver)

        # The bot's price chart shows that trade.
        driver.get(f"{url}{bot.get_absolute_url()}")
        wait_for_plots(driver, timeout=60)
        traces = driver.execute_script(DRAWN)["traces"]
        assert trade.pk in traces["Entries"]["customdata"]
        assert float(trade.stop_loss) in traces["Stop-losses"]["y"]

        # Her own model: a connection, the bot switched to it, a cycle through it.
        openai_stand_in.add_content(json.dumps(ANSWER), prompt_tokens=1200, completion_tokens=250)
        driver.get(f"{url}/accounts/models/")
        fill(driver, label="My server", base_url=openai_stand_in.base_url, api_key=OWN_KEY)
        submit(driver, "Save connection")
        connection = ModelConnection.objects.get(owner=user)
        driver.get(f"{url}/bots/{bot.pk}/edit/")
        fill(driver, analyst="OWN_MODEL", model_connection=str(connection.pk), model_name="llava:13b")
        submit(driver, "Save")
        submit(driver, "Run now")
        answered = wait_for(
            lambda: AILearningData.objects.filter(bot=bot, model_connection=connection).exists(), 120
        )
        assert answered, log_path.read_text()[-3000:]
        [sent] = openai_stand_in.requests
        assert sent.headers["authorization"] == f"Bearer {OWN_KEY}" and sent.body["model"] == "llava:13b"
        assert AILearningData.objects.get(bot=bot, model_connection=connection).billed_to == "OWNER"
        assert not csp_violations(driver)
    finally:
        driver.quit()
        if worker:
            worker.terminate()
            worker.wait(30)
