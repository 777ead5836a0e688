"""The dispatcher (automation.dispatch) on the database and the configured broker: the messages it puts on
the io queue are read back from the broker and run by the cycle task, as a worker would."""

from datetime import UTC, datetime, timedelta

import pytest
from celery import current_app
from django.utils import timezone

from automation.dispatch import MAX_SKIPPED_RUNS, dispatch_due
from automation.models import Bot, CycleRun, MetricTotal
from automation.schedule import next_due_after, offset_of, slot_of
from automation.services import bot_start, bot_stop
from automation.tasks import dispatch_cycles_task, run_cycle_task
from learning.models import AILearningData
from market.importers import Bar, store_bars
from tests.factories import BotFactory, import_eurusd

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


@pytest.fixture
def io_queue(db):
    """The broker's io queue, emptied of what other tests left on it."""
    with current_app.connection_for_write() as connection:
        queue = current_app.amqp.queues["io"](connection.default_channel)
        queue.declare()
        queue.purge()
        yield queue
        queue.purge()


def sent(queue) -> list:
    """The messages on the io queue, taken off it: (task name, args, kwargs) each."""
    messages = []
    while (message := queue.get(accept=["json"])) is not None:
        message.ack()
        args, kwargs, _ = message.decode()
        messages.append((message.headers["task"], args, kwargs))
    return messages


@pytest.fixture
def sample_market(db):
    """The demo's hours, which cycles run on, and a candle of the other timeframes, which a bot needs to
    start (the dispatch tests run no cycle of theirs)."""
    import_eurusd()
    for timeframe in ("15m", "4h"):
        store_bars("sample", "EUR/USD", timeframe, [Bar(datetime(2024, 1, 1, tzinfo=UTC), 1, 1.1, 0.9, 1, 5)])


def running_bot(owner, timeframe="1h", **fields) -> Bot:
    bot = BotFactory(owner=owner, exchange="sample", symbol="EUR/USD", timeframe=timeframe, **fields)
    bot_start(bot)
    bot.refresh_from_db()
    return bot


def test_start_sets_the_next_due_moment_and_stop_clears_it(alice, sample_market):
    bot = running_bot(alice)
    assert bot.next_due - bot.next_due.replace(minute=0, second=0, microsecond=0) == offset_of(bot)
    assert timedelta(0) < bot.next_due - datetime.now(UTC) <= HOUR
    bot_stop(bot)
    bot.refresh_from_db()
    assert bot.next_due is None


def test_next_due_after_is_the_first_due_moment_after(alice):
    bot = BotFactory(owner=alice, timeframe="4h")
    offset = offset_of(bot)
    slot = datetime(2026, 3, 1, 8, tzinfo=UTC)
    assert next_due_after(bot, slot + offset - MINUTE) == slot + offset
    assert next_due_after(bot, slot + offset) == slot + offset + 4 * HOUR


def test_a_dispatch_sends_the_bots_due_once_each_and_moves_them_to_their_next_slot(
    alice, sample_market, io_queue
):
    due, later = running_bot(alice), running_bot(alice, timeframe="15m")
    stopped = BotFactory(owner=alice, exchange="sample", symbol="EUR/USD")
    now = due.next_due + timedelta(seconds=1)
    Bot.objects.filter(pk=later.pk).update(next_due=now + MINUTE)
    Bot.objects.filter(pk=stopped.pk).update(next_due=now - MINUTE)  # not running: never sent

    done = dispatch_due(now=now)
    slot = due.next_due - offset_of(due)
    assert (done.sent, done.skipped) == (1, 0)
    assert sent(io_queue) == [
        ("automation.tasks.run_cycle_task", [due.pk, slot.isoformat()], {"on_schedule": True})
    ]
    due.refresh_from_db()
    assert due.next_due == slot + HOUR + offset_of(due)

    # Run again, by a second beat or a retry, in the same minute: nothing is due any more.
    assert dispatch_due(now=now).sent == 0
    assert sent(io_queue) == []


def test_a_slot_sent_twice_by_the_dispatcher_or_redelivered_runs_once(alice, sample_market, io_queue):
    """Duplicate dispatch (the dispatch's commit lost after its messages went out, so the next one sends the
    slot again) and redelivery (one message run twice) both end in one run with one analysis."""
    bot = running_bot(alice)
    due = bot.next_due
    dispatch_due(now=due)
    Bot.objects.filter(pk=bot.pk).update(next_due=due)
    dispatch_due(now=due + timedelta(seconds=5))
    messages = sent(io_queue)
    assert len(messages) == 2 and messages[0] == messages[1]

    for _, args, kwargs in [*messages, messages[0]]:
        run_cycle_task.apply(args, kwargs)
    run = CycleRun.objects.get(bot=bot)
    assert (run.slot, run.status) == (due - offset_of(bot), CycleRun.Status.SUCCEEDED)
    assert AILearningData.objects.filter(bot=bot).count() == 1


def test_a_stopped_bots_message_runs_nothing(alice, sample_market, io_queue):
    bot = running_bot(alice)
    dispatch_due(now=bot.next_due)
    bot_stop(bot)
    [(_, args, kwargs)] = sent(io_queue)
    run_cycle_task.apply(args, kwargs)
    assert not CycleRun.objects.filter(bot=bot).exists()


def test_after_beat_was_down_the_slot_still_in_time_is_sent_and_the_missed_ones_are_skipped(
    alice, sample_market, io_queue
):
    bot = running_bot(alice)
    offset, first = offset_of(bot), bot.next_due
    # Down for three hours and ten minutes: three slots missed, the fourth due ten minutes ago.
    now = first + 3 * HOUR + 10 * MINUTE
    done = dispatch_due(now=now)
    assert (done.sent, done.skipped) == (1, 3)
    [(_, [_, slot], kwargs)] = sent(io_queue)
    assert (slot, kwargs) == ((first - offset + 3 * HOUR).isoformat(), {"on_schedule": True})
    skipped = CycleRun.objects.filter(bot=bot).order_by("slot")
    assert [run.slot for run in skipped] == [first - offset + i * HOUR for i in range(3)]
    assert {run.status for run in skipped} == {CycleRun.Status.SKIPPED}
    assert all(run.session_id == bot.sessions.get().pk for run in skipped)
    assert "skipped rather than run late" in skipped[0].error
    bot.refresh_from_db()
    assert bot.next_due == first + 4 * HOUR
    counted = MetricTotal.objects.get(name="tradingai_cycle_runs_total", labels__contains="SKIPPED")
    assert counted.value == 3


def test_a_slot_due_longer_ago_than_the_late_share_is_skipped_not_sent(alice, sample_market, io_queue):
    bot = running_bot(alice)
    done = dispatch_due(now=bot.next_due + 31 * MINUTE)  # past half of the hour
    assert (done.sent, done.skipped) == (0, 1)
    assert sent(io_queue) == []
    assert CycleRun.objects.get(bot=bot).slot == bot.next_due - offset_of(bot)


def test_a_slot_run_now_while_beat_was_down_keeps_its_run(alice, sample_market, io_queue):
    bot = running_bot(alice)
    first_slot = bot.next_due - offset_of(bot)
    ran = CycleRun.objects.create(bot=bot, slot=first_slot, status=CycleRun.Status.SUCCEEDED)
    # Two slots missed, the first of them run now by its owner; the third due now.
    assert dispatch_due(now=bot.next_due + 2 * HOUR).skipped == 1
    ran.refresh_from_db()
    assert ran.status == CycleRun.Status.SUCCEEDED
    [skipped] = CycleRun.objects.filter(bot=bot, status=CycleRun.Status.SKIPPED)
    assert skipped.slot == first_slot + HOUR


def test_days_of_missed_slots_are_recorded_up_to_a_bound_and_the_rest_said(alice, sample_market, io_queue):
    bot = running_bot(alice, timeframe="15m")
    first = bot.next_due
    done = dispatch_due(now=first + 2 * 24 * HOUR)  # 192 slots missed, the one due now sent
    assert (done.sent, done.skipped) == (1, MAX_SKIPPED_RUNS)
    oldest = CycleRun.objects.filter(bot=bot).order_by("slot").first()
    assert f"the {192 - MAX_SKIPPED_RUNS} slot(s) before it" in oldest.error
    assert f"from {first - offset_of(bot):%Y-%m-%d %H:%M} UTC" in oldest.error


def test_the_dispatched_slot_is_the_one_due(alice, sample_market, io_queue):
    bot = running_bot(alice, timeframe="4h")
    now = bot.next_due + timedelta(seconds=2)
    dispatch_due(now=now)
    [(_, [_, slot], _)] = sent(io_queue)
    assert datetime.fromisoformat(slot) == slot_of(bot, now - offset_of(bot))


def test_the_dispatch_task_sent_to_a_worker_does_the_same(alice, sample_market, io_queue):
    """Beat runs the dispatch itself (automation.beat); its entry's task, sent by another scheduler or by
    hand, dispatches what is due by the time it runs: here, a bot whose minute of the hour is this one."""
    market = {"exchange": "sample", "symbol": "EUR/USD", "timeframe": "1h"}
    minute = timezone.now().minute
    pk = next(pk for pk in range(10_000, 20_000) if offset_of(Bot(pk=pk, **market)).seconds == minute * 60)
    bot = running_bot(alice, pk=pk)
    Bot.objects.filter(pk=bot.pk).update(next_due=bot.next_due - HOUR)  # the start of this minute
    dispatch_cycles_task.apply()
    [(_, [sent_pk, _], kwargs)] = sent(io_queue)
    assert (sent_pk, kwargs) == (bot.pk, {"on_schedule": True})
    assert Bot.objects.get(pk=bot.pk).next_due == bot.next_due
