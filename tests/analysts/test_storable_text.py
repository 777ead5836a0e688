"""Issue 15, finding 5: a model answer whose text holds NUL or a lone UTF-16 surrogate lost the whole analysis
(PostgreSQL refuses both; pydantic's JSON parser refused the surrogate). The analysis is now written with its
text made storable, and says so. Run on SQLite and PostgreSQL (DATABASE_URL)."""

import json
from datetime import UTC, datetime

import openai
import pytest

from automation.analysts.openai_analyst import OpenAIAnalyst
from automation.analysts.text import storable_text
from automation.cycle import Outside, run_cycle
from automation.models import AutomationSession, Bot, CycleRun
from learning.models import AILearningData
from tests.factories import BotFactory, import_eurusd

SLOT = datetime(2017, 12, 4, 10, tzinfo=UTC)

ANSWER = {
    "summary": "Range.", "market_sentiment": "NEUTRAL", "key_levels": {"support": [], "resistance": []},
    "recommendation": "HOLD", "confidence": 55, "reasoning": "Nothing clear.", "entry": None,
    "stop_loss": None, "take_profit": None, "predicted_price": 1.1, "horizon": 5,
}  # fmt: skip


@pytest.fixture
def bot(alice):
    import_eurusd()
    bot = BotFactory(owner=alice, exchange="sample", symbol="EUR/USD", status=Bot.Status.RUNNING)
    AutomationSession.objects.create(bot=bot)
    return bot


def run_with_answer(bot, openai_stand_in, **answer) -> CycleRun:
    # json.dumps spells NUL as \u0000 and a lone surrogate as \ud800, as the API would send them.
    openai_stand_in.add_content(json.dumps({**ANSWER, **answer}))
    client = openai.OpenAI(api_key="sk-test", base_url=openai_stand_in.base_url, max_retries=0, timeout=5)
    outside = Outside(analyst=OpenAIAnalyst(client=client), chart=lambda *a: b"\x89PNG fake")
    try:
        return run_cycle(bot.pk, SLOT, outside, on_schedule=False)
    finally:
        client.close()


@pytest.mark.parametrize(
    ("summary", "reasoning", "stored_summary", "stored_reasoning", "cleaned"),
    [
        ("Range\x00 bound.", "Flat.", "Range bound.", "Flat.", ["summary"]),
        (
            "Range \ud800 bound.",
            "Flat \udc00.",
            "Range \ufffd bound.",
            "Flat \ufffd.",
            ["reasoning", "summary"],
        ),
        ("Bull \ud83d\ude00\x00", "Ok.", "Bull \U0001f600", "Ok.", ["summary"]),  # a real pair stays itself
    ],
    ids=["nul", "lone-surrogates", "pair-and-nul"],
)
def test_an_answer_with_text_the_database_cannot_store_is_kept_cleaned_and_noted(
    bot, openai_stand_in, alice_client, summary, reasoning, stored_summary, stored_reasoning, cleaned
):
    run = run_with_answer(bot, openai_stand_in, summary=summary, reasoning=reasoning)

    assert run.status == "SUCCEEDED", (run.failed_step, run.error)
    record = AILearningData.objects.get(cycle_run=run)
    assert (record.analysis_data["summary"], record.analysis_data["reasoning"]) == (
        stored_summary,
        stored_reasoning,
    )
    assert record.feedback_data["text_cleaned"] == cleaned
    assert record.recommendation == "HOLD" and record.confidence_score == 55  # the call itself as sent
    page = alice_client.get(f"/analyses/{record.pk}/")
    assert page.status_code == 200
    assert "characters that cannot be stored" in page.content.decode()


def test_a_clean_answer_carries_no_note(bot, openai_stand_in):
    run = run_with_answer(bot, openai_stand_in, summary="Ünïcode is fine: €, 😀, 中文.")
    record = AILearningData.objects.get(cycle_run=run)
    assert record.analysis_data["summary"] == "Ünïcode is fine: €, 😀, 中文."
    assert "text_cleaned" not in record.feedback_data


def test_a_refusal_with_a_nul_is_recorded_on_the_failed_run(bot, openai_stand_in):
    openai_stand_in.add_refusal("I can\x00not \ud800 help.")
    client = openai.OpenAI(api_key="sk-test", base_url=openai_stand_in.base_url, max_retries=0, timeout=5)
    outside = Outside(analyst=OpenAIAnalyst(client=client), chart=lambda *a: b"\x89PNG fake")
    run = run_cycle(bot.pk, SLOT, outside, on_schedule=False)
    client.close()
    assert (run.status, run.failed_step) == ("FAILED", "analysis")
    assert "the model refused: I cannot \ufffd help." in run.error


def test_storable_text():
    assert storable_text("plain") == "plain"
    assert storable_text("a\x00b") == "ab"
    assert storable_text("\ud800\ud800x\udfff") == "\ufffd\ufffdx\ufffd"
    assert storable_text("\ud83d\ude00") == "\U0001f600"
