"""The platform under load: gunicorn (4 sync workers) and a Celery worker (queues default and io)
on a throwaway PostgreSQL database and Redis, 100 running paper bots of 10 users whose cycles (technical
analyst, offline) are sent slot after slot all through a 60 s load of the REST API at 32 connections over
real HTTP with the users' API tokens: bots list and detail, analyses, trades, runs, insights, and a bot
update. Reports requests/s, latency (p50/p90/p99) and every error of the API; then waits for the cycles
sent and checks that no run was lost: every (bot, slot) sent has its one CycleRun, SUCCEEDED, with its one
analysis. Target: 0 errors, no run lost. (gunicorn's sync workers close each connection after its answer,
so the keep-alive client connects again for each request, as it would to this deployment.)

Run: .venv/bin/python -m bench.bench_load [--slot-seconds S] [--pool threads|prefork] [--concurrency N]
(or `make bench`). Needs PostgreSQL (trust auth, user postgres) and Redis on 127.0.0.1; creates and drops
the database tradingai_bench_load and flushes Redis database 11."""

import argparse
import asyncio
import random
import shutil
import signal
import statistics
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from .common import (
    Request,
    Usage,
    check_connections,
    close_database,
    describe,
    drop_database,
    free_port,
    http_load,
    in_own_process,
    machine_state,
    seed_running_bots,
    server_env,
    setup_django,
    start_celery_worker,
    start_gunicorn,
    stop_processes,
    wait_for,
    wait_until_up,
)

USERS = 10
BOTS = 100  # 10 per user
MARKETS = 5
GUNICORN_WORKERS = 4  # sync, one thread each, as bench_api
# One worker on both queues. Threads, as the Procfile's io worker: on two cores one process leaves the other
# core to gunicorn and PostgreSQL (prefork would put the cycles on both).
POOL, CONCURRENCY = "threads", 4
CONNECTIONS = 32
LOAD_SECONDS = 60.0
SLOT_SECONDS = 5.0  # one slot of every bot's cycle is sent this often during the load
DRAIN_TIMEOUT = 300.0  # seconds after the load for the cycles sent to finish; then the rest count as lost
ERROR_EXAMPLES = 5
RUN_EXAMPLES = 20
TARGET_ERRORS = 0

# Hours of the fixture (2017-04-19 to 2018-02-07) where the technical analyst trades: each bot opens a BUY
# in its history, the monitor closes it during the load and the next cycles open the next trade, so the
# load's cycles execute, close and learn, not only hold. The stored-candle clock is the slot, so any hour
# inside the fixture runs; the load's slots follow the history hour after hour, as a bot's cycles would.
HISTORY_START = datetime(2018, 1, 17, 16, tzinfo=UTC)
HISTORY_SLOTS = 4
FIXTURE_END = datetime(2018, 2, 7, tzinfo=UTC)

DB_NAME = "tradingai_bench_load"
BROKER_URL = "redis://127.0.0.1:6379/11"  # tests use 5, bench_cycles 9

# (name, weight, method, path, body): what a dashboard or an integration asks most, and one write. {bot} is
# one of the user's bots. The update sets the value the bot has: a full write of its row (the form saves
# every field) while its cycles run, the decisions unchanged. Run-now is left out: it answers 409 for a
# slot already run, and the current hour is outside the stored candles.
MIX = [
    ("GET /api/v1/bots/", 15, "GET", "/api/v1/bots/", None),
    ("GET /api/v1/bots/{id}/", 10, "GET", "/api/v1/bots/{bot}/", None),
    ("GET /api/v1/analyses/", 20, "GET", "/api/v1/analyses/", None),
    ("GET /api/v1/trades/", 15, "GET", "/api/v1/trades/", None),
    ("GET /api/v1/runs/", 10, "GET", "/api/v1/runs/", None),
    ("GET /api/v1/runs/?bot={id}", 5, "GET", "/api/v1/runs/?bot={bot}", None),
    ("GET /api/v1/insights/", 15, "GET", "/api/v1/insights/", None),
    ("PATCH /api/v1/bots/{id}/", 10, "PATCH", "/api/v1/bots/{bot}/", {"min_confidence": 70}),
]


class Dispatcher(threading.Thread):
    """Sends the cycle of every bot for one slot, the next slot every `interval` seconds from its start,
    as beat would each hour; run_cycle_task with a slot runs it whatever the wall clock (on_schedule off)."""

    def __init__(self, bot_ids: list[int], slots: list[datetime], interval: float) -> None:
        super().__init__(name="dispatcher", daemon=True)
        self.bot_ids, self.slots, self.interval = bot_ids, slots, interval
        self.sent: list[tuple[int, datetime]] = []
        self.sent_at: dict[datetime, datetime] = {}  # slot: when its first task was sent
        self.behind = 0.0  # seconds the latest slot was sent after its time, if sending fell behind
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        from automation.tasks import run_cycle_task

        started = time.monotonic()
        for k, slot in enumerate(self.slots):
            due = started + k * self.interval
            if self.stopping.wait(max(due - time.monotonic(), 0)):
                return
            self.behind = max(self.behind, time.monotonic() - due)
            self.sent_at[slot] = datetime.now(UTC)
            for bot in self.bot_ids:
                try:
                    run_cycle_task.delay(bot, slot.isoformat())
                except Exception as error:  # counted as a lost run, and said why
                    self.failures.append(
                        f"bot {bot} slot {slot:%Y-%m-%d %H:%M}: {type(error).__name__}: {error}"
                    )
                    continue
                self.sent.append((bot, slot))


# --- setting up ---------------------------------------------------------------------------------------------
def seed() -> tuple[dict[int, str], dict[int, list[int]]]:
    """The users, their bots and an API token each. Returns ({user id: token}, {user id: [bot ids]})."""
    from accounts.models import ApiToken
    from automation.models import Bot

    bots = seed_running_bots(BOTS, MARKETS, USERS, Bot.Analyst.TECHNICAL)
    owners = {bot.owner_id: bot.owner for bot in bots}
    tokens = {pk: ApiToken.issue(owner, "bench")[1] for pk, owner in owners.items()}
    bots_of: dict[int, list[int]] = {pk: [] for pk in owners}
    for bot in bots:
        bots_of[bot.owner_id].append(bot.pk)
    return tokens, bots_of


def history(bot_ids: list[int], alive) -> None:
    """HISTORY_SLOTS slots of every bot through the worker before the load, so that the lists have rows and
    the worker has paid its first cycle's imports and fonts. All of them must succeed."""
    from automation.models import CycleRun
    from automation.tasks import run_cycle_task
    from learning.models import AILearningData
    from trades.models import Trade

    slots = [HISTORY_START + timedelta(hours=h) for h in range(HISTORY_SLOTS)]
    started = time.perf_counter()
    for slot in slots:
        for bot in bot_ids:
            run_cycle_task.delay(bot, slot.isoformat())
    runs = CycleRun.objects.filter(slot__in=slots)
    done = runs.exclude(status__in=[CycleRun.Status.CLAIMED, CycleRun.Status.RUNNING])
    if not wait_for(lambda: alive() and done.count() == len(slots) * len(bot_ids), DRAIN_TIMEOUT, 0.5):
        raise RuntimeError(f"history: {done.count()} of {len(slots) * len(bot_ids)} cycles finished")
    bad = list(runs.exclude(status=CycleRun.Status.SUCCEEDED)[:RUN_EXAMPLES])
    if bad:
        raise RuntimeError("history: " + "; ".join(f"{r}: {r.failed_step} {r.error}" for r in bad))
    trades, still_open = Trade.objects.count(), Trade.objects.filter(status=Trade.Status.OPEN).count()
    print(
        f"history, {HISTORY_SLOTS} slots ({slots[0]:%Y-%m-%d %H:%M} to {slots[-1]:%H:%M}) of every bot "
        f"through the worker in {time.perf_counter() - started:.1f} s: "
        f"{AILearningData.objects.count():,} analyses, {trades:,} trades ({still_open:,} open)"
    )


# --- measuring ----------------------------------------------------------------------------------------------
def picker(base: str, tokens: dict[int, str], bots_of: dict[int, list[int]]):
    rng = random.Random(9)
    users = sorted(tokens)
    weights = [weight for _, weight, *_ in MIX]

    def pick() -> Request:
        name, _, method, path, body = rng.choices(MIX, weights)[0]
        user = rng.choice(users)
        url = base + path.format(bot=rng.choice(bots_of[user]))
        return Request(name, method, url, tokens[user], body)

    return pick


def report_api(result, usage: str) -> int:
    """Prints the load's figures; returns the error count."""
    print(
        f"  API: {result.total:,} requests in {result.seconds:.1f} s: "
        f"{result.total / result.seconds:.1f} requests/s"
    )
    if len(result.latencies) >= 2:
        print(f"  latency, all: {describe([s for _, s in result.latencies])}")
    for name, *_ in MIX:
        samples = [s for n, s in result.latencies if n == name]
        if len(samples) >= 2:
            print(f"    {name} ({len(samples):,}): {describe(samples)}")
    print(f"  API errors: {len(result.errors)}")
    kinds = Counter((name, kind) for name, kind, _ in result.errors)
    for (name, kind), count in kinds.most_common():
        print(f"    {count:>5} x {kind} on {name}")
    for _, kind, detail in result.errors[:ERROR_EXAMPLES]:
        print(f"    e.g. {kind} {detail}")
    print(f"  {usage}")
    return len(result.errors)


def seconds(samples: list[float]) -> str:
    if len(samples) < 2:
        return f"{samples[0]:.2f} s" if samples else "none"
    return (
        f"p50 {statistics.median(samples):.2f} s, p99 {statistics.quantiles(samples, n=100)[98]:.2f} s, "
        f"max {max(samples):.2f} s"
    )


def check_runs(dispatcher: Dispatcher, load_end: datetime, drained: bool) -> int:
    """Prints what became of every cycle sent; returns how many were lost: not sent, missing, not
    SUCCEEDED, without exactly one analysis, or with more than one order."""
    from django.db.models import Count, Max

    from automation.models import Bot, CycleRun
    from learning.models import AILearningData
    from trades.models import Trade

    slots = dispatcher.slots
    planned = len(dispatcher.bot_ids) * len(slots)
    runs = {(r.bot_id, r.slot): r for r in CycleRun.objects.filter(slot__in=slots)}
    missing = [key for key in dispatcher.sent if key not in runs]
    sent = [runs[key] for key in dispatcher.sent if key in runs]
    statuses = Counter(run.status for run in sent)
    bad = [run for run in sent if run.status != CycleRun.Status.SUCCEEDED]
    analyses = Counter(
        AILearningData.objects.filter(cycle_run__in=[run.pk for run in sent]).values_list(
            "cycle_run", flat=True
        )
    )
    succeeded = [run for run in sent if run.status == CycleRun.Status.SUCCEEDED]
    unrecorded = [run for run in succeeded if analyses[run.pk] == 0]
    doubled = [run for run in sent if analyses[run.pk] > 1]
    trades = Trade.objects.filter(analysis__cycle_run__slot__in=slots)
    orders = trades.values("analysis").annotate(n=Count("pk")).filter(n__gt=1).count()
    during = sum(1 for run in sent if run.finished_at and run.finished_at <= load_end)
    first = min(dispatcher.sent_at.values()) if dispatcher.sent_at else load_end
    last = CycleRun.objects.filter(slot__in=slots).aggregate(last=Max("finished_at"))["last"]
    finished = sum(
        statuses[s] for s in (CycleRun.Status.SUCCEEDED, CycleRun.Status.FAILED, CycleRun.Status.SKIPPED)
    )

    print(
        f"cycles: {len(dispatcher.sent):,} sent of {planned:,} ({len(slots)} slots of "
        f"{len(dispatcher.bot_ids)} bots, {slots[0]:%Y-%m-%d %H:%M} to {slots[-1]:%Y-%m-%d %H:%M})"
    )
    print(
        f"  run: {len(sent):,}: {statuses[CycleRun.Status.SUCCEEDED]:,} succeeded, "
        f"{statuses[CycleRun.Status.FAILED]:,} failed, {statuses[CycleRun.Status.SKIPPED]:,} skipped, "
        f"{statuses[CycleRun.Status.CLAIMED] + statuses[CycleRun.Status.RUNNING]:,} unfinished; "
        f"missing (no CycleRun): {len(missing):,}"
        + ("" if drained else f"  (wait stopped after {DRAIN_TIMEOUT:.0f} s)")
    )
    print(
        f"  finished during the load: {during:,} ({during / LOAD_SECONDS:.1f} cycles/s); slots sent at most "
        f"{dispatcher.behind:.2f} s after their time"
    )
    if last and finished:
        wall = (last - first).total_seconds()
        print(
            f"  first sent to last finished: {wall:.1f} s: {finished / wall:.1f} cycles/s; "
            f"the last finished {(last - load_end).total_seconds():.1f} s after the load ended"
        )
    waits = [(r.started_at - dispatcher.sent_at[r.slot]).total_seconds() for r in sent if r.started_at]
    took = [(r.finished_at - r.started_at).total_seconds() for r in sent if r.finished_at and r.started_at]
    print(f"  queued, sent to started: {seconds(waits)}; started to finished: {seconds(took)}")
    print(
        f"  analyses: {sum(analyses.values()):,}; succeeded runs without one: {len(unrecorded)}, runs with "
        f"more than one: {len(doubled)}; trades opened: {trades.count():,}, runs with more than one: {orders}"
    )
    for failure in dispatcher.failures[:RUN_EXAMPLES]:
        print(f"    not sent: {failure}")
    status_of = dict(Bot.objects.values_list("pk", "status"))
    for bot, slot in missing[:RUN_EXAMPLES]:
        print(f"    missing: bot {bot} slot {slot:%Y-%m-%d %H:%M} (bot {status_of.get(bot)})")
    for run in bad[:RUN_EXAMPLES]:
        print(
            f"    {run.status}: bot {run.bot_id} slot {run.slot:%Y-%m-%d %H:%M} {run.failed_step} {run.error}"
        )
    for run in (unrecorded + doubled)[:RUN_EXAMPLES]:
        print(f"    analyses {analyses[run.pk]}: bot {run.bot_id} slot {run.slot:%Y-%m-%d %H:%M}")
    not_sent = planned - len(dispatcher.sent)
    return not_sent + len(missing) + len(bad) + len(unrecorded) + len(doubled) + orders


def log_errors(label: str, log: Path) -> None:
    lines = log.read_text().splitlines() if log.exists() else []
    problems = [line for line in lines if "ERROR" in line or "Traceback" in line or "CRITICAL" in line]
    if problems:
        print(f"  {label} log: {len(problems)} error line(s), the first: {problems[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slot-seconds", type=float, default=SLOT_SECONDS, help="seconds between slots sent")
    parser.add_argument(
        "--pool", choices=("threads", "prefork"), default=POOL, help="the Celery worker's pool"
    )
    parser.add_argument(
        "--concurrency", type=int, default=CONCURRENCY, help="the Celery worker's concurrency"
    )
    args = parser.parse_args()

    if in_own_process("bench.bench_load"):
        return

    load_slots = [
        HISTORY_START + timedelta(hours=HISTORY_SLOTS + k)
        for k in range(int(LOAD_SECONDS // args.slot_seconds))
    ]
    if load_slots[-1] >= FIXTURE_END:
        raise SystemExit(f"--slot-seconds {args.slot_seconds}: the slots would run past the stored candles")
    check_connections(GUNICORN_WORKERS + args.concurrency)
    print(machine_state())
    # A kill (SIGTERM) cleans up as Ctrl-C does: the servers stopped, the database dropped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    begun = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="tradingai-bench-load-"))
    broker = redis.Redis.from_url(BROKER_URL)
    env = server_env(
        tmp,
        DB_NAME,
        CELERY_BROKER_URL=BROKER_URL,
        MEDIA_ROOT=str(tmp / "media"),
        OPENAI_API_KEY="",  # the technical analyst: nothing leaves the machine
    )
    servers = []
    try:
        broker.flushdb()
        setup_django(DB_NAME, env)
        from automation.models import CycleRun
        from tradingai.celery import app

        tokens, bots_of = seed()
        bot_ids = sorted(bot for bots in bots_of.values() for bot in bots)
        print(
            f"{USERS} users with an API token, {BOTS} running paper bots (technical analyst) on {MARKETS} "
            f"markets of the stored EUR/USD hours"
        )

        worker_log, gunicorn_log = tmp / "worker.log", tmp / "gunicorn.log"
        worker = start_celery_worker(
            env, worker_log, queues="default,io", hostname="bench-load@%h", pool=args.pool,
            concurrency=args.concurrency,
        )  # fmt: skip
        servers.append(worker)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_gunicorn(env, port, gunicorn_log, GUNICORN_WORKERS)
        servers.append(server)

        def down() -> str:
            """Which server has exited, with its log; "" while both are up."""
            for name, process, log in (
                ("Celery worker", worker, worker_log),
                ("gunicorn", server, gunicorn_log),
            ):
                if process.poll() is not None:
                    return f"the {name} exited with {process.returncode}:\n{log.read_text()}"
            return ""

        def alive() -> bool:
            if down():
                raise RuntimeError(down())
            return True

        if not wait_for(lambda: alive() and len(app.control.ping(timeout=0.5)) == 1, 60):
            raise RuntimeError("the Celery worker did not answer a ping within 60 s")
        wait_until_up(server, base + "/api/v1/bots/", next(iter(tokens.values())), gunicorn_log)
        print(
            f"gunicorn: {GUNICORN_WORKERS} sync workers, DEBUG off, on {base}; Celery worker: queues default "
            f"and io, --pool={args.pool} --concurrency={args.concurrency}, broker {BROKER_URL}"
        )
        history(bot_ids, alive)

        print(
            f"load: {CONNECTIONS} connections for {LOAD_SECONDS:.0f} s over the users' tokens, while every "
            f"bot's cycle is sent for the next slot every {args.slot_seconds:g} s ({len(load_slots)} slots):"
        )
        dispatcher = Dispatcher(bot_ids, load_slots, args.slot_seconds)
        usage = Usage({"gunicorn": server, "Celery worker": worker}).start()
        dispatcher.start()
        try:
            result = asyncio.run(http_load(picker(base, tokens, bots_of), CONNECTIONS, LOAD_SECONDS))
            load_end = datetime.now(UTC)
            dispatcher.join()  # every slot is sent, the last ones late if sending fell behind
        finally:
            dispatcher.stopping.set()  # on a failure or Ctrl-C: no more slots
            dispatcher.join()
        errors = report_api(result, usage.stop())

        finished = [CycleRun.Status.SUCCEEDED, CycleRun.Status.FAILED, CycleRun.Status.SKIPPED]
        done = CycleRun.objects.filter(slot__in=load_slots, status__in=finished)
        # A server that died is reported with what it lost, not raised: the runs are the point.
        drained = wait_for(lambda: bool(down()) or done.count() >= len(dispatcher.sent), DRAIN_TIMEOUT, 0.5)
        if down():
            print(f"  {down()}")
        lost = check_runs(dispatcher, load_end, drained)
        log_errors("gunicorn", gunicorn_log)
        log_errors("Celery worker", worker_log)

        print("targets: 0 errors, no run lost")
        print(f"  API errors: {errors} ({'met' if errors <= TARGET_ERRORS else 'NOT met'})")
        print(f"  runs lost: {lost} of {BOTS * len(load_slots):,} sent ({'met' if lost == 0 else 'NOT met'})")
    finally:
        stop_processes(servers)
        close_database()
        drop_database(DB_NAME)
        broker.flushdb()
        broker.close()
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"whole run: {time.perf_counter() - begun:.0f} s")


if __name__ == "__main__":
    main()
