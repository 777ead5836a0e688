"""Faults of the processes around a cycle, with real ones: the database server ending the cycle's
connection, the broker (a private redis-server) killed and started again, a Celery worker killed while its
analyst waits on the OpenAI stand-in. Per fault: the run records the step and the reason, nothing written
before is lost or doubled, and the next slot runs."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import kombu.pools
import psycopg
import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from automation import cycle, schedule
from automation.cycle import run_cycle
from automation.models import AutomationSession, Bot, CycleRun
from automation.recovery import recover_lost_runs
from automation.tasks import recover_lost_runs_task, run_cycle_task
from learning.models import AILearningData
from market.sources import Market, StoredCandles
from tests.automation.test_celery_worker import url_of_test_database, wait_for
from tests.automation.test_cycle import HOUR, SLOT, FakeAnalyst, fakes
from tests.factories import BotFactory, import_eurusd
from tests.stand_ins.openai_server import OpenAIStandIn
from trades.models import Trade
from tradingai.celery import app
from tradingai.settings.base import BASE_DIR, REDIS_BROKER_TRANSPORT_OPTIONS


@pytest.fixture
def paper_bot(alice):
    import_eurusd()
    bot = BotFactory(
        owner=alice, exchange="sample", symbol="EUR/USD", timeframe="1h", status=Bot.Status.RUNNING
    )
    AutomationSession.objects.create(bot=bot)
    return bot


# --- the database connection drops ----------------------------------------------------------------------


def second_connection() -> psycopg.Connection:
    """A connection of its own to the test database, as an operator's psql would be."""
    db = connection.settings_dict
    return psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"] or None,
        host=db["HOST"] or "localhost",
        port=db["PORT"] or 5432,
        autocommit=True,
    )


def terminate(other: psycopg.Connection, pid: int) -> None:
    """pg_terminate_backend, waiting (up to 5 s) until the backend has gone."""
    [(gone,)] = other.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchall()
    assert gone


def drop_this_connection() -> None:
    """The server ends the backend this thread's Django connection is using (a failover, an operator, an
    idle-session timeout): the next query on it fails."""
    with contextlib.closing(second_connection()) as other:
        terminate(other, connection.connection.info.backend_pid)


def restart_database() -> None:
    """Every backend of the test database ends, the pooled idle ones too, as when PostgreSQL restarts."""
    with contextlib.closing(second_connection()) as other:
        others = other.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        for (pid,) in others.fetchall():
            terminate(other, pid)


@pytest.fixture
def postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: a backend to terminate (SQLite has no server connection to drop)")
    yield
    # A test that failed may leave its connection dead; the database flush after it needs a live one.
    connection.close()


def dropping_before(real):
    def step(*args, **kwargs):
        drop_this_connection()
        return real(*args, **kwargs)

    return step


def dropping_after(real):
    def step(*args, **kwargs):
        result = real(*args, **kwargs)
        drop_this_connection()
        return result

    return step


@pytest.mark.django_db(transaction=True)
def test_a_connection_dropped_mid_cycle_fails_the_run_at_its_step_keeps_what_was_written_next_slot_runs(
    postgresql, paper_bot, monkeypatch
):
    first = run_cycle(paper_bot.pk, SLOT, fakes())
    assert first.status == "SUCCEEDED"
    [trade] = Trade.objects.all()

    # Dropped as the monitor step reads the open trades, its first query (automation.reads.watched).
    monkeypatch.setattr(cycle.reads, "watched", dropping_before(cycle.reads.watched))
    second = run_cycle(paper_bot.pk, SLOT + HOUR, fakes())
    assert (second.status, second.failed_step, second.step) == ("FAILED", "monitor", "monitor"), second.error
    assert second.error == "OperationalError: terminating connection due to administrator command"
    monkeypatch.undo()

    assert AILearningData.objects.filter(cycle_run=second).count() == 1
    assert list(Trade.objects.values_list("pk", "client_order_id")) == [(trade.pk, trade.client_order_id)]
    # A redelivery or the task's retry finds the slot done and writes nothing.
    assert run_cycle(paper_bot.pk, SLOT + HOUR, fakes()).pk == second.pk
    assert AILearningData.objects.count() == 2

    third = run_cycle(paper_bot.pk, SLOT + 2 * HOUR, fakes())
    assert third.status == "SUCCEEDED", third.error
    assert AILearningData.objects.filter(cycle_run=third).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_connection_dropped_after_the_trade_is_written_still_records_the_run_as_succeeded(
    postgresql, paper_bot, monkeypatch
):
    """The last write of the cycle, its run's SUCCEEDED, meets the dead connection."""
    monkeypatch.setattr(cycle, "_execute", dropping_after(cycle._execute))
    run = run_cycle(paper_bot.pk, SLOT, fakes())
    assert run.status == "SUCCEEDED", run.error
    monkeypatch.undo()
    [trade] = Trade.objects.all()
    assert (trade.client_order_id, trade.analysis.cycle_run) == (f"tai-{run.pk}-open", run)
    assert run_cycle(paper_bot.pk, SLOT, fakes()).pk == run.pk
    assert (AILearningData.objects.count(), Trade.objects.count()) == (1, 1)
    assert run_cycle(paper_bot.pk, SLOT + HOUR, fakes()).status == "SUCCEEDED"


@pytest.mark.django_db(transaction=True)
def test_the_database_restarting_while_the_analyst_waits_loses_no_analysis(postgresql, paper_bot):
    """The cycle hands its connection back to the pool for the analyst's wait; the pool's idle connections
    die with the restart, and the pool checks the one it hands out next (CONN_HEALTH_CHECKS)."""

    class RestartingAnalyst(FakeAnalyst):
        def analyse(self, request):
            restart_database()
            return super().analyse(request)

    run = run_cycle(paper_bot.pk, SLOT, fakes(analyst=RestartingAnalyst()))
    assert run.status == "SUCCEEDED", run.error
    assert AILearningData.objects.filter(cycle_run=run).count() == 1
    assert Trade.objects.filter(analysis__cycle_run=run).count() == 1


# --- real processes: a private broker and Celery workers ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A redis-server of the test's own on 127.0.0.1, keeping nothing on disk: killed and started again on
    the same port, it comes back empty, as a broker restarted without persistence does."""

    def __init__(self, folder: Path):
        self.port, self.folder, self.process = free_port(), folder, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        assert wait_for(self.answers, 10), "redis-server did not start"

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as client:
                client.sendall(b"PING\r\n")
                return client.recv(7) == b"+PONG\r\n"
        except OSError:
            return False

    def unacked(self) -> int | None:
        """The messages a worker has taken and not acknowledged yet (kombu's redis transport keeps them in the
        hash `unacked`), or None if the server does not answer."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as client:
                client.sendall(b"HLEN unacked\r\n")
                return int(client.recv(32).strip().lstrip(b":"))
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@contextlib.contextmanager
def sending_to(broker_url: str):
    """This process (the web's part: run-now, and the test's own sends) sends its tasks to `broker_url`, with
    the production Redis options, for the while."""

    def forget_connections():
        # Celery keeps a pool of broker connections per app and kombu one per URL; both are built lazily
        # from the configuration, so they are dropped for the next send to build them from the new one.
        kombu.pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    saved = app.conf.get("broker_write_url"), app.conf.broker_transport_options
    forget_connections()
    app.conf.broker_write_url, app.conf.broker_transport_options = broker_url, REDIS_BROKER_TRANSPORT_OPTIONS
    try:
        yield
    finally:
        forget_connections()
        app.conf.broker_write_url, app.conf.broker_transport_options = saved


@pytest.fixture
def broker(tmp_path):
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        with sending_to(redis.url):
            yield redis
    finally:
        redis.kill()


@pytest.fixture
def workers(broker, tmp_path):
    """Starts Celery workers on the private broker and the test database; each in a process group of its
    own, so that every process one leaves (its pool's too) is ended after the test."""
    started: list[subprocess.Popen] = []
    log_path = tmp_path / "celery.log"
    log = log_path.open("w")

    def start(*args: str, **env: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tradingai", "worker", "--queues=io,default",
             "--without-mingle", "--without-gossip", "--loglevel=INFO", *args],
            cwd=BASE_DIR,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tradingai.settings.test",
                "DATABASE_URL": url_of_test_database(),
                "CELERY_BROKER_URL": broker.url,
                **env,
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        started.append(process)
        return process

    start.log = lambda: log_path.read_text()
    try:
        yield start
    finally:
        for process in started:
            if process.poll() is None:
                process.terminate()  # a warm shutdown first, as an operator would
        for process in started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=20)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


def stop(worker: subprocess.Popen) -> None:
    worker.terminate()
    worker.wait(timeout=30)


def ended(bot: Bot, slot: datetime):
    return lambda: CycleRun.objects.filter(bot=bot, slot=slot, status__in=["SUCCEEDED", "FAILED"]).exists()


def run_of(bot: Bot, slot: datetime) -> CycleRun:
    return CycleRun.objects.get(bot=bot, slot=slot)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_after_the_broker_restarts_the_worker_runs_the_next_slot_and_run_now_meanwhile_says_the_queue_is_down(
    paper_bot, broker, workers, client
):
    workers("--pool=solo")
    run_cycle_task.delay(paper_bot.pk, SLOT.isoformat())
    assert wait_for(ended(paper_bot, SLOT), 60), workers.log()
    first = run_of(paper_bot, SLOT)
    assert first.status == "SUCCEEDED", first.error
    # The worker acknowledges the task after the run is written. Killed in between, the broker would race
    # the acknowledgement, which kombu's redis transport answers by stopping the worker (an AttributeError in
    # its restoring of unacknowledged messages): a supervisor would start it again, this test's does not.
    assert wait_for(lambda: broker.unacked() == 0, 10), workers.log()

    broker.kill()
    # The owner presses run-now while the broker is down: a message saying so, on the page and from the API;
    # nothing is claimed, so pressing again later runs the slot.
    client.force_login(paper_bot.owner)
    sent_at = time.monotonic()
    page = client.post(reverse("bot_action", args=[paper_bot.pk, "run-now"]), follow=True)
    assert page.status_code == 200
    assert "The task queue cannot be reached just now" in page.content.decode()
    answer = client.post(f"/api/v1/bots/{paper_bot.pk}/run-now/")
    assert answer.status_code == 503
    assert "task queue cannot be reached" in answer.json()["detail"]
    assert time.monotonic() - sent_at < 10
    assert list(CycleRun.objects.values_list("slot", "status")) == [(SLOT, "SUCCEEDED")]

    broker.start()
    run_cycle_task.delay(paper_bot.pk, (SLOT + HOUR).isoformat())
    assert wait_for(ended(paper_bot, SLOT + HOUR), 60), workers.log()
    second = run_of(paper_bot, SLOT + HOUR)
    assert second.status == "SUCCEEDED", second.error
    assert "Connection to broker lost" in workers.log()
    assert [AILearningData.objects.filter(cycle_run=run).count() for run in (first, second)] == [1, 1]
    assert Trade.objects.filter(analysis__cycle_run=second).count() <= 1
    assert len(set(Trade.objects.values_list("client_order_id", flat=True))) == Trade.objects.count()


@pytest.mark.django_db(transaction=True)
def test_run_now_against_a_hung_broker_says_the_queue_is_down_within_seconds(paper_bot, broker, client):
    """A broker that takes connections but never answers (paused, swapping, a half-open connection after a
    failover): without socket timeouts the send, and the owner's request, would wait forever."""
    client.force_login(paper_bot.owner)
    broker.process.send_signal(signal.SIGSTOP)
    try:
        sent_at = time.monotonic()
        answer = client.post(f"/api/v1/bots/{paper_bot.pk}/run-now/")
        waited = time.monotonic() - sent_at
    finally:
        broker.process.send_signal(signal.SIGCONT)
    assert answer.status_code == 503, answer.content
    assert waited < 20  # the 5 s socket timeout, once or twice (Celery retries a failed send)
    assert not CycleRun.objects.exists()


def openai_answer(slot: datetime) -> str:
    """What FakeAnalyst answers, as the model would send it: a BUY at the last close before the slot."""
    close = StoredCandles().candles(Market("sample", "EUR/USD", "1h"), limit=1, until=slot)["close"].iloc[-1]
    return json.dumps(
        {
            "summary": "Higher lows above a rising EMA20.",
            "market_sentiment": "BULLISH",
            "key_levels": {"support": [close * 0.998], "resistance": [close * 1.004]},
            "recommendation": "BUY",
            "confidence": 80,
            "reasoning": "Trend and momentum agree.",
            "entry": close,
            "stop_loss": close * 0.998,
            "take_profit": close * 1.004,
            "predicted_price": close * 1.003,
            "horizon": 10,
        }
    )


def children_of(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return children


STALE_SECONDS = 2


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "pool, killed",
    [
        ("--pool=prefork", "pool process"),  # Celery's default pool: the child running the task dies
        ("--pool=threads", "worker"),  # the io worker of the Procfile: the task dies with the worker
    ],
)
def test_a_worker_killed_while_its_analyst_waits_leaves_a_run_failed_at_its_step_and_the_next_slot_runs(
    paper_bot, workers, pool, killed
):
    Bot.objects.filter(pk=paper_bot.pk).update(analyst=Bot.Analyst.OPENAI)
    stand_in = OpenAIStandIn().start()
    try:
        stand_in.add_content(openai_answer(SLOT))
        stand_in.add_delay(60, openai_answer(SLOT + HOUR))  # the wait the worker is killed in
        stand_in.add_content(openai_answer(SLOT + 2 * HOUR))
        env = {
            "OPENAI_API_KEY": "sk-stand-in",
            "OPENAI_BASE_URL": stand_in.base_url,
            "OPENAI_MAX_RETRIES": "0",
            "TRADINGAI_STALE_RUN_SECONDS": str(STALE_SECONDS),
        }
        worker = workers(pool, "--concurrency=1", **env)
        run_cycle_task.delay(paper_bot.pk, SLOT.isoformat())
        assert wait_for(ended(paper_bot, SLOT), 60), workers.log()
        first = run_of(paper_bot, SLOT)
        assert first.status == "SUCCEEDED", first.error
        [trade] = Trade.objects.all()

        run_cycle_task.delay(paper_bot.pk, (SLOT + HOUR).isoformat())
        assert wait_for(lambda: len(stand_in.requests) == 2, 60), workers.log()
        waiting = run_of(paper_bot, SLOT + HOUR)
        assert (waiting.status, waiting.step) == ("RUNNING", "analysis")
        if killed == "pool process":
            [child] = children_of(worker.pid)
            os.kill(child, signal.SIGKILL)
            # Celery acknowledges the task as failed (task_reject_on_worker_lost is off): no redelivery.
            assert wait_for(lambda: "WorkerLostError" in workers.log(), 30), workers.log()
            stop(worker)
        else:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
        # Nothing in Celery ends the run: it stays RUNNING, its slot taken.
        assert run_of(paper_bot, SLOT + HOUR).status == "RUNNING"

        workers(pool, "--concurrency=1", **env)
        # Beat sends the sweep every few minutes; here once the run is older than the (shortened) limit.
        assert wait_for(lambda: timezone.now() - waiting.started_at > timedelta(seconds=STALE_SECONDS))
        recover_lost_runs_task.delay()
        assert wait_for(ended(paper_bot, SLOT + HOUR), 60), workers.log()
        lost = run_of(paper_bot, SLOT + HOUR)
        assert (lost.status, lost.failed_step) == ("FAILED", "analysis")
        assert lost.error.startswith("the worker running it stopped (lost) during analysis")

        run_cycle_task.delay(paper_bot.pk, (SLOT + 2 * HOUR).isoformat())
        assert wait_for(ended(paper_bot, SLOT + 2 * HOUR), 60), workers.log()
        third = run_of(paper_bot, SLOT + 2 * HOUR)
        assert third.status == "SUCCEEDED", third.error
    finally:
        stand_in.stop()

    # What was written before the kill is there once; the killed run wrote nothing and was not run again.
    assert [AILearningData.objects.filter(cycle_run=run).count() for run in (first, lost, third)] == [1, 0, 1]
    assert Trade.objects.filter(analysis__cycle_run=first).get() == trade
    assert len(stand_in.requests) == 3
    assert len(set(Trade.objects.values_list("client_order_id", flat=True))) == Trade.objects.count()


def test_the_sweep_fails_only_runs_older_than_the_limit_at_their_last_step(paper_bot, settings):
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "automation.tasks.recover_lost_runs_task" in scheduled
    long_ago = timezone.now() - schedule.STALE_RUN - HOUR

    def run(hours, status, **fields):
        made = CycleRun.objects.create(bot=paper_bot, slot=SLOT + hours * HOUR, status=status, **fields)
        CycleRun.objects.filter(pk=made.pk).update(created_at=fields.get("started_at", timezone.now()))
        return made

    lost = run(0, "RUNNING", started_at=long_ago, step="chart")
    never_started = run(1, "CLAIMED", started_at=long_ago)
    running = run(2, "RUNNING", started_at=timezone.now() - schedule.STALE_RUN + HOUR / 60, step="analysis")
    done = run(3, "SUCCEEDED", started_at=long_ago, step="decide")
    assert recover_lost_runs() == 2
    assert recover_lost_runs() == 0
    states = {r.pk: (r.status, r.failed_step) for r in CycleRun.objects.all()}
    assert states == {
        lost.pk: ("FAILED", "chart"),
        never_started.pk: ("FAILED", "claim"),
        running.pk: ("RUNNING", ""),
        done.pk: ("SUCCEEDED", ""),
    }
    assert CycleRun.objects.get(pk=lost.pk).error == (
        "the worker running it stopped (lost) during chart: still RUNNING after "
        f"{schedule.STALE_RUN}, longer than a cycle may take"
    )


def test_steps_are_noted_as_they_start(paper_bot):
    noted = run_cycle(paper_bot.pk, SLOT, fakes())
    assert (noted.status, noted.step) == ("SUCCEEDED", "execute")
