"""The audit log of live trading: each action recorded through the path a person or the platform takes (web
forms, the API, the services, a live cycle against the Binance stand-in, the monitor, the admin), in the
action's transaction; readable by its owner only (page and API) and by operators (admin), and by no one
changeable; never holding a secret."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import ProtectedError, RestrictedError
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts import audit
from accounts.audit import record
from accounts.models import AuditEvent, ExchangeAccount
from accounts.services import exchange_account_delete
from automation.cycle import Outside, run_cycle
from automation.models import AutomationSession, Bot
from automation.monitoring import monitor_running_bots
from automation.schedule import slot_of
from automation.services import bot_pause, bot_start, bot_stop
from tests.automation.test_bots import VALID
from tests.automation.test_cycle import FakeAnalyst
from tests.factories import BotFactory, ExchangeAccountFactory, UserFactory, force_login_verified
from trades.models import Trade

Action = AuditEvent.Action
API_KEY, SECRET, PASSPHRASE = (
    "AKIA-audit-key-5d4c3b2a1f0e",
    "audit-secret-never-shown-8e7d",
    "audit-passphrase-6c5b",
)


def logged(user=None) -> list[tuple[str, str]]:
    """(action, who) of the events, oldest first; of `user`'s account when given."""
    events = AuditEvent.objects.order_by("created_at", "pk")
    if user is not None:
        events = events.filter(user=user)
    return [(e.action, e.actor_kind) for e in events]


@pytest.fixture
def operator(db):
    return UserFactory(email="ops@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def operator_client(client, operator):
    force_login_verified(client, operator)
    return client


@pytest.fixture
def live_account(alice, alice_two_factor):
    """Alice's account for live bots (which need her second factor too)."""
    return ExchangeAccountFactory(
        owner=alice, label="Main", exchange="binance", api_key=API_KEY, secret=SECRET
    )


@pytest.fixture
def live_bot(alice, live_account, settings, exchange_stand_in):
    settings.LIVE_TRADING_ENABLED = True
    return BotFactory(
        owner=alice, name="Live BTC", mode=Bot.Mode.LIVE, live_confirmed=True, exchange_account=live_account
    )


def run_live(bot):
    """One live cycle now, as test_live_cycle runs it: the stop and target 5 % away, so both rest."""
    outside = Outside(analyst=FakeAnalyst(band=0.05), chart=lambda *a: b"\x89PNG fake")
    return run_cycle(bot.pk, slot_of(bot, timezone.now()), outside, on_schedule=False)


# Exchange accounts


def test_adding_and_deleting_an_exchange_account_on_the_web_is_recorded(alice_client, alice):
    data = {"label": "Main", "exchange": "kraken", "api_key": API_KEY, "secret": SECRET, "password": ""}
    assert alice_client.post(reverse("exchange_accounts"), data).status_code == 302
    account = ExchangeAccount.objects.get()
    delete = reverse("exchange_account_delete", args=[account.pk])
    assert alice_client.post(delete).status_code == 302

    added, deleted = AuditEvent.objects.order_by("pk")
    assert logged(alice) == [
        (Action.EXCHANGE_ACCOUNT_ADDED, "owner"),
        (Action.EXCHANGE_ACCOUNT_DELETED, "owner"),
    ]
    assert added.actor == alice
    assert added.summary == f"Exchange account “Main” (kraken, key ••••{API_KEY[-4:]}) added."
    assert added.details == {
        "exchange_account_id": account.pk, "label": "Main", "exchange": "kraken", "sandbox": False,
        "key_hint": API_KEY[-4:],
    }  # fmt: skip
    assert deleted.details["exchange_account_id"] == account.pk


def test_adding_and_deleting_an_exchange_account_through_the_api_is_recorded(api, alice):
    body = {"label": "Test net", "exchange": "binance", "sandbox": True, "api_key": API_KEY, "secret": SECRET}
    created = api.post("/api/v1/exchange-accounts/", body)
    assert created.status_code == 201
    assert api.delete(f"/api/v1/exchange-accounts/{created.json()['id']}/").status_code == 204
    assert logged(alice) == [
        (Action.EXCHANGE_ACCOUNT_ADDED, "owner"),
        (Action.EXCHANGE_ACCOUNT_DELETED, "owner"),
    ]
    assert "(binance, test network, key" in AuditEvent.objects.first().summary


def test_a_refused_deletion_records_nothing(alice, live_bot, live_account):
    with pytest.raises(ProtectedError):
        exchange_account_delete(live_account, actor=alice)
    assert ExchangeAccount.objects.filter(pk=live_account.pk).exists()
    assert logged() == []


# A bot's mode and its confirmation of real orders


def test_creating_a_live_bot_on_the_web_and_switching_it_to_paper_through_the_api(
    alice_client, api, alice, live_account, settings
):
    settings.LIVE_TRADING_ENABLED = True
    live = {**VALID, "mode": "LIVE", "exchange_account": live_account.pk, "live_confirmed": "on"}
    assert alice_client.post(reverse("bot_create"), live).status_code == 302
    bot = Bot.objects.get()
    assert logged(alice) == [(Action.BOT_MODE_CHANGED, "owner"), (Action.LIVE_CONFIRMED, "owner")]
    created = AuditEvent.objects.get(action=Action.BOT_MODE_CHANGED)
    assert created.summary == "Bot “My BTC bot” created in Live (real orders) on binance."
    assert (created.details["mode_before"], created.details["mode"]) == (None, "LIVE")

    assert api.patch(f"/api/v1/bots/{bot.pk}/", {"name": "Renamed"}).status_code == 200  # nothing of live
    assert api.patch(f"/api/v1/bots/{bot.pk}/", {"mode": "SIMULATION"}).status_code == 200
    assert logged(alice)[2:] == [
        (Action.BOT_MODE_CHANGED, "owner"),
        (Action.LIVE_CONFIRMATION_WITHDRAWN, "owner"),
    ]
    switched = AuditEvent.objects.filter(action=Action.BOT_MODE_CHANGED).last()
    assert (
        switched.summary
        == "Bot “Renamed” switched from Live (real orders) to Simulation (paper trading) on binance."
    )


def test_a_paper_bot_created_on_the_web_records_nothing(alice_client):
    assert alice_client.post(reverse("bot_create"), VALID).status_code == 302
    assert logged() == []


def test_an_operator_confirming_a_bot_for_real_orders_in_the_admin_is_in_the_owners_log(
    operator_client, alice, live_account
):
    bot = BotFactory(owner=alice, exchange_account=live_account)
    page = operator_client.get(reverse("admin:automation_bot_change", args=[bot.pk]))
    form = page.context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None}
    data.update(owner=alice.pk, exchange_account=live_account.pk, live_confirmed="on", tradingview_url="")
    response = operator_client.post(reverse("admin:automation_bot_change", args=[bot.pk]), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert logged(alice) == [(Action.LIVE_CONFIRMED, "operator")]


# Live bots started, stopped, paused


def test_starting_and_stopping_a_live_bot_records_who_did_it(alice, live_bot, operator):
    bot_start(live_bot, actor=alice)
    bot_stop(live_bot, actor=alice)
    bot_start(live_bot, actor=operator)
    bot_pause(live_bot, "paused by operator ops@example.com", actor=operator)

    assert logged(alice) == [
        (Action.LIVE_BOT_STARTED, "owner"),
        (Action.LIVE_BOT_STOPPED, "owner"),
        (Action.LIVE_BOT_STARTED, "operator"),
        (Action.LIVE_BOT_PAUSED, "operator"),
    ]
    started, stopped = AuditEvent.objects.order_by("pk")[:2]
    assert started.details == {
        "bot_id": live_bot.pk, "bot": "Live BTC", "symbol": "BTC/USDT",
        "session_id": live_bot.sessions.order_by("pk").first().pk,
        "exchange_account_id": live_bot.exchange_account_id,
    }  # fmt: skip
    assert stopped.summary == "Live bot “Live BTC” stopped by its owner."


def test_start_and_stop_from_the_bot_page_and_the_api_record_the_user(alice_client, api, alice, live_bot):
    assert alice_client.post(reverse("bot_action", args=[live_bot.pk, "start"])).status_code == 302
    assert api.post(f"/api/v1/bots/{live_bot.pk}/stop/").status_code == 200
    assert logged(alice) == [(Action.LIVE_BOT_STARTED, "owner"), (Action.LIVE_BOT_STOPPED, "owner")]


def test_a_paper_bots_start_stop_and_pause_record_nothing(alice, exchange_stand_in):
    paper = BotFactory(owner=alice)
    bot_start(paper, actor=alice)
    bot_pause(paper, "daily loss limit")
    bot_start(paper, actor=alice)
    bot_stop(paper, actor=alice)
    assert paper.sessions.count() == 2
    assert logged() == []


def test_the_daily_loss_limit_pausing_a_live_bot_is_recorded_as_the_platforms(alice, live_bot):
    bot_start(live_bot, actor=alice)
    Trade.objects.create(
        owner=alice, bot=live_bot, is_simulated=False, symbol="BTC/USDT", side="BUY", amount=1, price=1,
        status="CLOSED", pnl=-600, outcome="LOSS", closed_at=timezone.now(),
    )  # fmt: skip
    run = run_live(live_bot)
    assert run.status == "SUCCEEDED", run.error
    live_bot.refresh_from_db()
    assert live_bot.status == Bot.Status.PAUSED
    assert logged(alice) == [(Action.LIVE_BOT_STARTED, "owner"), (Action.LIVE_BOT_PAUSED, "platform")]
    paused = AuditEvent.objects.get(action=Action.LIVE_BOT_PAUSED)
    assert paused.actor is None
    assert paused.summary.startswith("Live bot “Live BTC” paused: daily loss 600.00 reached the")


def test_an_action_that_rolls_back_leaves_no_event(alice, live_bot, monkeypatch):
    written = audit.record

    def written_then_failed(*args, **kwargs):
        written(*args, **kwargs)
        raise RuntimeError("the database went away")

    # After the event is written, inside the same transaction.
    monkeypatch.setattr(audit, "record", written_then_failed)
    with pytest.raises(RuntimeError):
        bot_start(live_bot, actor=alice)
    live_bot.refresh_from_db()
    assert (live_bot.status, live_bot.sessions.count()) == (Bot.Status.STOPPED, 0)
    assert logged() == []


# Live orders and closes


def test_a_live_cycle_records_the_order_and_its_protection_and_the_monitor_the_close(
    alice, live_bot, exchange_stand_in
):
    live_bot.status = Bot.Status.RUNNING
    live_bot.save()
    AutomationSession.objects.create(bot=live_bot)
    run = run_live(live_bot)
    assert run.status == "SUCCEEDED", run.error
    trade = Trade.objects.get()
    assert logged(alice) == [
        (Action.LIVE_ORDER_PLACED, "platform"),
        (Action.LIVE_ORDER_PROTECTED, "platform"),
    ]
    placed, protected = AuditEvent.objects.order_by("pk")
    assert placed.details == {
        "trade_id": trade.pk, "bot_id": live_bot.pk, "symbol": "BTC/USDT", "side": "BUY",
        "amount": str(trade.amount), "client_order_id": f"tai-{run.pk}-open", "price": str(trade.price),
        "fees": str(trade.fees), "exchange_order_id": trade.exchange_order_id,
    }  # fmt: skip
    assert placed.summary.startswith(f"Bot “Live BTC” bought {trade.amount.normalize():f} BTC/USDT at ")
    assert protected.details["protection_id"] == f"tai-{run.pk}-open-oco"
    assert Decimal(protected.details["stop_loss"]) == trade.stop_loss

    exchange_stand_in.trigger(trade.learning_data["protection_id"], "below")  # the exchange fills the stop
    assert monitor_running_bots() == 1
    trade.refresh_from_db()
    closed = AuditEvent.objects.get(action=Action.LIVE_TRADE_CLOSED)
    assert (closed.actor, closed.user) == (None, alice)
    assert closed.details["exit_reason"] == "STOP_LOSS"
    assert Decimal(closed.details["pnl"]) == trade.pnl < 0
    assert closed.details["outcome"] == "LOSS"
    assert "(stop loss): P&L -" in closed.summary


def test_a_paper_cycle_records_no_order(alice, exchange_stand_in):
    paper = BotFactory(owner=alice, status=Bot.Status.RUNNING)
    AutomationSession.objects.create(bot=paper)
    assert run_live(paper).status == "SUCCEEDED"
    assert Trade.objects.filter(is_simulated=True).exists()
    assert logged() == []


# Kill switches


def test_the_kill_switch_and_halting_users_in_the_admin_record_the_operator(operator_client, operator, alice):
    flip = reverse("admin:automation_killswitch_flip")
    assert operator_client.post(flip, {"engage": "True", "reason": "exchange outage"}).status_code == 302
    assert operator_client.post(flip, {"engage": "", "reason": "resolved"}).status_code == 302
    changelist = reverse("admin:accounts_user_changelist")
    for action in ("halt_trading", "resume_trading"):
        operator_client.post(changelist, {"action": action, "_selected_action": [alice.pk]})

    engaged, released = AuditEvent.objects.filter(user=None).order_by("pk")
    assert (engaged.action, engaged.actor, engaged.details) == (
        Action.KILL_SWITCH_ENGAGED,
        operator,
        {"reason": "exchange outage"},
    )
    assert (released.action, released.summary) == (
        Action.KILL_SWITCH_RELEASED,
        "Platform kill switch released: resolved",
    )
    assert logged(alice) == [(Action.TRADING_HALTED, "operator"), (Action.TRADING_RESUMED, "operator")]


def test_a_users_own_kill_switch_through_the_api(api, alice):
    assert api.put("/api/v1/kill-switch/", {"engaged": True}).json()["engaged"] is True
    assert api.put("/api/v1/kill-switch/", {"engaged": True}).status_code == 200  # no change: no event
    assert api.put("/api/v1/kill-switch/", {"engaged": False}).json()["engaged"] is False
    assert logged(alice) == [(Action.TRADING_HALTED, "owner"), (Action.TRADING_RESUMED, "owner")]


# Reading it: the owner's page, the API, the admin


def test_the_page_lists_ones_own_events_newest_first_with_a_filter(client, alice, charlie, operator):
    record(alice, Action.TRADING_HALTED, "Trading halted (first).", actor=operator)
    record(alice, Action.TRADING_RESUMED, "Trading resumed (second).", actor=alice)
    record(None, Action.KILL_SWITCH_ENGAGED, "Platform kill switch engaged: drill", actor=operator)

    client.force_login(alice)
    page = client.get(reverse("audit_log")).content.decode()
    assert page.index("(second)") < page.index("(first)")
    assert "An operator" in page and "You" in page
    assert "drill" not in page  # the platform's switch is no account's event
    filtered = client.get(reverse("audit_log"), {"action": Action.TRADING_HALTED}).content.decode()
    assert "(first)" in filtered and "(second)" not in filtered
    assert reverse("audit_log") in client.get(reverse("settings")).content.decode()

    client.force_login(charlie)
    page = client.get(reverse("audit_log")).content.decode()
    assert "(first)" not in page and "(second)" not in page
    assert "Nothing recorded yet" in page and "live orders" in page


def test_the_page_is_paginated(alice_client, alice):
    for i in range(51):
        record(alice, Action.TRADING_HALTED, f"event {i}.", actor=alice)
    first = alice_client.get(reverse("audit_log")).content.decode()
    assert "event 50." in first and "event 0." not in first and "Page 1 of 2" in first
    assert "event 0." in alice_client.get(reverse("audit_log"), {"page": 2}).content.decode()


def test_the_api_lists_ones_own_events_with_a_filter_and_nothing_else(api, charlie_api, alice, operator):
    halted = record(alice, Action.TRADING_HALTED, "Trading halted.", actor=operator)
    record(alice, Action.LIVE_BOT_PAUSED, "Live bot paused.", bot_id=7, amount=Decimal("0.5"))
    record(None, Action.KILL_SWITCH_ENGAGED, "Platform kill switch engaged: drill", actor=operator)

    body = api.get("/api/v1/audit-events/").json()
    assert [(e["action"], e["actor"]) for e in body["results"]] == [
        (Action.LIVE_BOT_PAUSED, "platform"),
        (Action.TRADING_HALTED, "operator"),
    ]
    assert body["results"][0]["details"] == {"bot_id": 7, "amount": "0.5"}
    only = api.get("/api/v1/audit-events/", {"action": Action.TRADING_HALTED}).json()["results"]
    assert [e["id"] for e in only] == [halted.pk]
    assert api.get("/api/v1/audit-events/", {"action": "NOT_AN_ACTION"}).status_code == 400
    assert api.post("/api/v1/audit-events/", {}).status_code == 405
    assert api.delete(f"/api/v1/audit-events/{halted.pk}/").status_code == 405

    assert charlie_api.get("/api/v1/audit-events/").json()["results"] == []
    assert charlie_api.get(f"/api/v1/audit-events/{halted.pk}/").status_code == 404


def test_operators_read_every_event_in_the_admin_and_no_one_can_change_one(operator_client, alice):
    event = record(alice, Action.TRADING_HALTED, "Trading halted.", actor=alice)
    changelist = reverse("admin:accounts_auditevent_changelist")
    listed = operator_client.get(changelist, {"q": "alice@"})
    assert listed.status_code == 200 and "Trading halted." in listed.content.decode()
    assert operator_client.get(changelist, {"action__exact": "TRADING_HALTED"}).status_code == 200

    change = reverse("admin:accounts_auditevent_change", args=[event.pk])
    assert operator_client.get(change).status_code == 200  # to look at
    assert operator_client.post(change, {"summary": "Nothing happened."}).status_code == 403
    add = reverse("admin:accounts_auditevent_add")
    assert operator_client.get(add).status_code == 403
    assert operator_client.post(add, {"summary": "Made up."}).status_code == 403
    delete = reverse("admin:accounts_auditevent_delete", args=[event.pk])
    assert operator_client.get(delete).status_code == 403
    assert operator_client.post(delete, {"post": "yes"}).status_code == 403
    operator_client.post(changelist, {"action": "delete_selected", "_selected_action": [event.pk]})
    assert list(AuditEvent.objects.values_list("summary", flat=True)) == ["Trading halted."]

    event.summary = "Nothing happened."
    with pytest.raises(ValueError, match="not changed"):
        event.save()


def test_no_event_holds_a_secret(alice_client, api, alice, live_bot, exchange_stand_in):
    account = {"exchange": "kraken", "api_key": API_KEY, "secret": SECRET, "password": PASSPHRASE}
    alice_client.post(reverse("exchange_accounts"), {"label": "Web", **account})
    created = api.post("/api/v1/exchange-accounts/", {"label": "API", **account}).json()
    api.delete(f"/api/v1/exchange-accounts/{created['id']}/")
    bot_start(live_bot, actor=alice)
    run_live(live_bot)
    bot_stop(live_bot, actor=alice)
    assert {e.action for e in AuditEvent.objects.all()} >= {
        Action.EXCHANGE_ACCOUNT_ADDED, Action.EXCHANGE_ACCOUNT_DELETED, Action.LIVE_BOT_STARTED,
        Action.LIVE_ORDER_PLACED, Action.LIVE_ORDER_PROTECTED, Action.LIVE_BOT_STOPPED,
    }  # fmt: skip

    written = [e.summary + json.dumps(e.details) for e in AuditEvent.objects.all()]
    for secret in (SECRET, PASSPHRASE, API_KEY, API_KEY[:-4]):
        assert not [text for text in written if secret in text], secret
    shown = (
        api.get("/api/v1/audit-events/").content.decode()
        + alice_client.get(reverse("audit_log")).content.decode()
    )
    assert SECRET not in shown and API_KEY not in shown and PASSPHRASE not in shown


def test_events_of_an_account_go_with_it_but_an_operators_stay(alice, operator):
    record(alice, Action.TRADING_HALTED, "Trading halted.", actor=operator)
    record(alice, Action.TRADING_RESUMED, "Trading resumed.", actor=alice)
    alice.delete()
    assert not AuditEvent.objects.exists()

    charlie = UserFactory(email="charlie@example.com")
    record(charlie, Action.TRADING_HALTED, "Trading halted.", actor=operator)
    with pytest.raises(RestrictedError):
        operator.delete()
    assert AuditEvent.objects.get().actor == operator


def test_details_take_decimals_and_times(alice):
    when = timezone.now() - timedelta(hours=1)
    event = record(alice, Action.LIVE_TRADE_CLOSED, "Closed.", pnl=Decimal("-1.50"), closed_at=when)
    event.refresh_from_db()
    assert event.details["pnl"] == "-1.50"
    assert abs(parse_datetime(event.details["closed_at"]) - when) < timedelta(milliseconds=1)
