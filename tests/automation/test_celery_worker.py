"""End to end with real processes: a Celery worker and beat on the configured broker (the filesystem
transport by default, Redis in CI) and the test database."""

import io
import os
import subprocess
import sys
import time
from datetime import timedelta
from urllib.parse import quote

import pytest
from amqp.exceptions import ChannelError
from celery import current_app
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from automation.dispatch import dispatch_due
from automation.models import Bot, CycleRun, Heartbeat
from automation.run_now import bot_run_now
from automation.schedule import offset_of
from automation.services import bot_start
from automation.tasks import heartbeat_task
from learning.models import AILearningData
from tradingai.settings.base import BASE_DIR

SAMPLE = {"exchange": "sample", "symbol": "EUR/USD", "timeframe": "1h"}


def url_of_test_database() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def celery_env():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tradingai.settings.test",
        "DATABASE_URL": url_of_test_database(),
        "TRADINGAI_HEARTBEAT_SECONDS": "1",
    }
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        env["CELERY_BROKER_DIR"] = str(settings.CELERY_BROKER_DIR)
    return env


def start(args, env, log):
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tradingai", *args, "--loglevel=INFO"],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_for(predicate, seconds=60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


def seen_after(moment):
    return lambda: Heartbeat.objects.filter(name="queue:default", seen_at__gt=moment).exists()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_task_sent_here_runs_on_the_worker_and_beat_schedules_it(celery_env, tmp_path):
    log_path = tmp_path / "celery.log"
    processes = []
    try:
        with log_path.open("w") as log:
            processes.append(
                start(["worker", "--pool=solo", "--queues=default", "--without-mingle"], celery_env, log)
            )
            # What the web process does: put a task on the broker; the worker must pick it up.
            sent_at = timezone.now()
            heartbeat_task.apply_async(("default",), queue="default")
            assert wait_for(seen_after(sent_at)), log_path.read_text()

            # Beat, with django-celery-beat's DatabaseScheduler, sends it by itself every second, and records
            # its own ticks.
            Heartbeat.objects.update(seen_at=timezone.now() - timedelta(hours=1))
            beat_started = timezone.now()
            processes.append(start(["beat", "--schedule", str(tmp_path / "beat-schedule")], celery_env, log))
            assert wait_for(seen_after(beat_started)), log_path.read_text()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)

    output = log_path.read_text()
    assert "HeartbeatDatabaseScheduler" in output
    assert "Sending due task heartbeat-default" in output
    assert PeriodicTask.objects.filter(
        name="heartbeat-default", task="automation.tasks.heartbeat_task", queue="default"
    ).exists()
    assert Heartbeat.objects.filter(name="beat", seen_at__gt=beat_started).exists()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_run_now_runs_a_whole_cycle_on_the_worker(celery_env, tmp_path):
    """The paper bot of the demo market, started and run now: the worker claims the slot, analyses the
    stored candles, renders the chart and records the analysis."""
    call_command("seed_demo", stdout=io.StringIO())
    bot = Bot.objects.get()
    bot_start(bot)
    slot = bot_run_now(bot)  # no transaction here: the task is sent at once
    log_path = tmp_path / "celery.log"
    with log_path.open("w") as log:
        worker = start(["worker", "--pool=solo", "--queues=default,io", "--without-mingle"], celery_env, log)
        try:
            done = wait_for(
                lambda: CycleRun.objects.filter(bot=bot, status__in=["SUCCEEDED", "FAILED"]).exists()
            )
            assert done, log_path.read_text()
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    run = CycleRun.objects.get(bot=bot)
    assert (run.status, run.slot.isoformat()) == ("SUCCEEDED", slot), run.error
    analysis = AILearningData.objects.get(cycle_run=run)
    assert analysis.analyst == "technical"
    assert analysis.screenshot.name.startswith("charts/rendered/sample/EURUSD_1h_")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_beat_dispatches_a_started_bots_cycle(celery_env, tmp_path):
    """bot_start sets when the bot's cycle is due; beat's dispatcher sends it at the start of that minute and
    the worker runs it. The bot's id is chosen so that its minute of the hour is one or two minutes away."""
    call_command("seed_demo", stdout=io.StringIO())
    demo = Bot.objects.get()
    minute = (timezone.now() + timedelta(seconds=90)).minute
    pk = next(
        pk
        for pk in range(demo.pk + 1, demo.pk + 10_000)
        if offset_of(Bot(pk=pk, **SAMPLE)).seconds == minute * 60
    )
    bot = Bot.objects.create(pk=pk, owner=demo.owner, name="due next minute", **SAMPLE)
    bot_start(bot)
    assert not PeriodicTask.objects.filter(task="automation.tasks.run_cycle_task").exists()
    bot.refresh_from_db()
    assert bot.next_due - timezone.now() <= timedelta(minutes=2)
    log_path = tmp_path / "celery.log"
    processes = []
    try:
        with log_path.open("w") as log:
            processes.append(
                start(["worker", "--pool=solo", "--queues=default,io", "--without-mingle"], celery_env, log)
            )
            processes.append(start(["beat", "--schedule", str(tmp_path / "beat-schedule")], celery_env, log))
            ran = wait_for(lambda: CycleRun.objects.filter(bot=bot, status="SUCCEEDED").exists(), 240)
            assert ran, log_path.read_text()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
    assert "dispatched 1 cycle(s), 0 slot(s) skipped" in log_path.read_text()
    assert AILearningData.objects.filter(bot=bot).exists()
    assert Bot.objects.get(pk=bot.pk).next_due > timezone.now()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_slot_dispatched_twice_to_two_workers_runs_once(celery_env, tmp_path):
    """Two dispatches of one slot (a second beat whose dispatch read the bot before the first moved it on,
    or a commit lost after the send) and two workers taking the messages: one run, one analysis."""
    call_command("seed_demo", stdout=io.StringIO())
    bot = Bot.objects.get()
    bot_start(bot)
    bot.refresh_from_db()
    due = bot.next_due - timedelta(hours=1)  # the slot just gone, which the sample market has
    for _ in range(2):
        Bot.objects.filter(pk=bot.pk).update(next_due=due)
        assert dispatch_due(now=due).sent == 1
    log_path = tmp_path / "celery.log"
    workers = []
    try:
        with log_path.open("w") as log:
            for name in ("one", "two"):
                options = ["--pool=solo", "--queues=io", "--without-mingle", f"--hostname={name}@%h"]
                workers.append(start(["worker", *options], celery_env, log))
            done = CycleRun.objects.filter(bot=bot, status__in=["SUCCEEDED", "FAILED"])
            assert wait_for(done.exists, 90), log_path.read_text()
            # Both messages taken: the second run of the slot found it claimed.
            assert wait_for(lambda: queue_is_empty("io"), 60), log_path.read_text()
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            process.wait(timeout=30)
    [run] = CycleRun.objects.filter(bot=bot)
    assert run.status == "SUCCEEDED", run.error
    assert AILearningData.objects.filter(bot=bot).count() == 1


def queue_is_empty(name: str) -> bool:
    with current_app.connection_for_read() as connection:
        try:
            queue = current_app.amqp.queues[name](connection.default_channel)
            _, count, _ = queue.queue_declare(passive=True)
        except ChannelError:  # kombu's Redis transport has no queue once its last message is taken
            return True
    return count == 0
