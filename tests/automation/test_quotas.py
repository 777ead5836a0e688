"""Quotas by plan on what a user's bots run (issue 15, finding 7): run-now per hour counted by user whatever
the bots' states (start → run-now → stop no longer sidesteps the running-bots cap), cycles a day, and the
monthly LLM spend, which stops the OpenAI analyst (against the OpenAI stand-in) before it is called. A cycle
past a cap is recorded SKIPPED with its reason; the dashboard says which cap and when it lifts."""

import html
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Plan
from automation.cycle import Outside, run_cycle
from automation.models import Bot, CycleRun, ModelPrice, RunNowRequest
from automation.replay import ReplaySpec, replay
from automation.run_now import bot_run_now
from automation.services import BotActionError, RunNowLimitError, bot_start, bot_stop
from learning.models import AILearningData
from tests.api.conftest import client_of
from tests.automation.test_cycle import HOUR, SLOT, FakeAnalyst, _candles, fakes  # noqa: F401 (a fixture)
from tests.factories import BotFactory
from tests.learning.test_prompt_reaches_the_model import ANSWER

# The shipped EUR/USD hours, as the market `sample`, loaded once for the module.
pytestmark = pytest.mark.usefixtures("_candles")

PAID_CALL = {"prompt_tokens": 1000, "completion_tokens": 100}


@pytest.fixture
def plan(alice):
    alice.plan = Plan.objects.create(
        name="Tight",
        max_running_bots=1,
        run_now_per_hour=3,
        cycles_per_day=2,
        monthly_llm_usd=Decimal("1.00"),
    )
    alice.save()
    return alice.plan


def text_of(response) -> str:
    return html.unescape(response.content.decode())


def paper_bot(owner, **fields) -> Bot:
    return BotFactory(owner=owner, exchange="sample", symbol="EUR/USD", timeframe="1h", **fields)


# --- run-now ------------------------------------------------------------------------------------------------
def test_start_run_now_stop_loops_are_refused_past_the_hourly_cap(alice, plan):
    """The finding: the running-bots cap (1 here) held, yet start → run-now → stop over bot after bot ran a
    cycle each. Run-now is now counted by user, whatever became of the bots."""
    bots = [paper_bot(alice, name=f"loop {i}") for i in range(5)]
    for bot in bots[:3]:
        bot_start(bot)
        bot_run_now(bot)  # in the test's transaction: queued on commit, never sent
        bot_stop(bot)
    bot_start(bots[3])
    with pytest.raises(RunNowLimitError, match=r"allows 3 run-now request\(s\) an hour") as refused:
        bot_run_now(bots[3])
    assert 3500 < refused.value.retry_after <= 3600
    assert RunNowRequest.objects.filter(user=alice).count() == 3
    # The running-bots cap still holds while the loop goes on.
    with pytest.raises(BotActionError, match="at most 1 bot"):
        bot_start(bots[4])

    # An hour later a place is free again.
    RunNowRequest.objects.update(at=timezone.now() - timedelta(hours=1, seconds=1))
    bot_run_now(bots[3])


def test_run_now_past_the_cap_is_a_429_in_the_api_and_a_message_on_the_page(alice, plan, client):
    bots = [paper_bot(alice, name=f"api {i}", status=Bot.Status.RUNNING) for i in range(4)]
    api = client_of(alice)
    for bot in bots[:3]:
        assert api.post(f"/api/v1/bots/{bot.pk}/run-now/").status_code == 200
    refused = api.post(f"/api/v1/bots/{bots[3].pk}/run-now/")
    assert refused.status_code == 429
    assert "allows 3 run-now request(s) an hour" in refused.json()["detail"]
    assert 0 < int(refused["Retry-After"]) <= 3600

    client.force_login(alice)
    page = client.post(reverse("bot_action", args=[bots[3].pk, "run-now"]), follow=True).content.decode()
    assert "allows 3 run-now request(s) an hour and they are used up" in page
    assert RunNowRequest.objects.filter(user=alice).count() == 3


# --- cycles a day -------------------------------------------------------------------------------------------
def test_a_cycle_past_the_daily_cap_is_skipped_with_its_reason_before_the_analyst(alice, plan):
    bot = paper_bot(alice, status=Bot.Status.RUNNING)
    analyst = FakeAnalyst(recommendation="HOLD")
    runs = [run_cycle(bot.pk, SLOT + i * HOUR, fakes(analyst=analyst)) for i in range(4)]
    assert [run.status for run in runs] == ["SUCCEEDED", "SUCCEEDED", "SKIPPED", "SKIPPED"]
    assert analyst.calls == 2
    tomorrow = (timezone.now().astimezone(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    assert runs[2].error == (
        f"skipped: the plan's 2 cycles a day are used up; cycles run again from {tomorrow} 00:00 UTC"
    )
    assert AILearningData.objects.filter(bot=bot).count() == 2

    # Another bot of hers shares the cap; another user's bots do not.
    assert run_cycle(paper_bot(alice).pk, SLOT, fakes()).status == "SKIPPED"

    # The runs of yesterday do not count.
    yesterday = timezone.now() - timedelta(days=1)
    CycleRun.objects.filter(status=CycleRun.Status.SUCCEEDED).update(created_at=yesterday)
    assert run_cycle(bot.pk, SLOT + 10 * HOUR, fakes(analyst=analyst)).status == "SUCCEEDED"


def test_the_dashboard_names_the_cap_and_the_bot_page_shows_the_skipped_runs_reason(alice, plan, client):
    bot = paper_bot(alice, status=Bot.Status.RUNNING)
    client.force_login(alice)
    assert "cycles a day are used up" not in client.get(reverse("dashboard")).content.decode()
    for i in range(3):
        run_cycle(bot.pk, SLOT + i * HOUR, fakes(analyst=FakeAnalyst(recommendation="HOLD")))
    tomorrow = (timezone.now().astimezone(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    dashboard = text_of(client.get(reverse("dashboard")))
    said = (
        f"Your plan's 2 cycles a day are used up: your bots' cycles are skipped until {tomorrow} 00:00 UTC."
    )
    assert said in dashboard
    page = text_of(client.get(bot.get_absolute_url()))
    assert "Skipped" in page and "skipped: the plan's 2 cycles a day are used up" in page


# --- the monthly LLM spend ----------------------------------------------------------------------------------
@pytest.fixture
def openai(openai_stand_in, settings):
    """The OpenAI analyst against the stand-in, at prices (the operator's, in the table of prices) that make
    each call cost US$ 0.70."""
    settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "sk-test", openai_stand_in.base_url
    settings.OPENAI_MAX_RETRIES = 0
    # update_or_create, not update: a test that commits (transactional_db) flushes the seeded rows.
    ModelPrice.objects.update_or_create(
        model=settings.OPENAI_MODEL,
        defaults={"input_usd_per_mtok": Decimal(600), "output_usd_per_mtok": Decimal(1000)},
    )
    for _ in range(5):
        openai_stand_in.add_content(json.dumps(ANSWER), **PAID_CALL)
    return openai_stand_in


def test_an_openai_cycle_after_the_months_spend_reached_the_cap_is_skipped_and_not_sent(
    alice, plan, openai, client
):
    plan.cycles_per_day = 100
    plan.save()
    bot = paper_bot(alice, analyst=Bot.Analyst.OPENAI, status=Bot.Status.RUNNING)
    outside = Outside(chart=lambda *a: b"\x89PNG fake")
    runs = [run_cycle(bot.pk, SLOT + i * HOUR, outside) for i in range(3)]
    # 0.70, then 1.40 (over the 1.00 cap: a call under the cap is made whole), then nothing.
    assert [run.status for run in runs] == ["SUCCEEDED", "SUCCEEDED", "SKIPPED"]
    assert len(openai.requests) == 2
    first_of_next_month = (timezone.now().astimezone(UTC).replace(day=1) + timedelta(days=32)).replace(day=1)
    assert runs[2].error == (
        "skipped: LLM spend this month US$ 1.40 reached the plan's cap of US$ 1.00; resumes "
        f"{first_of_next_month:%Y-%m-%d} 00:00 UTC"
    )
    client.force_login(alice)
    assert runs[2].error in text_of(client.get(bot.get_absolute_url()))  # whole, not cut short
    # The technical analyst costs nothing and runs on.
    assert run_cycle(paper_bot(alice).pk, SLOT, fakes()).status == "SUCCEEDED"
    assert "This month's LLM spend (US$ 1.40) reached your plan's cap of US$ 1.00" in text_of(
        client.get(reverse("dashboard"))
    )

    # Spent last month: not counted in this one.
    last_month = timezone.now().astimezone(UTC).replace(day=1) - timedelta(days=1)
    AILearningData.objects.filter(user=alice).update(created_at=last_month)
    assert run_cycle(bot.pk, SLOT + 5 * HOUR, outside).status == "SUCCEEDED"
    assert len(openai.requests) == 3


@pytest.mark.django_db
def test_a_replay_with_the_openai_analyst_stops_at_the_spend_cap_and_ignores_the_daily_cap(openai, settings):
    """The replay account has no plan: the settings' defaults. Its technical-analyst replays run thousands
    of cycles a day, so the daily cap is not applied to a replay; a paid one is held to the spend cap."""
    settings.DEFAULT_MONTHLY_LLM_USD = Decimal("1.00")
    settings.DEFAULT_CYCLES_PER_DAY = 1
    start = datetime(2017, 12, 4, 10, tzinfo=UTC)
    bot = replay(ReplaySpec("sample", "EUR/USD", "1h", "openai", start=start, end=start + 4 * HOUR))
    statuses = list(CycleRun.objects.filter(bot=bot).order_by("slot").values_list("status", "error"))
    assert [status for status, _ in statuses] == ["SUCCEEDED", "SUCCEEDED", "SKIPPED", "SKIPPED", "SKIPPED"]
    assert "reached the plan's cap of US$ 1.00" in statuses[2][1]
    assert len(openai.requests) == 2

    technical = replay(ReplaySpec("sample", "EUR/USD", "1h", start=start, end=start + 4 * HOUR))
    assert set(CycleRun.objects.filter(bot=technical).values_list("status", flat=True)) == {"SUCCEEDED"}
