"""Asking once in the cycle: two users' bots on one market, with nothing learned yet, make the same request
at a slot; the model is asked once, each bot still records its own analysis, the first with the call's
tokens and cost and the second marked as having reused it, which each owner sees on the analysis page and in
the API (and neither sees the other's)."""

import json
from datetime import UTC, datetime

import openai
import pytest
from django.urls import reverse

from automation.analysts.openai_analyst import OpenAIAnalyst
from automation.cycle import Outside, run_cycle
from automation.models import AutomationSession, Bot
from learning.models import AILearningData, AnalystAnswer
from tests.factories import BotFactory, force_login_verified, import_eurusd
from tests.learning.test_prompt_reaches_the_model import ANSWER

SLOT = datetime(2017, 12, 4, 10, tzinfo=UTC)


@pytest.fixture
def bots(alice, charlie):
    import_eurusd()
    made = []
    for owner in (alice, charlie):
        bot = BotFactory(
            owner=owner, exchange="sample", symbol="EUR/USD", timeframe="1h", status=Bot.Status.RUNNING,
            analyst=Bot.Analyst.OPENAI,
        )  # fmt: skip
        AutomationSession.objects.create(bot=bot)
        made.append(bot)
    return made


def test_two_bots_making_the_same_request_ask_once_and_record_who_paid(bots, openai_stand_in, client):
    openai_stand_in.add_content(json.dumps(ANSWER), prompt_tokens=1000, completion_tokens=200)
    sdk = openai.OpenAI(api_key="sk-test", base_url=openai_stand_in.base_url, max_retries=0, timeout=5)
    outside = Outside(analyst=OpenAIAnalyst(client=sdk))

    runs = [run_cycle(bot.pk, SLOT, outside, on_schedule=False) for bot in bots]
    sdk.close()

    assert [run.status for run in runs] == ["SUCCEEDED", "SUCCEEDED"], [run.error for run in runs]
    assert len(openai_stand_in.requests) == 1
    paid, reused = (AILearningData.objects.get(cycle_run=run) for run in runs)
    assert (paid.llm_call, paid.prompt_tokens, paid.completion_tokens) == ("ASKED", 1000, 200)
    assert paid.cost_usd > 0
    assert (reused.llm_call, reused.prompt_tokens, reused.completion_tokens, reused.cost_usd) == (
        "REUSED", 0, 0, 0,
    )  # fmt: skip
    assert reused.analysis_data == paid.analysis_data
    assert paid.answer_id == reused.answer_id == AnalystAnswer.objects.get().pk

    alice, charlie = (bot.owner for bot in bots)
    force_login_verified(client, charlie)
    page = client.get(reverse("analysis_detail", args=[reused.pk])).content.decode()
    assert "its answer was reused, at no cost" in page
    listed = client.get("/api/v1/analyses/").json()["results"]
    assert [(row["id"], row["llm_call"], row["cost_usd"]) for row in listed] == [
        (reused.pk, "REUSED", "0.000000")
    ]
    assert client.get(reverse("analysis_detail", args=[paid.pk])).status_code == 404
    force_login_verified(client, alice)
    page = client.get(reverse("analysis_detail", args=[paid.pk])).content.decode()
    assert "The model was asked for this analysis: 1000 prompt and 200 completion tokens" in page
