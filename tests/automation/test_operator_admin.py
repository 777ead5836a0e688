"""The operators' admin: failed runs, LLM cost per user and day, bot and trading actions, the kill switch,
recomputed insights, and learning data that can be looked at but not changed."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.urls import reverse

from accounts.models import ApiToken
from automation.models import AutomationSession, Bot, CycleRun, KillSwitch
from learning.admin import UserAdmin
from learning.models import AILearningData, InsightCounter, InsightSnapshot, PromptVersion
from market.importers import Bar, store_bars
from tests.factories import BotFactory, UserFactory, force_login_verified

DAY_1 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def operator_client(client, db):
    force_login_verified(client, UserFactory(email="ops@example.com", is_staff=True, is_superuser=True))
    return client


def messages_of(response) -> list[str]:
    return [m.message for m in response.context["messages"]]


def act(client, model: str, action: str, objects, **extra):
    """Run an admin action on `objects` from the model's changelist, as the action drop-down does."""
    return client.post(
        reverse(f"admin:{model}_changelist"),
        {"action": action, "_selected_action": [o.pk for o in objects], **extra},
        follow=True,
    )


def analysis(user, at: datetime, *, prompt=0, completion=0, cost="0", **fields) -> AILearningData:
    made = AILearningData.objects.create(
        user=user,
        analysis_data={},
        symbol="BTC/USDT",
        timeframe="1h",
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost_usd=Decimal(cost),
        analyst="OPENAI",
        model_name="gpt-4o-mini",
        **fields,
    )
    # created_at is auto_now_add: the day is set afterwards, as the cycle would have stamped it then.
    AILearningData.objects.filter(pk=made.pk).update(created_at=at)
    return made


# Failed runs


@pytest.fixture
def runs(alice_bot, charlie):
    charlie_bot = BotFactory(owner=charlie, name="Charlie's ETH bot")
    return {
        "timeout": CycleRun.objects.create(
            bot=alice_bot,
            slot=datetime(2025, 3, 3, 9, tzinfo=UTC),
            status=CycleRun.Status.FAILED,
            failed_step="analysis",
            error="AnalystTimeoutError: the analyst did not answer within 60 s\n  while reading the chart of "
            + "BTC/USDT " * 30,
        ),
        "chart": CycleRun.objects.create(
            bot=charlie_bot,
            slot=datetime(2025, 3, 3, 10, tzinfo=UTC),
            status=CycleRun.Status.FAILED,
            failed_step="chart",
            error="ChartError: no candles",
        ),
        "fine": CycleRun.objects.create(
            bot=alice_bot, slot=datetime(2025, 3, 3, 10, tzinfo=UTC), status=CycleRun.Status.SUCCEEDED
        ),
    }


def listed_runs(client, **query) -> set[int]:
    response = client.get(reverse("admin:automation_cyclerun_changelist"), query)
    assert response.status_code == 200
    return {run.pk for run in response.context["cl"].result_list}


def test_failed_runs_are_filtered_by_status_and_step_and_searched_by_bot_and_owner(operator_client, runs):
    failed = {runs["timeout"].pk, runs["chart"].pk}
    assert listed_runs(operator_client, status__exact="FAILED") == failed
    assert listed_runs(operator_client, failed_step="analysis") == {runs["timeout"].pk}
    assert listed_runs(operator_client, q="charlie@example.com") == {runs["chart"].pk}
    assert listed_runs(operator_client, q="Alice's BTC") == {runs["timeout"].pk, runs["fine"].pk}

    page = operator_client.get(reverse("admin:automation_cyclerun_changelist")).content.decode()
    # The step filter offers the steps runs failed in, not the blank of the runs that did not fail.
    assert "?failed_step=analysis" in page and "?failed_step=chart" in page
    assert "?failed_step=&" not in page and '?failed_step="' not in page
    # The column: the error's first line, cut short; never the rest.
    assert "AnalystTimeoutError: the analyst did not answer within 60 s" in page
    assert "while reading the chart" not in page


def test_a_failed_runs_page_shows_the_whole_error_and_cannot_be_changed(operator_client, runs):
    run = runs["timeout"]
    url = reverse("admin:automation_cyclerun_change", args=[run.pk])
    page = operator_client.get(url).content.decode()
    assert "while reading the chart of BTC/USDT" in page
    assert page.count("BTC/USDT") >= 30
    assert 'name="_save"' not in page

    assert operator_client.post(url, {"status": "SUCCEEDED"}).status_code == 403
    run.refresh_from_db()
    assert run.status == CycleRun.Status.FAILED
    assert operator_client.get(reverse("admin:automation_cyclerun_add")).status_code == 403
    assert operator_client.get(reverse("admin:automation_cyclerun_delete", args=[run.pk])).status_code == 403


# LLM tokens and cost per user and day


@pytest.fixture
def usage(alice, charlie):
    """Three analyses of Alice's on two UTC days (one a minute before midnight), one of Charlie's."""
    analysis(alice, DAY_1, prompt=1000, completion=200, cost="0.000270")
    analysis(alice, datetime(2025, 3, 3, 23, 59, tzinfo=UTC), prompt=1500, completion=300, cost="0.000405")
    analysis(alice, datetime(2025, 3, 4, 0, 1, tzinfo=UTC), prompt=2000, completion=100, cost="0.000360")
    analysis(charlie, datetime(2025, 3, 3, 12, 0, tzinfo=UTC), prompt=800, completion=50, cost="0.000150")


def usage_rows(client, **query) -> list[tuple]:
    response = client.get(reverse("admin:learning_ailearningdata_llm_usage"), query)
    assert response.status_code == 200
    return [
        (row["day"], row["user__email"], row["analyses"], row["prompt"], row["completion"], row["cost"])
        for row in response.context["cl"].result_list
    ]


def test_llm_tokens_and_cost_per_user_and_day(operator_client, usage):
    alice_day_2 = (date(2025, 3, 4), "alice@example.com", 1, 2000, 100, Decimal("0.000360"))
    alice_day_1 = (date(2025, 3, 3), "alice@example.com", 2, 2500, 500, Decimal("0.000675"))
    charlie_day_1 = (date(2025, 3, 3), "charlie@example.com", 1, 800, 50, Decimal("0.000150"))

    # Newest day first, users A to Z within a day.
    assert usage_rows(operator_client) == [alice_day_2, alice_day_1, charlie_day_1]
    assert usage_rows(operator_client, o="-cost") == [alice_day_1, alice_day_2, charlie_day_1]
    assert usage_rows(operator_client, o="analyses") == [alice_day_2, charlie_day_1, alice_day_1]
    assert usage_rows(operator_client, o="-prompt") == [alice_day_1, alice_day_2, charlie_day_1]
    assert usage_rows(operator_client, o="user")[-1] == charlie_day_1
    # The date hierarchy narrows to a day, the search to a user, the filters to an analyst.
    day_1 = {"created_at__year": 2025, "created_at__month": 3, "created_at__day": 3}
    assert usage_rows(operator_client, **day_1) == [alice_day_1, charlie_day_1]
    assert usage_rows(operator_client, q="charlie") == [charlie_day_1]
    assert usage_rows(operator_client, analyst__exact="TECHNICAL") == []


def test_the_usage_page_shows_totals_sort_links_and_the_analyses_behind_a_row(operator_client, usage, alice):
    url = reverse("admin:learning_ailearningdata_llm_usage")
    response = operator_client.get(url, {"created_at__year": 2025, "created_at__month": 3, "o": "-cost"})
    cl = response.context["cl"]
    assert cl.totals == {"analyses": 4, "prompt": 5300, "completion": 650, "cost": Decimal("0.001185")}
    page = response.content.decode()
    assert '<td class="field-cost">0.000675</td>' in page
    assert '<td class="field-prompt">5300</td>' in page and '<td class="field-cost">0.001185</td>' in page
    # Sorting keeps the date, and the date links keep the sort.
    assert "?created_at__month=3&amp;created_at__year=2025&amp;o=cost" in page
    assert "created_at__day=3&amp;created_at__month=3&amp;created_at__year=2025&amp;o=-cost" in page

    behind = cl.result_list[0]["analyses_url"]
    assert operator_client.get(behind).context["cl"].result_count == 2
    assert (
        reverse("admin:learning_ailearningdata_llm_usage")
        in operator_client.get(reverse("admin:learning_ailearningdata_changelist")).content.decode()
    )


def test_the_user_list_and_page_show_each_users_total_llm_cost(operator_client, usage, alice):
    url = reverse("admin:accounts_user_changelist")
    cost_column = UserAdmin.list_display.index("llm_cost") + 1  # after the action checkbox
    users = operator_client.get(url, {"o": f"-{cost_column}"}).context["cl"].result_list
    assert [(u.email, u.llm_cost) for u in users] == [
        ("alice@example.com", Decimal("0.001035")),
        ("charlie@example.com", Decimal("0.000150")),
        ("ops@example.com", Decimal("0")),
    ]
    page = operator_client.get(reverse("admin:accounts_user_change", args=[alice.pk])).content.decode()
    assert "3 analyses, 4500 prompt and 600 completion tokens, 0.001035 USD in all" in page
    per_day = usage_rows(operator_client, user__id__exact=alice.pk)
    assert [row[1] for row in per_day] == ["alice@example.com", "alice@example.com"]


# Bots


@pytest.fixture
def sample_market(db):
    store_bars("sample", "EUR/USD", "1h", [Bar(datetime(2024, 1, 1, tzinfo=UTC), 1, 1.1, 0.9, 1, 5)])


def test_resume_starts_paused_bots_again_and_reports_each_refusal(operator_client, alice, sample_market):
    paused = BotFactory(owner=alice, name="paper", exchange="sample", symbol="EUR/USD", status="PAUSED")
    gone = BotFactory(owner=alice, name="gone", exchange="nowhere", symbol="EUR/USD", status="PAUSED")
    stopped = BotFactory(owner=alice, name="stopped", exchange="sample", symbol="EUR/USD")

    said = messages_of(act(operator_client, "automation_bot", "resume_bots", [paused, gone, stopped]))

    assert said == [
        "“gone” (alice@example.com) was not resumed: 'nowhere' is not an exchange TradingAI can connect to.",
        "Resumed 1 bot(s): “paper” (alice@example.com).",
        "Not paused, left as they were: “stopped” (alice@example.com).",
    ]
    for bot in (paused, gone, stopped):
        bot.refresh_from_db()
    assert (paused.status, gone.status, stopped.status) == ("RUNNING", "PAUSED", "STOPPED")
    assert paused.sessions.get().is_open


def test_stop_stops_running_and_paused_bots_with_the_operators_name(operator_client, alice):
    running = BotFactory(owner=alice, name="running", status="RUNNING")
    session = AutomationSession.objects.create(bot=running)
    paused = BotFactory(owner=alice, name="paused", status="PAUSED")
    stopped = BotFactory(owner=alice, name="stopped")

    said = messages_of(act(operator_client, "automation_bot", "stop_bots", [running, paused, stopped]))

    assert said == [
        "Stopped 2 bot(s): “paused” (alice@example.com), “running” (alice@example.com).",
        "Already stopped: “stopped” (alice@example.com).",
    ]
    assert set(Bot.objects.values_list("status", flat=True)) == {"STOPPED"}
    session.refresh_from_db()
    assert session.stop_reason == "stopped by operator ops@example.com"


def test_bot_actions_need_the_change_permission(client, alice):
    viewer = UserFactory(email="viewer@example.com", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_bot"))
    force_login_verified(client, viewer)
    running = BotFactory(owner=alice, status="RUNNING")

    for action in ("pause_bots", "resume_bots", "stop_bots"):
        act(client, "automation_bot", action, [running])

    running.refresh_from_db()
    assert running.status == "RUNNING"


# The kill switch


def test_the_kill_switch_is_engaged_and_disengaged_with_a_reason_and_a_history(operator_client):
    flip = reverse("admin:automation_killswitch_flip")
    changelist = operator_client.get(reverse("admin:automation_killswitch_changelist")).content.decode()
    assert flip in changelist and "Engage the kill switch" in changelist

    refused = operator_client.post(flip, {"engage": "True", "reason": ""})
    assert refused.status_code == 200 and "This field is required." in refused.content.decode()
    assert not KillSwitch.is_engaged()

    engaged = operator_client.post(flip, {"engage": "True", "reason": "exchange outage"}, follow=True)
    assert messages_of(engaged) == ["Engaged the kill switch: no bot opens a trade until it is disengaged."]
    assert KillSwitch.is_engaged()
    assert KillSwitch.objects.get().reason == "exchange outage"
    assert "Disengage the kill switch" in engaged.content.decode()

    # The same page posted twice asks for the same state: it does not flip back.
    operator_client.post(flip, {"engage": "True", "reason": "exchange outage"})
    assert KillSwitch.is_engaged()

    operator_client.post(flip, {"engage": "False", "reason": "exchange back"})
    assert not KillSwitch.is_engaged()
    history = LogEntry.objects.filter(object_id=str(KillSwitch.objects.get().pk)).order_by("pk")
    assert [(e.user.email, e.change_message.rsplit("Reason: ", 1)[1]) for e in history] == [
        ("ops@example.com", "exchange outage"),
        ("ops@example.com", "exchange outage"),
        ("ops@example.com", "exchange back"),
    ]


def test_disengaging_clears_every_row_and_the_switch_cannot_be_edited_by_the_form(operator_client):
    first = KillSwitch.objects.create(engaged=True, reason="incident")
    KillSwitch.objects.create(engaged=True, reason="a stray second row")
    change = reverse("admin:automation_killswitch_change", args=[first.pk])
    assert operator_client.post(change, {"engaged": "", "reason": "quietly"}).status_code == 403
    assert KillSwitch.is_engaged()

    operator_client.post(reverse("admin:automation_killswitch_flip"), {"engage": "False", "reason": "over"})
    assert not KillSwitch.is_engaged()


def test_only_operators_allowed_to_change_the_switch_can_flip_it(client, db):
    viewer = UserFactory(email="viewer@example.com", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_killswitch"))
    force_login_verified(client, viewer)
    flip = reverse("admin:automation_killswitch_flip")
    assert flip not in client.get(reverse("admin:automation_killswitch_changelist")).content.decode()
    assert client.post(flip, {"engage": "True", "reason": "curious"}).status_code == 403
    assert not KillSwitch.is_engaged()


# Users: trading halted, insights recomputed


def test_halt_and_resume_a_users_trading(operator_client, alice, charlie):
    charlie.trading_halted = True
    charlie.save()

    said = messages_of(act(operator_client, "accounts_user", "halt_trading", [alice, charlie]))
    assert said == ["Halted trading of 1 user(s); 1 were already halted."]
    alice.refresh_from_db()
    assert alice.trading_halted
    assert LogEntry.objects.get(object_id=str(alice.pk)).change_message == "Halted trading."

    said = messages_of(act(operator_client, "accounts_user", "resume_trading", [alice, charlie]))
    assert said == ["Resumed trading of 2 user(s); 0 were already trading."]
    assert not type(alice).objects.filter(trading_halted=True).exists()


def test_recompute_insights_rebuilds_the_running_totals_and_stores_a_snapshot(
    operator_client, alice, charlie, alice_bot
):
    resolved = {"outcome": "WIN", "confidence_score": 80.0, "resolved_at": DAY_1, "bot": alice_bot}
    analysis(alice, DAY_1, **resolved)
    analysis(alice, DAY_1, **{**resolved, "outcome": "LOSS"})
    analysis(alice, DAY_1)  # not resolved yet
    InsightCounter.objects.all().delete()  # as after a bulk import that bypassed the cycle

    said = messages_of(act(operator_client, "accounts_user", "recompute_insights", [alice, charlie]))

    alice_counters = InsightCounter.objects.filter(user=alice).count()
    assert alice_counters > 0
    assert said == [
        f"Recomputed the insights of alice@example.com: {alice_counters} running total(s) from 3 analyses, "
        "2 resolved.",
        "Recomputed the insights of charlie@example.com: 0 running total(s) from 0 analyses, 0 resolved.",
    ]
    snapshot = InsightSnapshot.objects.get(user=alice, bot=None)
    assert (snapshot.resolved_count, snapshot.data["accuracy"]["hits"]) == (2, 1)
    assert InsightSnapshot.objects.filter(user=charlie).count() == 1


# Learning data and tokens: to be looked at only


@pytest.fixture
def learning_rows(alice):
    prompt = PromptVersion.objects.create(sha256="b" * 64, text="Analyse this chart")
    return [
        analysis(alice, DAY_1, prompt=10, recommendation="BUY", prompt_version=prompt),
        InsightSnapshot.objects.create(user=alice, data={"resolved": 0}),
        prompt,
    ]


def test_learning_data_has_no_form_that_can_save(operator_client, learning_rows):
    for row in learning_rows:
        opts = row._meta
        change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[row.pk])
        before = type(row).objects.filter(pk=row.pk).values().get()

        page = operator_client.get(change)
        assert page.status_code == 200, change
        assert 'name="_save"' not in page.content.decode(), change
        assert operator_client.post(change, {"symbol": "ETH/USDT", "text": "edited"}).status_code == 403
        assert type(row).objects.filter(pk=row.pk).values().get() == before

        add = reverse(f"admin:{opts.app_label}_{opts.model_name}_add")
        delete = reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[row.pk])
        assert operator_client.get(add).status_code == 403, add
        assert operator_client.post(delete, {"post": "yes"}).status_code == 403, delete
        changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        act(operator_client, f"{opts.app_label}_{opts.model_name}", "delete_selected", [row], post="yes")
        assert type(row).objects.filter(pk=row.pk).exists(), changelist


def test_api_tokens_are_listed_without_their_hash_and_cannot_be_edited(operator_client, alice):
    token, plain = ApiToken.issue(alice, "laptop")
    page = operator_client.get(reverse("admin:accounts_apitoken_change", args=[token.pk])).content.decode()
    assert f"tai_{token.hint}…" in page
    assert token.key_hash not in page and plain not in page
    assert 'name="_save"' not in page
