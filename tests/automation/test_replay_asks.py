"""A replay with a model as analyst asks each refresh window's calls together, ahead of the cycles
(automation/replay_asks.py), and decides exactly as the same replay asking one call at a time: the same
requests are sent (so each window's calls carry what was learned before the window, nothing after), the same
decisions follow; and a replay over the same slots, prompt and model asks nothing new."""

import hashlib
import json
import re
from datetime import timedelta

import pytest

from automation.replay import ReplaySpec, replay
from learning.models import AILearningData, AnalystAnswer
from tests.factories import BotFactory, UserFactory
from tests.stand_ins.openai_server import Reply, openai_stand_in

from .test_replay import START, candles, decisions

__all__ = ["candles", "openai_stand_in"]

HOURS = 72  # three days: three refresh windows, the learned section changing between them
CLOSE = re.compile(r"Close ([0-9.]+)\.")


def answer_for(body: dict) -> Reply:
    """The same answer to the same request, different answers to different ones: a call and its confidence
    from the prompt's hash, levels around the close it quotes."""
    text = body["messages"][1]["content"][0]["text"]
    digest = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    close = float(CLOSE.search(text).group(1))
    call = ("BUY", "SELL", "HOLD")[digest % 3]
    side = {"BUY": 1, "SELL": -1, "HOLD": 0}[call]
    levels = {
        "entry": close, "stop_loss": close * (1 - side * 0.002), "take_profit": close * (1 + side * 0.004),
    } if side else {"entry": None, "stop_loss": None, "take_profit": None}  # fmt: skip
    answer = {
        "summary": "Scripted.", "market_sentiment": {1: "BULLISH", -1: "BEARISH", 0: "NEUTRAL"}[side],
        "key_levels": {"support": [], "resistance": []}, "recommendation": call,
        "confidence": 40 + digest % 55, "reasoning": "From the prompt's hash.", **levels,
        "predicted_price": close * (1 + side * 0.003), "horizon": 6,
    }  # fmt: skip
    return Reply(content=json.dumps(answer), prompt_tokens=1000, completion_tokens=100)


@pytest.fixture
def openai_replay(candles, openai_stand_in, settings):
    settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "sk-test", openai_stand_in.base_url
    settings.OPENAI_MAX_RETRIES = 0
    openai_stand_in.answer_with(answer_for)
    end = START + timedelta(hours=HOURS - 1)
    return ReplaySpec("sample", "EUR/USD", "1h", "openai", start=START, end=end)


def another_bot():
    return BotFactory(
        owner=UserFactory(), exchange="sample", symbol="EUR/USD", timeframe="1h", analyst="OPENAI"
    )


def sent(requests) -> list[str]:
    return sorted(json.dumps(r.body["messages"], sort_keys=True) for r in requests)


def test_asked_a_window_at_a_time_it_decides_as_one_call_at_a_time_and_asks_nothing_twice(
    openai_replay, openai_stand_in
):
    at_once = replay(openai_replay, ask_concurrency=8)
    asked_at_once = list(openai_stand_in.requests)
    AnalystAnswer.objects.all().delete()  # so that the replay one call at a time asks for itself
    one_by_one = replay(openai_replay, bot=another_bot(), ask_concurrency=1)
    asked_one_by_one = openai_stand_in.requests[len(asked_at_once) :]

    assert len(asked_at_once) == len(asked_one_by_one) == HOURS
    assert sent(asked_at_once) == sent(asked_one_by_one)
    assert decisions(one_by_one) == decisions(at_once)
    rows = AILearningData.objects.filter(bot=at_once).select_related("cycle_run")
    by_day = {}
    for row in rows:
        by_day.setdefault(row.cycle_run.slot.date(), set()).add(row.prompt_section)
    assert all(len(sections) == 1 for sections in by_day.values()), by_day
    assert len(set.union(*by_day.values())) >= 2, "the learned section never changed: a weak test"
    assert any(d[5] for d in decisions(at_once)), "no trade: a weak test"
    assert set(rows.values_list("llm_call", flat=True)) == {"ASKED"}

    again = replay(openai_replay, bot=another_bot(), ask_concurrency=8)

    assert len(openai_stand_in.requests) == 2 * HOURS  # none asked again
    assert decisions(again) == decisions(at_once)
    reused = AILearningData.objects.filter(bot=again)
    assert set(reused.values_list("llm_call", "cost_usd", "prompt_tokens")) == {("REUSED", 0, 0)}
