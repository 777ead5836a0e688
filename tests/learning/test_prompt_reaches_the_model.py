"""What was learned reaches the model: a cycle with the real OpenAI SDK, against the OpenAI-compatible
stand-in, sends the bot's insights in its prompt, and the analysis records that prompt's version."""

import json
from datetime import UTC, datetime

import openai

from automation.analysts.openai_analyst import OpenAIAnalyst
from automation.cycle import Outside, run_cycle
from automation.models import AutomationSession, Bot
from learning.insights import snapshot
from learning.models import AILearningData
from tests.factories import BotFactory, import_eurusd
from tests.stand_ins.openai_server import openai_stand_in

from .conftest import resolved

__all__ = ["openai_stand_in"]

ANSWER = {
    "summary": "Range.", "market_sentiment": "NEUTRAL", "key_levels": {"support": [], "resistance": []},
    "recommendation": "HOLD", "confidence": 55, "reasoning": "Nothing clear.", "entry": None,
    "stop_loss": None, "take_profit": None, "predicted_price": 1.1, "horizon": 5,
}  # fmt: skip


def test_the_model_is_told_what_the_bot_learned(alice, openai_stand_in, settings):
    settings.LEARNING_MIN_SAMPLES = 30
    import_eurusd()
    bot = BotFactory(owner=alice, exchange="sample", symbol="EUR/USD", status=Bot.Status.RUNNING)
    AutomationSession.objects.create(bot=bot)
    resolved(alice, 40, 30, bot=bot, confidence_score=80)
    snapshot(alice, bot=bot)
    openai_stand_in.add_content(json.dumps(ANSWER))
    client = openai.OpenAI(api_key="sk-test", base_url=openai_stand_in.base_url, max_retries=0, timeout=5)
    outside = Outside(analyst=OpenAIAnalyst(client=client), chart=lambda *a: b"\x89PNG fake")

    run = run_cycle(bot.pk, datetime(2017, 12, 4, 10, tzinfo=UTC), outside, on_schedule=False)
    client.close()

    assert run.status == "SUCCEEDED", run.error
    [sent] = openai_stand_in.requests
    text = sent.body["messages"][1]["content"][0]["text"]
    assert "Based on 40 previous analyses whose outcome is known:" in text
    assert "- Your accuracy is currently 75% (95% interval 60%-86%)." in text
    record = AILearningData.objects.get(cycle_run=run)
    assert "- Your accuracy is currently 75%" in record.prompt_section
    assert "- Your accuracy is currently #%" in record.prompt_version.text


def test_the_learned_section_is_refreshed_once_a_day_of_market_time(alice, openai_stand_in, settings):
    """Every cycle of a day is given the section its first cycle was, whatever was learned since; the next
    day's first cycle is given what was learned by then (docs/learning.md, "The prompt's cadence")."""
    settings.LEARNING_MIN_SAMPLES = 30
    import_eurusd()
    bot = BotFactory(owner=alice, exchange="sample", symbol="EUR/USD", status=Bot.Status.RUNNING)
    AutomationSession.objects.create(bot=bot)
    resolved(alice, 40, 30, bot=bot, confidence_score=80)
    snapshot(alice, bot=bot)
    for _ in range(3):
        openai_stand_in.add_content(json.dumps(ANSWER))
    client = openai.OpenAI(api_key="sk-test", base_url=openai_stand_in.base_url, max_retries=0, timeout=5)
    outside = Outside(analyst=OpenAIAnalyst(client=client), chart=lambda *a: b"\x89PNG fake")
    day = datetime(2017, 12, 4, tzinfo=UTC)

    first = run_cycle(bot.pk, day.replace(hour=10), outside, on_schedule=False)
    resolved(alice, 40, 10, bot=bot, confidence_score=80)  # learned since: now 40 of 80 right
    snapshot(alice, bot=bot)
    later = run_cycle(bot.pk, day.replace(hour=11), outside, on_schedule=False)
    next_day = run_cycle(bot.pk, day.replace(day=5, hour=0), outside, on_schedule=False)
    client.close()

    sections = [AILearningData.objects.get(cycle_run=run).prompt_section for run in (first, later, next_day)]
    assert "Based on 40 previous analyses" in sections[0]
    assert sections[1] == sections[0]
    assert "Based on 80 previous analyses" in sections[2]
    texts = [r.body["messages"][1]["content"][0]["text"] for r in openai_stand_in.requests]
    assert sections[0] in texts[1] and sections[2] in texts[2]
