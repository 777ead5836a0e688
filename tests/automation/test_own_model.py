"""Bring your own model (issue 19): a bot switched to its owner's model connection runs its cycle through it,
with the real OpenAI SDK against the OpenAI-compatible stand-in on 127.0.0.1 (a local model server as a
self-hoster runs one); the call is recorded with its tokens, its cost from the operator's table of prices
and whose key paid, and is not counted against the plan's monthly LLM spend."""

import html
import json
from decimal import Decimal

import pytest
from cryptography.fernet import Fernet
from django.urls import reverse

from accounts.models import ModelConnection, Plan
from automation.cycle import Outside, run_cycle
from automation.models import Bot, ModelPrice
from automation.quotas import spent_this_month
from learning.models import AILearningData
from tests.api.conftest import client_of
from tests.automation.test_cycle import HOUR, SLOT, _candles  # noqa: F401 (a fixture)
from tests.factories import BotFactory
from tests.learning.test_prompt_reaches_the_model import ANSWER
from tests.stand_ins.openai_server import OpenAIStandIn, Reply

pytestmark = pytest.mark.usefixtures("_candles")

USER_KEY = "sk-alice-own-key-0c81f2b7d5"
OPERATOR_KEY = "sk-operator-key-never-sent"
MODEL = "llava:13b"
CHART = Outside(chart=lambda *a: b"\x89PNG the chart")


@pytest.fixture
def operator_openai(settings, openai_stand_in):
    """The operator's OpenAI analyst on a server of its own (another stand-in), so that a request that went
    to the wrong server, or with the wrong key, shows."""
    operators = OpenAIStandIn().start()
    settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = OPERATOR_KEY, operators.base_url
    settings.OPENAI_MAX_RETRIES = 0
    yield operators
    operators.stop()


def add_connection(client, **fields) -> ModelConnection:
    """A connection added as the user adds one: on Settings → Models."""
    response = client.post(reverse("model_connections"), fields)
    assert response.status_code == 302, response.content.decode()[-2000:]
    return ModelConnection.objects.get(label=fields["label"])


def test_a_bot_switched_to_its_owners_model_runs_its_cycle_through_it(
    alice, client, openai_stand_in, operator_openai
):
    alice.plan = Plan.objects.create(name="No spend", monthly_llm_usd=Decimal(0))
    alice.save()
    client.force_login(alice)
    connection = add_connection(
        client, label="Ollama on the desk", base_url=openai_stand_in.base_url, api_key=USER_KEY
    )
    # The operator prices the model in the admin's table; the call's cost comes from that row.
    ModelPrice.objects.create(model=MODEL, input_usd_per_mtok=Decimal(1), output_usd_per_mtok=Decimal(3))
    bot = BotFactory(owner=alice, exchange="sample", symbol="EUR/USD", analyst=Bot.Analyst.OPENAI)
    switched = client_of(alice).patch(
        f"/api/v1/bots/{bot.pk}/",
        {"analyst": "OWN_MODEL", "model_connection": connection.pk, "model_name": MODEL},
        format="json",
    )
    assert switched.status_code == 200, switched.json()
    assert (switched.json()["analyst"], switched.json()["model_name"]) == ("OWN_MODEL", MODEL)
    openai_stand_in.add_content(json.dumps(ANSWER), prompt_tokens=2000, completion_tokens=500)

    run = run_cycle(bot.pk, SLOT, CHART, on_schedule=False)

    # Run, not skipped: the plan allows the operator's key nothing this month, and this call is not on it.
    assert run.status == "SUCCEEDED", run.error
    [sent] = openai_stand_in.requests
    assert sent.headers["authorization"] == f"Bearer {USER_KEY}"
    assert sent.body["model"] == MODEL
    assert sent.body["messages"][1]["content"][1]["type"] == "image_url"  # a vision model sees the chart
    assert operator_openai.requests == []
    record = AILearningData.objects.get(cycle_run=run)
    assert (record.analyst, record.model_name) == ("openai", f"{MODEL}-2024-07-18")
    assert (record.billed_to, record.model_connection) == ("OWNER", connection)
    assert (record.prompt_tokens, record.completion_tokens) == (2000, 500)
    assert record.cost_usd == Decimal("0.003500")  # 2000 * 1 / 1e6 + 500 * 3 / 1e6
    assert spent_this_month(alice, record.created_at) == 0

    page = html.unescape(client.get(reverse("analysis_detail", args=[record.pk])).content.decode())
    assert f"openai ({MODEL}-2024-07-18) on your model connection “Ollama on the desk”" in page
    assert "on your own key: not counted in your plan's monthly LLM spend" in page
    bot_page = html.unescape(client.get(bot.get_absolute_url()).content.decode())
    assert f'Your own model: {MODEL} on <a href="{reverse("model_connections")}">Ollama on the desk</a>' in (
        bot_page
    )
    api_record = client_of(alice).get(f"/api/v1/analyses/{record.pk}/").json()
    assert (api_record["billed_to"], api_record["model_connection"]) == ("OWNER", connection.pk)
    assert USER_KEY not in page + bot_page + json.dumps(api_record)

    # The same bot back on the operator's model: the plan's spend cap binds it, before anything is sent.
    client_of(alice).patch(f"/api/v1/bots/{bot.pk}/", {"analyst": "OPENAI"}, format="json")
    bot.refresh_from_db()
    assert (bot.model_connection, bot.model_name) == (None, "")
    skipped = run_cycle(bot.pk, SLOT + HOUR, CHART, on_schedule=False)
    assert skipped.status == "SKIPPED" and "reached the plan's cap of US$ 0.00" in skipped.error
    assert operator_openai.requests == [] and len(openai_stand_in.requests) == 1


def test_a_model_the_table_does_not_list_is_priced_by_the_settings(alice, client, openai_stand_in, settings):
    settings.OPENAI_INPUT_USD_PER_MTOK, settings.OPENAI_OUTPUT_USD_PER_MTOK = 2.0, 4.0
    client.force_login(alice)
    connection = add_connection(client, label="vLLM", base_url=openai_stand_in.base_url)  # no key
    bot = BotFactory(
        owner=alice, exchange="sample", symbol="EUR/USD", analyst=Bot.Analyst.OWN_MODEL,
        model_connection=connection, model_name="Qwen/Qwen2.5-VL-7B-Instruct",
    )  # fmt: skip
    openai_stand_in.add_content(json.dumps(ANSWER), prompt_tokens=1000, completion_tokens=1000)

    run = run_cycle(bot.pk, SLOT, CHART, on_schedule=False)

    assert run.status == "SUCCEEDED", run.error
    [sent] = openai_stand_in.requests
    assert sent.headers["authorization"] == "Bearer no-key"  # the SDK insists on one; it reveals nothing
    assert AILearningData.objects.get(cycle_run=run).cost_usd == Decimal("0.006000")


def test_a_connection_the_operator_no_longer_allows_fails_the_run_and_is_not_called(
    alice, client, openai_stand_in, settings
):
    client.force_login(alice)
    connection = add_connection(client, label="local", base_url=openai_stand_in.base_url, api_key=USER_KEY)
    bot = BotFactory(
        owner=alice, exchange="sample", symbol="EUR/USD", analyst=Bot.Analyst.OWN_MODEL,
        model_connection=connection, model_name=MODEL,
    )  # fmt: skip
    settings.ALLOW_PRIVATE_MODEL_SERVERS = False  # checked again before the call, not only when saved

    run = run_cycle(bot.pk, SLOT, CHART, on_schedule=False)

    assert (run.status, run.failed_step) == ("FAILED", "analysis")
    assert "“local” cannot be called: The host 127.0.0.1 is on a private network" in run.error
    assert openai_stand_in.requests == []


def test_a_model_server_that_redirects_is_not_followed(alice, client, openai_stand_in):
    """The address a redirect names was never checked: it could be the metadata service. Here it is a second
    server on 127.0.0.1, which must count no request."""
    elsewhere = OpenAIStandIn().start()
    try:
        client.force_login(alice)
        connection = add_connection(
            client, label="moved", base_url=openai_stand_in.base_url, api_key=USER_KEY
        )
        bot = BotFactory(
            owner=alice, exchange="sample", symbol="EUR/USD", analyst=Bot.Analyst.OWN_MODEL,
            model_connection=connection, model_name=MODEL,
        )  # fmt: skip
        location = elsewhere.base_url + "/chat/completions"
        openai_stand_in.add(Reply(status=307, body={}, headers={"Location": location}))
        elsewhere.add_content(json.dumps(ANSWER))

        run = run_cycle(bot.pk, SLOT, CHART, on_schedule=False)

        assert (run.status, run.failed_step) == ("FAILED", "analysis")
        assert "HTTP 307" in run.error
        assert elsewhere.requests == []
    finally:
        elsewhere.stop()


def test_only_the_owners_connections_can_be_chosen(alice, charlie, client):
    theirs = ModelConnection.objects.create(
        owner=charlie, label="charlie's", base_url="http://127.0.0.1:1/v1"
    )
    bot = BotFactory(owner=alice, exchange="sample", symbol="EUR/USD")
    asked = {"analyst": "OWN_MODEL", "model_connection": theirs.pk, "model_name": MODEL}

    response = client_of(alice).patch(f"/api/v1/bots/{bot.pk}/", asked, format="json")

    assert response.status_code == 400
    assert "model_connection" in response.json()
    client.force_login(alice)
    form = client.get(reverse("bot_edit", args=[bot.pk])).context["form"]
    initial = {name: "" if value is None else value for name, value in form.initial.items()}
    page = client.post(reverse("bot_edit", args=[bot.pk]), {**initial, **asked})
    assert page.status_code == 200 and "model_connection" in page.context["form"].errors
    # Own model, but none chosen, or no model named: each a form error on its field.
    missing = client_of(alice).patch(f"/api/v1/bots/{bot.pk}/", {"analyst": "OWN_MODEL"}, format="json")
    assert set(missing.json()) == {"model_connection", "model_name"}
    bot.refresh_from_db()
    assert (bot.analyst, bot.model_connection) == ("TECHNICAL", None)


def test_a_key_that_no_longer_decrypts_fails_the_run_at_its_analysis(
    alice, client, openai_stand_in, settings
):
    """The encryption key it was stored under was dropped too early (docs/operations.md, key rotation): the
    run fails at its analysis, saying what to do, rather than escaping the cycle and staying RUNNING."""
    client.force_login(alice)
    connection = add_connection(client, label="lost", base_url=openai_stand_in.base_url, api_key=USER_KEY)
    bot = BotFactory(
        owner=alice, exchange="sample", symbol="EUR/USD", analyst=Bot.Analyst.OWN_MODEL,
        model_connection=connection, model_name=MODEL,
    )  # fmt: skip
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    run = run_cycle(bot.pk, SLOT, CHART, on_schedule=False)

    assert (run.status, run.failed_step) == ("FAILED", "analysis")
    assert "the key of the model connection “lost” cannot be read: enter it again" in run.error
    assert openai_stand_in.requests == []
