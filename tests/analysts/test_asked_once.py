"""Identical analyst requests asked once (automation/analysts/asked_once.py), with the real SDK over real HTTP
against the stand-in: many threads asking the same thing make one call, the first analysis to take the
answer pays for it and the others record that they reused it; a claim given back, held past its deadline or
left by a dead worker never keeps anyone waiting past their own deadline; requests billed to different
accounts never share."""

import json
import threading
import time
from datetime import timedelta

import openai
import pytest
from django.db import connection
from django.utils import timezone

from automation.analysis import within
from automation.analysts.asked_once import ask_once, request_key
from automation.analysts.base import AnalystDeadlineError, AnalystTemporaryError
from automation.analysts.openai_analyst import OpenAIAnalyst
from automation.analysts.service import analyse
from learning.models import AnalystAnswer
from tests.stand_ins.openai_server import OpenAIStandIn, Reply

from .test_openai_analyst import ANSWER, PNG, REQUEST

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client(openai_stand_in: OpenAIStandIn):
    client = openai.OpenAI(api_key="sk-test", base_url=openai_stand_in.base_url, max_retries=0, timeout=10)
    yield client
    client.close()


def bound(seconds, call):
    return within(seconds, AnalystDeadlineError, call)


def in_threads(count: int, fn) -> list:
    """`fn()` in `count` threads started together; each one's result or exception, in order."""
    outcomes: list = [None] * count
    start = threading.Barrier(count)

    def run(i: int) -> None:
        start.wait()
        try:
            outcomes[i] = fn()
        except Exception as e:
            outcomes[i] = e
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_identical_requests_are_asked_once_the_first_pays_and_the_others_reuse(client, openai_stand_in):
    answer = Reply(content=json.dumps(ANSWER), prompt_tokens=1000, completion_tokens=200, delay=0.5)
    openai_stand_in.add(answer)
    analyst = OpenAIAnalyst(client=client)

    results = in_threads(8, lambda: analyse(analyst, REQUEST, 10, bound))

    assert len(openai_stand_in.requests) == 1
    assert all(r.analysis.model_dump() == ANSWER for r in results), results
    [paid] = [r for r in results if r.call == "ASKED"]
    assert (paid.prompt_tokens, paid.completion_tokens, paid.cost_usd > 0) == (1000, 200, True)
    reused = [r for r in results if r.call == "REUSED"]
    assert len(reused) == 7
    assert {(r.prompt_tokens, r.completion_tokens, r.cost_usd) for r in reused} == {(0, 0, 0)}
    [answer] = AnalystAnswer.objects.all()
    assert (answer.status, answer.paid, answer.billed_to) == ("ANSWERED", True, "operator")
    assert {r.answer_id for r in results} == {answer.pk}


def test_a_stored_answer_is_taken_without_asking(client, openai_stand_in):
    openai_stand_in.add_content(json.dumps(ANSWER))
    analyst = OpenAIAnalyst(client=client)
    first = analyse(analyst, REQUEST, 10, bound)

    again = analyse(analyst, REQUEST, 10, bound)

    assert len(openai_stand_in.requests) == 1
    assert (first.call, again.call, again.cost_usd) == ("ASKED", "REUSED", 0)


def test_the_key_holds_who_pays_the_server_the_model_the_prompt_and_the_image(client):
    base = OpenAIAnalyst(client=client)
    key = request_key(base, REQUEST)
    other_client = openai.OpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1")
    changed = [
        request_key(OpenAIAnalyst(client=client, connection_id=7), REQUEST),
        request_key(OpenAIAnalyst(client=other_client), REQUEST),
        request_key(OpenAIAnalyst(client=client, model="gpt-4o"), REQUEST),
        request_key(base, REQUEST.__class__(**{**REQUEST.__dict__, "insights": "Something else."})),
        request_key(base, REQUEST.__class__(**{**REQUEST.__dict__, "chart_png": PNG + b"\0"})),
    ]
    other_client.close()
    assert len({key, *changed}) == 6
    assert request_key(OpenAIAnalyst(client=client), REQUEST) == key


def test_requests_billed_to_different_accounts_are_never_shared(client, openai_stand_in):
    for _ in range(2):
        openai_stand_in.add_content(json.dumps(ANSWER))

    results = [
        analyse(OpenAIAnalyst(client=client, connection_id=connection), REQUEST, 10, bound)
        for connection in (None, 7)  # the operator's key, then a user's own connection
    ]

    assert len(openai_stand_in.requests) == 2
    assert [r.call for r in results] == ["ASKED", "ASKED"]
    assert sorted(AnalystAnswer.objects.values_list("billed_to", flat=True)) == ["connection:7", "operator"]


def test_when_the_asker_fails_a_waiting_request_asks_for_itself(client, openai_stand_in):
    down = {"error": {"message": "down", "type": "server_error"}}
    openai_stand_in.add(Reply(status=500, body=down, delay=0.3))
    openai_stand_in.add_content(json.dumps(ANSWER))
    analyst = OpenAIAnalyst(client=client)

    outcomes = in_threads(2, lambda: analyse(analyst, REQUEST, 10, bound))

    assert len(openai_stand_in.requests) == 2
    assert sum(isinstance(o, AnalystTemporaryError) for o in outcomes) == 1
    [result] = [o for o in outcomes if not isinstance(o, Exception)]
    assert result.call == "ASKED"  # it paid for the call it made
    assert AnalystAnswer.objects.get().status == "ANSWERED"


def test_no_one_waits_past_their_deadline_for_a_call_that_hangs(client, openai_stand_in):
    openai_stand_in.add_delay(5, json.dumps(ANSWER))
    analyst = OpenAIAnalyst(client=client)
    started = time.monotonic()

    outcomes = in_threads(3, lambda: analyse(analyst, REQUEST, 1.0, bound))

    assert time.monotonic() - started < 3
    assert all(isinstance(o, AnalystDeadlineError) for o in outcomes), outcomes
    assert len(openai_stand_in.requests) == 1
    assert not AnalystAnswer.objects.exists()  # the claim was given back


def test_a_live_claim_of_another_worker_is_waited_for_until_the_deadline(client, openai_stand_in):
    """Another process's claim (a row this process has no flight for) is read again until it is answered or
    the deadline passes; no call is made beside it."""
    analyst = OpenAIAnalyst(client=client)
    key = request_key(analyst, REQUEST)
    AnalystAnswer.objects.create(key=key, billed_to="operator", claim="other", claimed_at=timezone.now())
    started = time.monotonic()

    with pytest.raises(AnalystDeadlineError):
        analyse(analyst, REQUEST, 0.5, bound)

    assert 0.5 <= time.monotonic() - started < 2
    assert openai_stand_in.requests == []


def test_the_answer_of_another_workers_claim_is_taken_when_it_comes(client, openai_stand_in):
    analyst = OpenAIAnalyst(client=client)
    key = request_key(analyst, REQUEST)
    AnalystAnswer.objects.create(key=key, billed_to="operator", claim="other", claimed_at=timezone.now())

    def answer_later():
        time.sleep(0.4)
        row = AnalystAnswer.objects.get(key=key)
        AnalystAnswer.objects.filter(pk=row.pk).update(
            status="ANSWERED",
            prompt_tokens=900,
            completion_tokens=100,
            cost_usd="0.000195",
            result={
                "analysis": ANSWER, "analyst": "openai", "model_name": "gpt-4o-mini-2024-07-18",
                "prompt": "p", "notes": {},
            },
        )  # fmt: skip
        connection.close()

    other = threading.Thread(target=answer_later)
    other.start()
    result = analyse(analyst, REQUEST, 5, bound)
    other.join()

    assert openai_stand_in.requests == []
    assert (result.call, result.prompt_tokens, str(result.cost_usd)) == ("ASKED", 900, "0.000195")


def test_a_dead_workers_claim_is_taken_over(client, openai_stand_in, settings):
    settings.ANALYST_DEADLINE_SECONDS = 30
    openai_stand_in.add_content(json.dumps(ANSWER))
    analyst = OpenAIAnalyst(client=client)
    key = request_key(analyst, REQUEST)
    long_ago = timezone.now() - timedelta(minutes=5)
    AnalystAnswer.objects.create(key=key, billed_to="operator", claim="dead", claimed_at=long_ago)

    result = analyse(analyst, REQUEST, 5, bound)

    assert len(openai_stand_in.requests) == 1
    assert result.call == "ASKED"
    assert AnalystAnswer.objects.get(key=key).status == "ANSWERED"


def test_an_analyst_that_asks_no_one_is_not_keyed(settings):
    from automation.analysts.technical import TechnicalAnalyst

    calls = []
    result = ask_once(TechnicalAnalyst(), REQUEST, lambda seconds: calls.append(seconds) or "answer", 3)

    assert (result, calls) == ("answer", [3])
    assert not AnalystAnswer.objects.exists()
