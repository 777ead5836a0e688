"""The dispatcher: once a minute, the cycles due, sent in bulk.

Beat runs it at the start of every minute (settings.CELERY_BEAT_SCHEDULE, "dispatch-cycles"), on a thread
of its own process (automation.beat), so that it waits for no free worker. Each running bot carries the
moment its next slot is due (`Bot.next_due`, indexed), so a dispatch reads the bots due and no others, and
starting or stopping a bot changes no beat schedule: with an entry per bot, django-celery-beat's
DatabaseScheduler reloaded every entry and rebuilt its heap on each start or stop (1.9 s + 2.7 s at 10,000
bots, issue 21).

For each bot due, the slot due now is sent to the io queue as a scheduled run, so that the worker still
applies the late-slot rule (automation.cycle) to a message that waited in the queue. Slots it missed (beat
was down) are recorded SKIPPED, and so is the slot due now when it is already more than LATE_SHARE of its
period late, as the cycle would record it. `next_due` moves on to the bot's next slot.

Once per slot: the bots due are locked (SKIP LOCKED: a second beat's dispatch takes other bots, or none) and
their `next_due` moved on in the transaction in which their messages are sent, committed after them. A
dispatch that fails half way (the broker, the database) leaves `next_due` where it was, and the next minute
sends those slots again; a slot sent twice (that, a retry, a commit lost after the send) runs once, because
its run is claimed by creating its CycleRun, unique per bot and slot (automation.cycle.claim)."""

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import current_app
from django.db import transaction
from django.utils import timezone
from kombu.utils.uuid import uuid

from market.sources import Market

from .metrics import Tally
from .models import AutomationSession, Bot, CycleRun
from .schedule import LATE_SHARE, offset_of, slot_of

logger = logging.getLogger(__name__)

CYCLE_TASK = "automation.tasks.run_cycle_task"
# Bots per transaction: their rows stay locked while their messages are sent (a second or so for 2,000), and
# a start, stop or edit of one of them waits that long.
BATCH = 2000
# Messages per pipeline to Redis: each goes out as soon as it is full, so that the first cycles of a batch
# wait for no more than these to be made. A batch sent whole at its end was none earlier than 1.1 s after
# its due moment, half later than 2.4 s (100,000 bots, bench/bench_schedule.py on a loaded machine).
FLUSH = 100
# A bot that missed more slots than this (beat down for days) has the older ones said in one line of its
# oldest skipped run, not a row each: 100,000 bots down for a day would otherwise be millions of rows.
MAX_SKIPPED_RUNS = 24


@dataclass
class Dispatched:
    """What one dispatch did: the cycles sent, the slots recorded SKIPPED, the seconds it took."""

    sent: int = 0
    skipped: int = 0
    seconds: float = 0.0


def dispatch_due(now: datetime | None = None) -> Dispatched:
    """Send the cycles due by `now` (the present by default), in transactions of BATCH bots, on a producer
    of the app's pool."""
    started = time.perf_counter()
    now = now or timezone.now()
    done = Dispatched()
    with current_app.producer_or_acquire() as producer:
        while _dispatch_batch(now, producer, done):
            pass
    done.seconds = time.perf_counter() - started
    if done.sent or done.skipped:
        figures = (done.sent, done.skipped, done.seconds)
        logger.info("dispatched %s cycle(s), %s slot(s) skipped, in %.2f s", *figures)
    return done


def _dispatch_batch(now: datetime, producer, done: Dispatched) -> bool:
    """One transaction of the bots due; False when there were no more than it took."""
    with transaction.atomic():
        bots = list(
            Bot.objects.filter(status=Bot.Status.RUNNING, next_due__lte=now)
            .order_by("next_due")
            .select_for_update(skip_locked=True)
            .only("pk", "exchange", "symbol", "timeframe", "next_due")[:BATCH]
        )
        if not bots:
            return False
        moved: dict[datetime, list[int]] = defaultdict(list)  # the new next_due: the bots that move to it
        sends: list[tuple[int, datetime]] = []
        missed: dict[int, list[datetime]] = {}
        for bot in bots:
            offset = offset_of(bot)
            period = Market(bot.exchange, bot.symbol, bot.timeframe).period
            current = slot_of(bot, now - offset)
            first = slot_of(bot, bot.next_due - offset)
            skipped = [first + i * period for i in range((current - first) // period)]
            if now - (current + offset) <= period * LATE_SHARE:
                sends.append((bot.pk, current))
            else:
                skipped.append(current)
            if skipped:
                missed[bot.pk] = skipped
            moved[current + offset + period].append(bot.pk)
        for due, pks in moved.items():
            Bot.objects.filter(pk__in=pks).update(next_due=due)
        if missed:
            done.skipped += _record_skipped(missed, now)
        if sends:
            _send_cycles(producer, sends)
        done.sent += len(sends)
    return len(bots) == BATCH


def _send_cycles(producer, sends: list[tuple[int, datetime]]) -> None:
    """The `run_cycle_task(bot, slot, on_schedule=True)` messages, as `send_task` makes them, with what is
    the same for all of them (the route, the queue's declaration, the kwargs' repr) done once: send_task per
    message cost three times the CPU (0.5 ms), more than the rest of the dispatch together. In pipelines of
    FLUSH messages to Redis (kombu's publish batch; other transports publish each message at once), not a
    round trip each."""
    amqp = current_app.amqp
    queue = amqp.router.route({}, CYCLE_TASK)["queue"]
    producer.maybe_declare(queue)
    kwargs = {"on_schedule": True}
    with producer.batch(max_size=FLUSH):
        for pk, slot in sends:
            task_id, args = uuid(), (pk, slot.isoformat())
            message = amqp.create_task_message(
                task_id,
                CYCLE_TASK,
                args,
                kwargs,
                root_id=task_id,
                argsrepr=repr(args),
                kwargsrepr=repr(kwargs),
            )
            amqp.send_task_message(producer, CYCLE_TASK, message, queue=queue, declare=[])


def _record_skipped(missed: dict[int, list[datetime]], now: datetime) -> int:
    """SKIPPED runs for the slots the bots missed, but those that have a run already (a run-now while beat
    was down); returns how many were written."""
    oldest = min(slots[0] for slots in missed.values())
    taken = set(
        CycleRun.objects.filter(bot_id__in=missed, slot__gte=oldest).values_list("bot_id", "slot").iterator()
    )
    open_sessions = AutomationSession.objects.filter(bot_id__in=missed, stopped_at__isnull=True)
    sessions = dict(open_sessions.values_list("bot_id", "pk"))
    runs = []
    for pk, slots in missed.items():
        kept = slots[-MAX_SKIPPED_RUNS:]
        for slot in kept:
            if (pk, slot) in taken:
                continue
            late = timedelta(seconds=int((now - slot).total_seconds()))
            error = f"not sent: the dispatcher ran {late} after its slot; skipped rather than run late"
            if slot == kept[0] and len(slots) > len(kept):
                error += (
                    f"; the {len(slots) - len(kept)} slot(s) before it, from {slots[0]:%Y-%m-%d %H:%M} UTC, "
                    "were skipped too and are not recorded one by one"
                )
            runs.append(
                CycleRun(
                    bot_id=pk,
                    slot=slot,
                    session_id=sessions.get(pk),
                    status=CycleRun.Status.SKIPPED,
                    finished_at=now,
                    error=error,
                )
            )
    # ignore_conflicts: a run-now claiming one of these slots since `taken` was read keeps its run.
    CycleRun.objects.bulk_create(runs, ignore_conflicts=True)
    tally = Tally()
    tally.count("tradingai_cycle_runs", len(runs), status=CycleRun.Status.SKIPPED, failed_step="")
    tally.save()
    logger.warning("%s missed slot(s) of %s bot(s) recorded as skipped", len(runs), len(missed))
    return len(runs)
