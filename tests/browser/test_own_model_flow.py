"""Bring your own model in a real browser (Debian's Chromium against a live server): a trader adds their own
model server on Settings → Models, switches their bot to it on the bot's form, runs it now, and reads on the
analysis which model and connection answered. The model server is the OpenAI stand-in on 127.0.0.1, reached
by the real SDK from the cycle."""

import json

import pytest
from selenium.webdriver.common.by import By

from accounts.models import ModelConnection
from automation.browser import chromium, log_in
from automation.models import Bot
from learning.models import AILearningData
from tests.browser.test_trader_flow import fill, follow, press, submit, text
from tests.factories import BotFactory, import_eurusd
from tests.learning.test_prompt_reaches_the_model import ANSWER
from tests.stand_ins.openai_server import openai_stand_in

__all__ = ["openai_stand_in"]  # the trader's own model server, on 127.0.0.1

KEY = "sk-trader-own-key-51b0e9a7c3"


@pytest.fixture
def browser():
    driver = chromium(390)  # on a phone
    yield driver
    driver.quit()


def test_a_trader_switches_a_bot_to_their_own_model_and_it_answers(
    live_server, transactional_db, browser, eager_tasks, openai_stand_in, alice
):
    import_eurusd()
    bot = BotFactory(owner=alice, name="EUR hourly", exchange="sample", symbol="EUR/USD", timeframe="1h")
    openai_stand_in.add_content(json.dumps(ANSWER), prompt_tokens=1500, completion_tokens=300)
    url = live_server.url
    log_in(browser, url, alice)

    browser.get(f"{url}/accounts/settings/")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "a[href='/accounts/models/']"))
    fill(browser, label="Ollama on the desk", base_url=openai_stand_in.base_url, api_key=KEY)
    submit(browser, "Save connection")
    assert "Model connection “Ollama on the desk” saved" in text(browser)
    assert KEY not in browser.page_source and f"set ••••{KEY[-4:]}" in text(browser)
    connection = ModelConnection.objects.get(owner=alice)

    browser.get(f"{url}/bots/{bot.pk}/edit/")
    fill(browser, analyst="OWN_MODEL", model_connection=str(connection.pk), model_name="llava:13b")
    submit(browser, "Save")
    bot.refresh_from_db()
    assert (bot.analyst, bot.model_connection, bot.model_name) == ("OWN_MODEL", connection, "llava:13b")
    assert "Your own model: llava:13b on Ollama on the desk" in text(browser)

    submit(browser, "Start")
    submit(browser, "Run now")
    browser.get(f"{url}/bots/{bot.pk}/")  # the run has happened by the time the answer came
    press(browser, By.CSS_SELECTOR, "td a[href^='/analyses/']")

    [sent] = openai_stand_in.requests
    assert sent.headers["authorization"] == f"Bearer {KEY}" and sent.body["model"] == "llava:13b"
    analysis = AILearningData.objects.get(bot=bot)
    assert (analysis.billed_to, analysis.model_connection) == ("OWNER", connection)
    shown = text(browser)
    assert "openai (llava:13b-2024-07-18) on your model connection “Ollama on the desk”" in shown
    assert "1500 prompt and 300 completion tokens" in shown and "on your own key" in shown
    assert Bot.objects.get(pk=bot.pk).status == Bot.Status.RUNNING
