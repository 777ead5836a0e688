"""Scheduling at scale: how late beat sends the bots' cycles, with bots started and stopped meanwhile.

Two runs, one after the other, each on a throwaway PostgreSQL database and Redis (database 12) as broker,
each with a real `celery beat` process on the real clock:

- dispatch by the minute (automation.dispatch, beat's scheduler as the product configures it): 100,000
  running bots, a quarter each on 15m, 1h, 4h and 1d, their offsets spread over the period by the product's
  own hash; for 10 minutes;
- beside it, the baseline: one django-celery-beat entry per bot, as automation.services made them before
  (a crontab at the bot's minute, `run_cycle_task(bot)`), under django-celery-beat's DatabaseScheduler, at
  10,000 bots of the same mix, for the same minutes.

In both, 1,000 starts and 1,000 stops an hour (one every 1.8 s, alternately) go on through the window, by
the code that starts and stops a bot in each (bot_start and bot_stop; the old entries' writes for the
baseline). No worker runs a cycle: a counter takes the messages off the io queue (RPOP of up to 1,000
every 20 ms) and notes when each arrived; that is what this measures, dispatch, not the cycles.

Time is the real clock: beat wakes when an entry is due and sends; nothing is simulated. A cycle's lateness
is the moment its message was on the queue (as the counter saw it, within 20 ms) minus the moment it was
due (its slot plus the bot's offset). The bots started or stopped during the window are left out of the
count of cycles expected (their first or last slot may fall either side of the change), not of the lateness.
The dispatcher's CPU is beat's process (all its work: the dispatch, the heartbeat, the schedule's ticks) over
the window, per minute.

Run: .venv/bin/python -m bench.bench_schedule [--minutes M] [--bots N] [--baseline-bots N] (or `make
bench`); the defaults are the issue's. Needs PostgreSQL (trust auth, user postgres) and Redis on 127.0.0.1;
creates and drops the databases tradingai_bench_schedule and tradingai_bench_schedule_baseline and flushes
Redis database 12."""

import argparse
import json
import multiprocessing
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import redis

from .common import ROOT, close_database, drop_database, in_own_process, server_env, setup_django, tree_cpu

BOTS = 100_000
BASELINE_BOTS = 10_000
MINUTES = 10
CHURN_PER_HOUR = 1000  # starts, and as many stops
STOPPED_POOL = 2000  # stopped bots the churn starts
TIMEFRAMES = ("15m", "1h", "4h", "1d")
USERS = 100
MARKETS = 10
BROKER_URL = "redis://127.0.0.1:6379/12"
DB_NAME = "tradingai_bench_schedule"
TARGETS = {"p50": 1.0, "p99": 5.0, "max": 15.0}  # seconds of lateness
CPU_TARGET = 1.0  # dispatcher CPU seconds a minute
COUNTER_POLL = 0.02
DRAIN_SECONDS = 30  # after the window, for the last minute's messages


# --- the counter: a "worker" that only notes when each message arrived -------------------------------------
def count_messages(broker_url: str, path: str, stop) -> None:
    """Takes every message off the io queue and writes `arrival bot_id slot` (slot '-' when none) a line for
    each cycle's."""
    import base64

    client = redis.Redis.from_url(broker_url)
    with open(path, "w") as out:
        while not stop.is_set():
            payloads = client.rpop("io", 1000)
            arrived = time.time()
            if not payloads:
                time.sleep(COUNTER_POLL)
                continue
            for payload in payloads:
                message = json.loads(payload)
                if message["headers"]["task"] != "automation.tasks.run_cycle_task":
                    continue  # the io queue's heartbeat
                args, _, _ = json.loads(base64.b64decode(message["body"]))
                out.write(f"{arrived:.3f} {args[0]} {args[1] or '-'}\n")


# --- seeding ------------------------------------------------------------------------------------------------
def seed(bots: int, baseline: bool) -> tuple[list[int], list[int]]:
    """`bots` running bots (a quarter each per timeframe) and STOPPED_POOL stopped ones, their ids fixed
    in advance so that each running bot's due moment is known when it is written. Returns (running, stopped)
    ids."""
    from django.db import connection
    from django.utils import timezone
    from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

    from accounts.models import Plan, User
    from automation.models import AutomationSession, Bot
    from automation.schedule import next_due_after, offset_of
    from market.importers import Bar, store_bars

    symbols = [f"M{i:02d}/USD" for i in range(1, MARKETS + 1)]
    bar = Bar(datetime(2024, 1, 1, tzinfo=UTC), 1, 1.1, 0.9, 1, 5)
    for symbol in symbols:
        for timeframe in TIMEFRAMES:
            store_bars("bench", symbol, timeframe, [bar])  # a bot starts on a market with stored candles
    total = bots + STOPPED_POOL
    each = total // USERS + 1  # a plan's caps are per owner, and small integers
    plan = Plan.objects.create(
        name="bench", max_running_bots=each, max_bots=each, cycles_per_day=10**9, run_now_per_hour=10**9
    )
    User.objects.bulk_create(User(email=f"owner{i}@bench.invalid", plan=plan) for i in range(USERS))
    owners = list(User.objects.order_by("pk").values_list("pk", flat=True))
    now = timezone.now()

    def bot(pk: int) -> Bot:
        running = pk <= bots
        made = Bot(
            pk=pk, owner_id=owners[pk % USERS], name=f"bot {pk}", exchange="bench",
            symbol=symbols[pk % MARKETS], timeframe=TIMEFRAMES[pk % len(TIMEFRAMES)],
            status=Bot.Status.RUNNING if running else Bot.Status.STOPPED,
        )  # fmt: skip
        if running and not baseline:
            made.next_due = next_due_after(made, now)
        return made

    Bot.objects.bulk_create((bot(pk) for pk in range(1, total + 1)), batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence('automation_bot', 'id'), %s)", [total])
    AutomationSession.objects.bulk_create(
        (AutomationSession(bot_id=pk) for pk in range(1, bots + 1)), batch_size=5000
    )
    if baseline:
        crontabs = {}
        tasks = []
        for made in Bot.objects.filter(status=Bot.Status.RUNNING).iterator():
            minute, hour = old_crontab(made.timeframe, int(offset_of(made).total_seconds() // 60))
            if (minute, hour) not in crontabs:
                crontabs[minute, hour] = CrontabSchedule.objects.get_or_create(
                    minute=minute, hour=hour, day_of_week="*", day_of_month="*", month_of_year="*",
                    timezone="UTC",
                )[0]  # fmt: skip
            tasks.append(old_entry(made, crontabs[minute, hour]))
        PeriodicTask.objects.bulk_create(tasks, batch_size=5000)
        PeriodicTasks.update_changed()
    return list(range(1, bots + 1)), list(range(bots + 1, total + 1))


# The baseline: how automation/services.py scheduled a bot before dispatch by the minute. Its entries' args
# were [bot id]; a null slot is added, which the task now needs to pass beat's check of the arguments against
# it, and which makes no difference to beat's work.
def old_crontab(timeframe: str, minutes: int) -> tuple[str, str]:
    return {
        "15m": (f"{minutes}-59/15", "*"),
        "1h": (str(minutes), "*"),
        "4h": (str(minutes % 60), f"{minutes // 60}-23/4"),
        "1d": (str(minutes % 60), str(minutes // 60)),
    }[timeframe]


def old_entry(bot, crontab):
    from django_celery_beat.models import PeriodicTask

    return PeriodicTask(
        name=f"bot {bot.pk} cycle", task="automation.tasks.run_cycle_task", crontab=crontab,
        args=json.dumps([bot.pk, None]), enabled=True,
        description=f"{bot.name}: {bot.symbol} {bot.timeframe} on {bot.exchange}",
    )  # fmt: skip


def old_start(pk: int) -> None:
    """bot_start's writes before: the status, and its entry saved (which tells beat to reload)."""
    from django.db import transaction
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    from automation.models import AutomationSession, Bot
    from automation.schedule import offset_of

    with transaction.atomic():
        bot = Bot.objects.select_for_update().get(pk=pk)
        bot.status = Bot.Status.RUNNING
        bot.save(update_fields=["status", "updated_at"])
        AutomationSession.objects.create(bot=bot)
        minute, hour = old_crontab(bot.timeframe, int(offset_of(bot).total_seconds() // 60))
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
        )
        entry = old_entry(bot, crontab)
        defaults = {f: getattr(entry, f) for f in ("task", "crontab", "args", "enabled", "description")}
        PeriodicTask.objects.update_or_create(name=entry.name, defaults=defaults)


def old_stop(pk: int) -> None:
    """bot_stop's writes before: the status, the session closed, the entry disabled by an UPDATE (which
    django-celery-beat's change signal does not see)."""
    from django.db import transaction
    from django_celery_beat.models import PeriodicTask

    from automation.models import Bot
    from automation.services import session_close

    with transaction.atomic():
        Bot.objects.filter(pk=pk).update(status=Bot.Status.STOPPED)
        session_close(Bot(pk=pk), "bench")
        PeriodicTask.objects.filter(name=f"bot {pk} cycle").update(enabled=False)


# --- one run ------------------------------------------------------------------------------------------------
class Churn(threading.Thread):
    """Stops a running bot and starts a stopped one, alternately, CHURN_PER_HOUR of each an hour."""

    def __init__(self, running: list[int], stopped: list[int], until: float, baseline: bool) -> None:
        super().__init__(daemon=True)
        self.running, self.stopped, self.until, self.baseline = running, stopped, until, baseline
        self.touched: set[int] = set()
        self.seconds: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        from django.db import connection

        from automation.models import Bot
        from automation.services import bot_start, bot_stop

        pace = 3600 / CHURN_PER_HOUR / 2
        rng = random.Random(21)
        step, next_at = 0, time.monotonic()
        try:
            while next_at < self.until:
                time.sleep(max(0.0, next_at - time.monotonic()))
                stopping = step % 2 == 0
                pool = self.running if stopping else self.stopped
                pk = pool.pop(rng.randrange(len(pool)))
                started = time.perf_counter()
                try:
                    if self.baseline:
                        (old_stop if stopping else old_start)(pk)
                    elif stopping:
                        bot_stop(Bot.objects.get(pk=pk), "bench")
                    else:
                        bot_start(Bot.objects.get(pk=pk))
                except Exception as e:  # counted and shown: a churn that fails is part of the result
                    self.errors.append(f"{type(e).__name__}: {e}")
                self.seconds.append(time.perf_counter() - started)
                (self.stopped if stopping else self.running).append(pk)
                self.touched.add(pk)
                step += 1
                next_at += pace
        finally:
            connection.close()


def start_beat(env: dict[str, str], tmp: Path, scheduler: str | None) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tradingai",
        "beat",
        "--schedule",
        str(tmp / "beat-schedule"),
    ]
    if scheduler:
        command.append(f"--scheduler={scheduler}")
    log = (tmp / "beat.log").open("w")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def run_phase(name: str, bots: int, minutes: int, out: Path) -> None:
    """One run (`name`: dispatch or baseline), in this process on its own database; its figures to `out`."""
    baseline = name == "baseline"
    db_name = DB_NAME + ("_baseline" if baseline else "")
    tmp = Path(tempfile.mkdtemp(prefix="tradingai-bench-schedule-"))
    broker = redis.Redis.from_url(BROKER_URL)
    env = server_env(tmp, db_name, CELERY_BROKER_URL=BROKER_URL, LOG_LEVEL="INFO")
    beat = counter = stop = None
    try:
        try:
            broker.flushdb()
            setup_django(db_name, env)
            seeded_at = time.perf_counter()
            running, stopped = seed(bots, baseline)
            seed_seconds = time.perf_counter() - seeded_at
            close_database()

            ctx = multiprocessing.get_context("spawn")
            stop = ctx.Event()
            arrivals = tmp / "arrivals.txt"
            counter = ctx.Process(target=count_messages, args=(BROKER_URL, str(arrivals), stop))
            counter.start()
            beat = start_beat(
                env, tmp, "django_celery_beat.schedulers:DatabaseScheduler" if baseline else None
            )
            # The window opens on the first whole minute at least a minute after beat started, and lasts
            # `minutes`: beat has loaded its schedule (the baseline's 10,000 entries take seconds) and the
            # first dispatch has sent the slots that came due while the bots were written (minutes of them),
            # which is a start-up's, not the steady state this measures.
            opens = (int(time.time() + 60) // 60 + 1) * 60
            closes = opens + minutes * 60
            time.sleep(max(0.0, opens - time.time()))
            if beat.poll() is not None:
                raise RuntimeError("beat exited:\n" + (tmp / "beat.log").read_text())
            cpu_before = tree_cpu(beat.pid)
            churn = Churn(running, stopped, time.monotonic() + (closes - time.time()), baseline)
            churn.start()
            time.sleep(max(0.0, closes - time.time()))
            beat_cpu = tree_cpu(beat.pid) - cpu_before
            churn.join()
            time.sleep(DRAIN_SECONDS)  # beat goes on: a message of the last minute may still be on its way
        finally:
            if beat is not None:
                beat.terminate()
                beat.wait(timeout=60)
            if stop is not None:
                stop.set()
                counter.join(timeout=30)
        figures = measure(arrivals, opens, closes, churn.touched, baseline)
        figures.update(
            bots=bots, minutes=minutes, seed_seconds=seed_seconds, beat_cpu_per_minute=beat_cpu / minutes,
            churn=len(churn.seconds), churn_errors=churn.errors[:3], churn_error_count=len(churn.errors),
            churn_p50=statistics.median(churn.seconds) if churn.seconds else 0.0,
        )  # fmt: skip
        log = (tmp / "beat.log").read_text()
        dispatches = [
            (int(sent), float(seconds))
            for sent, seconds in re.findall(
                r"dispatched (\d+) cycle\(s\), \d+ slot\(s\) skipped, in ([\d.]+) s", log
            )
        ]
        figures["dispatches"] = dispatches
        figures["beat_errors"] = [
            line for line in log.splitlines() if "ERROR" in line or "Traceback" in line
        ][:3]
        out.write_text(json.dumps(figures))
    finally:
        close_database()
        drop_database(db_name)
        broker.flushdb()
        broker.close()
        shutil.rmtree(tmp, ignore_errors=True)


def measure(arrivals: Path, opens: float, closes: float, touched: set[int], baseline: bool) -> dict:
    """Lateness of every message due inside the window, and the count against the cycles expected."""
    from automation.models import Bot
    from automation.schedule import offset_of, slot_of
    from market.timeframes import TIMEFRAME_PERIODS

    bots = {bot.pk: bot for bot in Bot.objects.only("pk", "exchange", "symbol", "timeframe")}
    offsets = {pk: offset_of(bot) for pk, bot in bots.items()}
    start, end = (datetime.fromtimestamp(t, UTC) for t in (opens, closes))
    lateness, seen, duplicates = [], set(), 0
    for line in arrivals.read_text().splitlines():
        arrived_at, pk, slot = line.split()
        arrived, bot = datetime.fromtimestamp(float(arrived_at), UTC), bots[int(pk)]
        if slot == "-":  # the baseline's message names no slot: the one due last before it arrived
            due = slot_of(bot, arrived - offsets[bot.pk]) + offsets[bot.pk]
        else:
            due = datetime.fromisoformat(slot) + offsets[bot.pk]
        if not start <= due < end:
            continue
        if (bot.pk, due) in seen:
            duplicates += 1
            continue
        seen.add((bot.pk, due))
        lateness.append((arrived - due).total_seconds())
    # The cycles due in the window of the bots running throughout it.
    expected = set()
    for pk, bot in bots.items():
        if pk in touched or pk > len(bots) - STOPPED_POOL:
            continue
        period = TIMEFRAME_PERIODS[bot.timeframe]
        due = slot_of(bot, start - offsets[pk]) + offsets[pk]
        due = due if due >= start else due + period
        while due < end:
            expected.add((pk, due))
            due += period
    cuts = statistics.quantiles(lateness, n=100, method="inclusive") if len(lateness) > 1 else [0.0] * 99
    return {
        "messages": len(lateness),
        "expected": len(expected),
        "missing": len(expected - seen),
        "duplicates": duplicates,
        "p50": cuts[49],
        "p99": cuts[98],
        "max": max(lateness, default=0.0),
        "min": min(lateness, default=0.0),
    }


# --- the report ---------------------------------------------------------------------------------------------
def report(name: str, f: dict) -> None:
    print(
        f"{name}: {f['bots']:,} running bots (15m/1h/4h/1d a quarter each), "
        f"{f['minutes']} min on the real clock"
    )
    print(
        f"  cycles due in the window and sent: {f['messages']:,}; of the {f['expected']:,} due to bots not "
        f"started or stopped meanwhile, missing {f['missing']}; sent twice: {f['duplicates']}"
    )
    print(
        f"  lateness: p50 {f['p50']:.2f} s, p99 {f['p99']:.2f} s, max {f['max']:.2f} s (min {f['min']:.2f} s)"
    )
    print(f"  beat's CPU: {f['beat_cpu_per_minute']:.2f} s a minute")
    if f["dispatches"]:
        seconds = [s for _, s in f["dispatches"]]
        sent = [n for n, _ in f["dispatches"]]
        print(
            f"  dispatches: {len(sent)}, {statistics.mean(sent):.0f} cycles each on average; wall "
            f"p50 {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s"
        )
    print(
        f"  churn: {f['churn']} starts and stops (median {f['churn_p50'] * 1000:.0f} ms each), "
        f"{f['churn_error_count']} failed {f['churn_errors'] or ''}"
    )
    print(f"  seeding took {f['seed_seconds']:.0f} s")
    for line in f["beat_errors"]:
        print(f"  beat log: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=MINUTES, help="the measured window of each run")
    parser.add_argument("--bots", type=int, default=BOTS, help="running bots of the dispatcher's run")
    parser.add_argument(
        "--baseline-bots", type=int, default=BASELINE_BOTS, help="running bots of the baseline"
    )
    parser.add_argument("--phase", choices=["dispatch", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        bots = args.bots if args.phase == "dispatch" else args.baseline_bots
        run_phase(args.phase, bots, args.minutes, Path(args.out))
        return
    if in_own_process("bench.bench_schedule"):
        return
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} before the run")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for phase in ("dispatch", "baseline"):
            out = Path(tmp) / f"{phase}.json"
            # A process each: settings, and so the database, are read once per process.
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.bench_schedule",
                    *sys.argv[1:],
                    "--phase",
                    phase,
                    "--out",
                    str(out),
                ],
                cwd=ROOT,
                check=True,
            )
            results[phase] = json.loads(out.read_text())
    report("dispatch by the minute", results["dispatch"])
    report("baseline, one beat entry per bot (DatabaseScheduler)", results["baseline"])
    d, b = results["dispatch"], results["baseline"]
    print("lateness, dispatch beside baseline, and the target:")
    for cut, target in TARGETS.items():
        verdict = "met" if d[cut] <= target else "NOT met"
        print(f"  {cut}: {d[cut]:.2f} s at {d['bots']:,} bots; baseline {b[cut]:.2f} s at {b['bots']:,}; "
              f"target <= {target:.0f} s ({verdict})")  # fmt: skip
    verdict = "met" if d["beat_cpu_per_minute"] <= CPU_TARGET else "NOT met"
    print(
        f"  dispatcher CPU: {d['beat_cpu_per_minute']:.2f} s a minute; baseline beat "
        f"{b['beat_cpu_per_minute']:.2f} s a minute; target <= {CPU_TARGET:.0f} s ({verdict})"
    )


if __name__ == "__main__":
    main()
