"""The OpenAI analyst with the real SDK over real HTTP, against the local stand-in server: what is sent, how
answers are read, and how every failure is classified."""

import base64
import json
import math
from collections.abc import Callable, Iterator
from decimal import Decimal

import openai
import pytest

from automation.analysts.base import (
    AnalysisRequest,
    AnalystConfigurationError,
    AnalystInvalidOutputError,
    AnalystRefusedError,
    AnalystTemporaryError,
)
from automation.analysts.openai_analyst import OpenAIAnalyst
from automation.analysts.pricing import Price
from automation.analysts.prompt import build_prompt
from automation.analysts.schema import Analysis
from automation.analysts.service import get_analyst
from automation.models import ModelPrice
from learning.prompt import SYSTEM
from market.indicators import Indicators
from market.sources import Market
from tests.stand_ins.openai_server import OpenAIStandIn, Reply

API_KEY = "test-key"
MODEL = "gpt-4o-mini"
TIMEOUT = 1.0
MAX_RETRIES = 2
# A 1x1 grey-and-alpha PNG: the smallest image that is really a PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
INDICATORS = Indicators(
    time="2025-07-18T14:00:00+00:00",
    close=64250.5,
    rsi=58.3,
    macd=112.4,
    macd_signal=95.1,
    macd_hist=17.3,
    ema20=63980.2,
    ema50=63410.7,
    ema200=61200.0,
    atr=410.6,
    bb_upper=64900.0,
    bb_middle=63950.0,
    bb_lower=63000.0,
    volume_z=1.2,
    support=(63800.0, 63100.0),
    resistance=(64800.0, 65500.0),
    adx=27.4,
    regime="TREND_LOW_VOL",
)
REQUEST = AnalysisRequest(
    market=Market("binance", "BTC/USDT", "1h"),
    indicators=INDICATORS,
    chart_png=PNG,
    insights="BUY calls in a trend with RSI under 65 worked 7 times out of 10.",
)
ANSWER = {
    "summary": "Price holds above a rising EMA20 after a breakout.",
    "market_sentiment": "BULLISH",
    "key_levels": {"support": [63800.0, 63100.0], "resistance": [64800.0, 65500.0]},
    "recommendation": "BUY",
    "confidence": 64,
    "reasoning": "Trend, EMA stack and MACD agree; RSI leaves room.",
    "entry": 64250.5,
    "stop_loss": 63634.6,
    "take_profit": 65482.3,
    "predicted_price": 65400.0,
    "horizon": 10,
}


@pytest.fixture
def make_client(openai_stand_in: OpenAIStandIn) -> Iterator[Callable[..., openai.OpenAI]]:
    """Real SDK clients pointed at the stand-in, with a short timeout so that timeouts cost little."""
    clients: list[openai.OpenAI] = []

    def make(**overrides) -> openai.OpenAI:
        options = {"timeout": TIMEOUT, "max_retries": MAX_RETRIES, **overrides}
        clients.append(openai.OpenAI(api_key=API_KEY, base_url=openai_stand_in.base_url, **options))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def analyst(make_client) -> OpenAIAnalyst:
    return OpenAIAnalyst(client=make_client(), model=MODEL)


def test_sends_prompt_chart_and_strict_schema_and_reads_the_answer(make_client, openai_stand_in):
    analyst = OpenAIAnalyst(client=make_client(), model=MODEL, price=Price(Decimal("2.5"), Decimal("10")))
    openai_stand_in.add_content(json.dumps(ANSWER), prompt_tokens=1234, completion_tokens=567)

    result = analyst.analyse(REQUEST)

    assert result.analysis == Analysis(**ANSWER)
    assert result.analyst == "openai"
    assert result.model_name == "gpt-4o-mini-2024-07-18"  # the snapshot that answered, not the alias asked
    assert result.prompt == build_prompt(REQUEST)
    assert (result.prompt_tokens, result.completion_tokens) == (1234, 567)
    # 1234 * 2.5 / 1e6 + 567 * 10 / 1e6
    assert result.cost_usd == Decimal("0.008755")

    [sent] = openai_stand_in.requests
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.body["model"] == MODEL
    system, user = sent.body["messages"]
    assert system == {"role": "system", "content": SYSTEM}
    text, image = user["content"]
    assert text == {"type": "text", "text": result.prompt}
    assert "BTC/USDT on binance" in text["text"]
    assert "worked 7 times out of 10" in text["text"]
    assert image["type"] == "image_url"
    prefix, encoded = image["image_url"]["url"].split(",", 1)
    assert prefix == "data:image/png;base64"
    assert base64.b64decode(encoded) == PNG
    response_format = sent.body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    assert response_format["json_schema"]["name"] == "Analysis"
    schema = response_format["json_schema"]["schema"]
    assert set(schema["required"]) == set(Analysis.model_fields)
    assert schema["additionalProperties"] is False


def test_rate_limit_is_retried_by_the_sdk(analyst, openai_stand_in):
    openai_stand_in.add_error(429)
    openai_stand_in.add_error(429)
    openai_stand_in.add_content(json.dumps(ANSWER))

    result = analyst.analyse(REQUEST)

    assert result.analysis.recommendation == "BUY"
    assert len(openai_stand_in.requests) == 3


@pytest.mark.parametrize("status", [429, 500, 503])
def test_errors_on_every_attempt_are_temporary(analyst, openai_stand_in, status):
    for _ in range(1 + MAX_RETRIES):
        openai_stand_in.add_error(status)

    with pytest.raises(AnalystTemporaryError, match=f"HTTP {status}"):
        analyst.analyse(REQUEST)

    assert len(openai_stand_in.requests) == 1 + MAX_RETRIES


def test_timeout_is_retried_then_temporary(make_client, openai_stand_in):
    # A shorter timeout and a single retry than the other tests: each attempt costs the whole timeout.
    client = make_client(timeout=0.3, max_retries=1)
    openai_stand_in.add_delay(5, json.dumps(ANSWER))
    openai_stand_in.add_delay(5, json.dumps(ANSWER))

    with pytest.raises(AnalystTemporaryError, match="APITimeoutError") as caught:
        OpenAIAnalyst(client=client, model=MODEL).analyse(REQUEST)

    assert isinstance(caught.value.__cause__, openai.APITimeoutError)
    assert len(openai_stand_in.requests) == 2


def test_refusal(analyst, openai_stand_in):
    openai_stand_in.add_refusal("I can't give trading advice.")

    with pytest.raises(AnalystRefusedError, match=r"I can't give trading advice\."):
        analyst.analyse(REQUEST)


def test_content_filter_is_a_refusal(analyst, openai_stand_in):
    openai_stand_in.add_content("", finish_reason="content_filter")

    with pytest.raises(AnalystRefusedError, match="content filter"):
        analyst.analyse(REQUEST)


def test_content_that_is_not_json_is_invalid_and_not_retried(analyst, openai_stand_in):
    openai_stand_in.add_content("The chart looks bullish to me.")

    with pytest.raises(AnalystInvalidOutputError, match="Invalid JSON"):
        analyst.analyse(REQUEST)

    assert len(openai_stand_in.requests) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"confidence": 150}, "confidence"),
        ({"horizon": None}, "horizon"),
        ({"recommendation": "MAYBE"}, "recommendation"),
        ({"stop_loss": -1.0}, "stop_loss"),
        # json.dumps writes NaN and Infinity, which the SDK's parser reads: a BUY at NaN used to pass the
        # level check (found by test_answer_properties.py).
        ({"entry": math.nan}, "entry"),
        ({"key_levels": {"support": [math.inf], "resistance": []}}, "key_levels"),
    ],
)
def test_content_against_the_schema_is_invalid(analyst, openai_stand_in, change, field):
    answer = {**ANSWER, **change}
    if answer[field] is None:
        del answer[field]  # a missing field
    openai_stand_in.add_content(json.dumps(answer))

    with pytest.raises(AnalystInvalidOutputError, match=field):
        analyst.analyse(REQUEST)


def test_empty_content_is_invalid(analyst, openai_stand_in):
    openai_stand_in.add_content("")

    with pytest.raises(AnalystInvalidOutputError, match="no content"):
        analyst.analyse(REQUEST)


def test_no_choices_is_invalid(analyst, openai_stand_in):
    # Some OpenAI-compatible servers answer an empty list rather than an error.
    openai_stand_in.add(Reply(body={**openai_stand_in.completion(MODEL, Reply()), "choices": []}))

    with pytest.raises(AnalystInvalidOutputError, match="no choices"):
        analyst.analyse(REQUEST)


def test_answer_cut_off_at_the_token_limit_is_invalid(analyst, openai_stand_in):
    openai_stand_in.add_content(json.dumps(ANSWER)[:40], finish_reason="length")

    with pytest.raises(AnalystInvalidOutputError, match="LengthFinishReasonError"):
        analyst.analyse(REQUEST)


@pytest.mark.parametrize(
    ("status", "code"), [(401, "invalid_api_key"), (404, "model_not_found"), (400, None)]
)
def test_rejected_request_needs_a_human_and_never_shows_the_key(analyst, openai_stand_in, status, code):
    # OpenAI's own 401 message quotes the key it was given.
    openai_stand_in.add_error(status, message=f"Incorrect API key provided: {API_KEY}. Find yours at ...")

    with pytest.raises(AnalystConfigurationError, match=f"HTTP {status}") as caught:
        analyst.analyse(REQUEST)

    assert API_KEY not in str(caught.value)
    assert MODEL in str(caught.value)
    assert code is None or code in str(caught.value)
    assert len(openai_stand_in.requests) == 1  # not retried


def test_no_key_configured(settings):
    settings.OPENAI_API_KEY = ""

    with pytest.raises(AnalystConfigurationError, match="OPENAI_API_KEY"):
        OpenAIAnalyst()


def test_client_built_from_settings(openai_stand_in, settings, db):
    settings.OPENAI_API_KEY = "settings-key"
    settings.OPENAI_BASE_URL = openai_stand_in.base_url
    settings.OPENAI_MODEL = "gpt-4.1-mini"
    settings.OPENAI_TIMEOUT_SECONDS = TIMEOUT
    settings.OPENAI_MAX_RETRIES = 0
    openai_stand_in.add_error(500)

    # The operator's table's row (seeded by a migration; written here, since a committing test flushes it).
    prices = {"input_usd_per_mtok": Decimal("0.40"), "output_usd_per_mtok": Decimal("1.60")}
    ModelPrice.objects.update_or_create(model="gpt-4.1-mini", defaults=prices)

    analyst = get_analyst("openai")
    assert analyst.price == Price(Decimal("0.40"), Decimal("1.60"))
    assert analyst.billed_to == "operator"
    with pytest.raises(AnalystTemporaryError):
        analyst.analyse(REQUEST)
    analyst.client.close()

    [sent] = openai_stand_in.requests  # max_retries from settings: no retry
    assert sent.headers["authorization"] == "Bearer settings-key"
    assert sent.body["model"] == "gpt-4.1-mini"
