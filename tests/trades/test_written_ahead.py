"""Issue 15, finding 4: a live order whose trade could not be written after the exchange filled it was lost
(the run FAILED at execute, nothing recorded it) and doubled (the next slot placed a second order: the
position was invisible to max_open_trades). Now the order is written ahead as a PENDING trade with its client
order id, counted by the risk limits, and settled from the exchange by the monitor or the recovery sweep.

The write after the fill is made to fail for real: a trigger in the database (SQLite or PostgreSQL) refuses
to turn a PENDING trade OPEN, as a database that went away or refused the row would. The exchange is the
Binance stand-in on 127.0.0.1, through the real ccxt client."""

import contextlib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import AuditEvent
from automation.cycle import Outside, run_cycle
from automation.monitoring import monitor_running_bots
from automation.recovery import recover_lost_runs
from automation.schedule import slot_of
from learning.models import AILearningData
from tests.automation.test_cycle import FailingBroker, FakeAnalyst
from tests.automation.test_live_cycle import live_bot
from tests.stand_ins.exchange_server import INSUFFICIENT_BALANCE, ORDER, UNAVAILABLE
from trades.entries import PENDING_GRACE
from trades.models import Trade

__all__ = ["live_bot"]

REFUSAL = "the database refused the fill"


@contextlib.contextmanager
def fill_write_refused():
    """While inside, the database refuses every write that would store an OPEN live trade (inserted so, as
    the cycle did before, or made so, as it does now)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION refuse_fill() RETURNS trigger AS $$ BEGIN "
                f"RAISE EXCEPTION '{REFUSAL}'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER refuse_fill BEFORE INSERT OR UPDATE ON trades_trade FOR EACH ROW "
                "WHEN (NEW.status = 'OPEN' AND NOT NEW.is_simulated) EXECUTE FUNCTION refuse_fill()"
            )
        else:
            for event in ("INSERT", "UPDATE"):
                cursor.execute(
                    f"CREATE TRIGGER refuse_fill_{event} BEFORE {event} ON trades_trade "
                    "WHEN NEW.status = 'OPEN' AND NOT NEW.is_simulated "
                    f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
                )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("DROP TRIGGER refuse_fill ON trades_trade")
                cursor.execute("DROP FUNCTION refuse_fill()")
            else:
                cursor.execute("DROP TRIGGER refuse_fill_INSERT")
                cursor.execute("DROP TRIGGER refuse_fill_UPDATE")


def run_slot(bot, slot, broker=None):
    outside = Outside(analyst=FakeAnalyst(band=0.05), chart=lambda *a: b"\x89PNG fake", broker=broker)
    return run_cycle(bot.pk, slot, outside, on_schedule=False)


def entries_on(exchange):
    """The market orders the stand-in took for the platform's entries."""
    return [o for o in exchange.orders if o.client_order_id.endswith("-open")]


def placed_events(trade):
    return AuditEvent.objects.filter(action=AuditEvent.Action.LIVE_ORDER_PLACED, details__trade_id=trade.pk)


@pytest.fixture
def one_trade_at_most(live_bot):
    live_bot.max_open_trades = 1
    live_bot.save(update_fields=["max_open_trades"])
    return live_bot


@pytest.fixture
def lost_fill(one_trade_at_most, exchange_stand_in):
    """A slot whose order the exchange filled and whose trade could not be made OPEN after it."""
    slot = slot_of(one_trade_at_most, timezone.now())
    with fill_write_refused():
        run = run_slot(one_trade_at_most, slot)
    assert (run.status, run.failed_step) == ("FAILED", "execute")
    assert REFUSAL in run.error
    [trade] = Trade.objects.all()
    assert (trade.status, trade.client_order_id) == ("PENDING", f"tai-{run.pk}-open")
    assert len(entries_on(exchange_stand_in)) == 1  # the exchange has the position
    return slot, trade


def assert_settled_once(trade, exchange):
    [entry] = entries_on(exchange)
    trade.refresh_from_db()
    assert (trade.status, trade.exchange_order_id) == ("OPEN", str(entry.order_id))
    assert trade.amount == entry.quantity
    assert trade.price == pytest.approx(entry.price, rel=Decimal("1e-9"))  # ccxt's average, a float
    assert trade.execution_time is not None
    assert trade.learning_data["protection_id"] == f"{trade.client_order_id}-oco"
    assert len(exchange.order_lists) == 1  # its stop and target, once
    assert placed_events(trade).count() == 1


def test_a_fill_whose_write_failed_is_settled_by_the_next_slot_and_not_ordered_twice(
    lost_fill, one_trade_at_most, exchange_stand_in
):
    slot, trade = lost_fill
    following = run_slot(one_trade_at_most, slot + timedelta(hours=1))

    assert following.status == "SUCCEEDED", following.error
    assert_settled_once(trade, exchange_stand_in)
    decision = AILearningData.objects.get(cycle_run=following).feedback_data["decision"]
    assert decision == {"trade": False, "reason": "1 open trade(s), the most allowed is 1"}
    assert Trade.objects.count() == 1


def test_the_recovery_sweep_settles_it_once(lost_fill, exchange_stand_in):
    _, trade = lost_fill
    recover_lost_runs()
    assert_settled_once(trade, exchange_stand_in)
    recover_lost_runs()
    assert monitor_running_bots() == 0
    assert_settled_once(trade, exchange_stand_in)


def test_the_monitor_settles_it(lost_fill, exchange_stand_in):
    _, trade = lost_fill
    assert monitor_running_bots() == 0  # settled, not closed: both legs rest
    assert_settled_once(trade, exchange_stand_in)


def test_while_the_exchange_cannot_say_the_pending_trade_counts_as_open(
    lost_fill, one_trade_at_most, exchange_stand_in, alice_client
):
    slot, trade = lost_fill
    exchange_stand_in.fail_next(ORDER, 503, UNAVAILABLE, method="GET")  # the lookup by client order id
    following = run_slot(one_trade_at_most, slot + timedelta(hours=1))

    assert following.status == "SUCCEEDED", following.error
    trade.refresh_from_db()
    assert trade.status == "PENDING"
    decision = AILearningData.objects.get(cycle_run=following).feedback_data["decision"]
    assert decision["reason"] == "1 open trade(s), the most allowed is 1"
    assert len(entries_on(exchange_stand_in)) == 1
    page = alice_client.get(f"/trades/{trade.pk}/").content.decode()
    assert "its fill is being asked of the exchange" in page


def test_an_order_the_exchange_refused_is_cancelled_and_its_call_scored_as_untraded(
    live_bot, exchange_stand_in, alice_client
):
    exchange_stand_in.fail_next(ORDER, 400, INSUFFICIENT_BALANCE, method="POST")
    run = run_slot(live_bot, slot_of(live_bot, timezone.now()))

    assert (run.status, run.failed_step) == ("FAILED", "execute")
    [trade] = Trade.objects.all()
    assert trade.status == "CANCELLED"
    assert "insufficient balance" in trade.learning_data["cancelled"]
    assert not entries_on(exchange_stand_in)
    from learning.resolution import awaiting

    assert list(awaiting(live_bot)) == [trade.analysis]
    page = alice_client.get(f"/trades/{trade.pk}/").content.decode()
    assert "none: the order was not filled" in page and "insufficient balance" in page


def test_an_order_never_sent_is_cancelled_once_its_grace_has_passed(live_bot, exchange_stand_in, monkeypatch):
    # The exchange could not be reached at all: the cycle gave up with the order's fate unknown.
    monkeypatch.setattr("automation.cycle.PLACE_RETRY_WAITS", (0, 0, 0))
    run = run_slot(live_bot, slot_of(live_bot, timezone.now()), broker=FailingBroker())
    assert (run.status, run.failed_step) == ("FAILED", "execute")
    [trade] = Trade.objects.all()

    recover_lost_runs()  # not on the exchange, but it may list it late: still PENDING
    trade.refresh_from_db()
    assert trade.status == "PENDING"

    Trade.objects.filter(pk=trade.pk).update(created_at=timezone.now() - PENDING_GRACE - timedelta(seconds=1))
    recover_lost_runs()
    trade.refresh_from_db()
    assert trade.status == "CANCELLED"
    assert "never placed" in trade.learning_data["cancelled"]
    assert not entries_on(exchange_stand_in)


def test_an_order_that_ended_unfilled_on_the_exchange_is_cancelled(lost_fill, exchange_stand_in):
    _, trade = lost_fill
    [entry] = entries_on(exchange_stand_in)
    entry.status = "EXPIRED"  # as if the market order had found no liquidity
    Trade.objects.filter(pk=trade.pk).update(created_at=timezone.now() - PENDING_GRACE - timedelta(seconds=1))

    recover_lost_runs()
    trade.refresh_from_db()
    assert trade.status == "CANCELLED"
    assert not placed_events(trade).exists()
