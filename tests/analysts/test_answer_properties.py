"""The model's answer under generated input (docs/security.md, "Bad input"): whatever content the model sends,
the OpenAI analyst returns an Analysis that keeps the schema's promises or raises AnalystInvalidOutputError,
never another exception; and the level check turns any valid Analysis into one that can be traded as stated,
or into a HOLD.

The answer is parsed inside the SDK (`chat.completions.parse`), so it goes through the real SDK over HTTP to
the local stand-in, as in test_openai_analyst.py."""

import json
import math
from collections.abc import Iterator

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from automation.analysts.base import AnalystInvalidOutputError
from automation.analysts.consistency import enforce_consistent_levels, level_problem
from automation.analysts.openai_analyst import OpenAIAnalyst
from automation.analysts.schema import Analysis
from tests.analysts.test_openai_analyst import API_KEY, MODEL, REQUEST
from tests.stand_ins.openai_server import OpenAIStandIn

# Derandomized, so that CI sees the same cases on every run; raise max_examples locally to explore further.
PROPERTY = settings(derandomize=True, database=None, max_examples=200)
FIELDS = tuple(Analysis.model_fields)
SENTIMENTS = ("BULLISH", "BEARISH", "NEUTRAL")
RECOMMENDATIONS = ("BUY", "SELL", "HOLD")
PRICES = ("entry", "stop_loss", "take_profit", "predicted_price")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
positive_prices = st.floats(min_value=0, exclude_min=True, allow_infinity=False)
levels = st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=4)
valid_answers = st.fixed_dictionaries(
    {
        "summary": st.text(),
        "market_sentiment": st.sampled_from(SENTIMENTS),
        "key_levels": st.fixed_dictionaries({"support": levels, "resistance": levels}),
        "recommendation": st.sampled_from(RECOMMENDATIONS),
        "confidence": st.integers(min_value=0, max_value=100),
        "reasoning": st.text(),
        **{name: st.none() | positive_prices for name in PRICES},
        "horizon": st.integers(min_value=1, max_value=500),
    }
)
# Values a model gets wrong: out of range, of the wrong type or case, numbers as strings, and numbers JSON
# has no word for (json.dumps writes them as NaN and Infinity, which the SDK's parser reads).
wrong_values = json_values | st.sampled_from(
    [
        None,
        "",
        "buy",
        "MAYBE",
        -1,
        0,
        101,
        501,
        10**30,
        -(10**30),
        1e308,
        "50",
        50.5,
        math.nan,
        math.inf,
        -math.inf,
    ]
)


@st.composite
def broken_answers(draw) -> tuple[dict, set[str]]:
    """A valid answer with some fields dropped, some given wrong values and perhaps fields added; with the
    names that must be in the error (dropped and added ones: every field is required, no other allowed)."""
    answer = draw(valid_answers)
    must_name = set()
    for name in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True)):
        if draw(st.booleans()):
            del answer[name]
            must_name.add(name)
        elif name == "key_levels":
            answer[name] = {"support": draw(wrong_values), "resistance": draw(wrong_values)}
        else:
            answer[name] = draw(wrong_values)
    extra = draw(
        st.dictionaries(st.text(min_size=1, max_size=8).filter(lambda k: k not in FIELDS), json_values)
    )
    return {**answer, **extra}, must_name | set(extra)


@pytest.fixture(scope="module")
def ask() -> Iterator:
    """Ask the analyst once with the model answering `content`: the Analysis, or the invalid-answer error.
    Module-wide, as hypothesis runs many examples in one test; no retries, so each example is one request."""
    stand_in = OpenAIStandIn().start()
    client = openai.OpenAI(api_key=API_KEY, base_url=stand_in.base_url, timeout=5.0, max_retries=0)
    analyst = OpenAIAnalyst(client=client, model=MODEL)

    def ask(content: str) -> Analysis | AnalystInvalidOutputError:
        stand_in.add_content(content)
        try:
            return analyst.analyse(REQUEST).analysis
        except AnalystInvalidOutputError as error:
            return error

    yield ask
    client.close()
    stand_in.stop()


def assert_keeps_the_schema(analysis: Analysis) -> None:
    assert analysis.market_sentiment in SENTIMENTS
    assert analysis.recommendation in RECOMMENDATIONS
    assert type(analysis.confidence) is int and 0 <= analysis.confidence <= 100
    assert type(analysis.horizon) is int and 1 <= analysis.horizon <= 500
    for name in PRICES:
        price = getattr(analysis, name)
        assert price is None or (math.isfinite(price) and price > 0), name
    assert all(math.isfinite(level) for level in analysis.key_levels.support + analysis.key_levels.resistance)
    assert isinstance(analysis.summary, str) and isinstance(analysis.reasoning, str)
    # What the cycle records (model_dump into a JSON column) reads back as the same analysis.
    assert Analysis.model_validate_json(analysis.model_dump_json()) == analysis


@PROPERTY
@given(st.text() | json_values.map(json.dumps))
def test_any_content_is_a_valid_analysis_or_an_invalid_answer(ask, content):
    answer = ask(content)
    if isinstance(answer, Analysis):
        assert_keeps_the_schema(answer)


@PROPERTY
@given(broken_answers())
def test_a_broken_answer_is_a_valid_analysis_or_an_invalid_answer_naming_the_fields(ask, broken):
    answer, must_name = broken
    result = ask(json.dumps(answer))
    if isinstance(result, Analysis):
        assert not must_name
        assert_keeps_the_schema(result)
    else:
        assert all(name in str(result) for name in must_name), str(result)


@PROPERTY
@given(
    valid_answers,
    st.sampled_from(["confidence", "horizon", *PRICES, "support", "resistance"]),
    st.floats() | st.integers() | st.sampled_from([10**400, -(10**400), 2**63, 0.5, -0.0]),
)
def test_a_number_is_kept_only_within_its_range_and_finite(ask, answer, field, number):
    if field in ("support", "resistance"):
        answer["key_levels"][field] = [number]
    else:
        answer[field] = number
    result = ask(json.dumps(answer))
    if isinstance(result, Analysis):
        assert_keeps_the_schema(result)
    else:
        assert field in str(result), str(result)


@PROPERTY
@given(valid_answers)
def test_a_valid_answer_is_read_as_sent(ask, answer):
    assert ask(json.dumps(answer)) == Analysis.model_validate(answer)


@st.composite
def analyses(draw) -> Analysis:
    """Valid analyses whose entry, stop-loss and take-profit are often in one order or another of three
    prices, so that consistent and inconsistent levels both come up."""
    answer = draw(valid_answers)
    prices = draw(st.permutations(sorted(draw(st.lists(positive_prices, min_size=3, max_size=3)))))
    for name, price in zip(("entry", "stop_loss", "take_profit"), prices, strict=True):
        answer[name] = draw(st.just(price) | st.none() | positive_prices)
    return Analysis.model_validate(answer)


@settings(PROPERTY, max_examples=1000)
@given(analyses())
def test_levels_that_contradict_the_recommendation_turn_it_into_hold(analysis):
    traded, problem = enforce_consistent_levels(analysis)

    if problem is None:
        assert traded == analysis
        entry, stop, target = analysis.entry, analysis.stop_loss, analysis.take_profit
        if analysis.recommendation == "BUY":
            assert stop < entry < target
        elif analysis.recommendation == "SELL":
            assert target < entry < stop
    else:
        assert problem.startswith(analysis.recommendation)
        assert analysis.recommendation != "HOLD"
        assert traded.model_dump() == {**analysis.model_dump(), "recommendation": "HOLD"}
    assert level_problem(traded) is None
