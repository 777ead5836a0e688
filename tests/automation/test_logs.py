"""The product's log lines (settings.LOGGING): a cycle's user, bot, run and slot on each line it logs, as text
or as JSON (LOG_FORMAT), and an unexpected error logged with its traceback."""

import copy
import io
import json
import logging
import logging.config
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.management import call_command

from automation.cycle import run_cycle
from automation.models import Bot, CycleRun
from automation.run_now import bot_run_now
from automation.services import bot_start
from tests.automation.test_celery_worker import celery_env, start, wait_for
from tests.automation.test_cycle import SLOT, _candles, bot, fakes
from tradingai.settings.base import BASE_DIR

__all__ = ["_candles", "bot", "celery_env"]


@pytest.fixture
def product_log():
    """What the console handler of settings.LOGGING writes of the `automation` loggers, in a format."""
    stream = io.StringIO()
    handlers = []

    def attach(fmt: str) -> io.StringIO:
        config = copy.deepcopy(settings.LOGGING)
        configurator = logging.config.DictConfigurator(config)
        handler = logging.StreamHandler(stream)
        handler.setFormatter(configurator.configure_formatter(config["formatters"][fmt]))
        handler.addFilter(configurator.configure_filter(config["filters"]["context"]))
        logging.getLogger("automation").addHandler(handler)
        handlers.append(handler)
        return stream

    yield attach
    for handler in handlers:
        logging.getLogger("automation").removeHandler(handler)


def test_a_forced_error_in_decide_leaves_its_traceback_in_the_log_and_the_run_failed_at_decide(
    bot, monkeypatch, product_log
):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug in the decision")

    monkeypatch.setattr("automation.steps.decide", broken)
    log = product_log("text")
    run = run_cycle(bot.pk, SLOT, fakes())
    assert (run.status, run.failed_step) == (CycleRun.Status.FAILED, "decide")
    assert run.error == "ZeroDivisionError: a bug in the decision"  # short: the traceback is in the log
    text = log.getvalue()
    context = f"[user={bot.owner_id} bot={bot.pk} run={run.pk} slot={SLOT.isoformat()}]"
    assert f"ERROR automation.steps: cycle of bot {bot.pk} slot {SLOT} failed in decide" in text
    assert context in text.split("Traceback (most recent call last):")[0]
    assert "in _decide\n" in text and "ZeroDivisionError: a bug in the decision" in text.splitlines()[-1]


def test_json_lines_of_a_cycle_carry_its_user_bot_run_and_slot(bot, product_log):
    log = product_log("json")
    logging.getLogger("automation.cycle").info("before the cycle")
    run = run_cycle(bot.pk, SLOT, fakes())
    assert run.status == CycleRun.Status.SUCCEEDED
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert lines[0]["message"] == "before the cycle"
    assert not {"user", "bot", "run", "slot"} & set(lines[0])
    done = next(line for line in lines if line["message"].startswith("cycle succeeded"))
    assert (done["logger"], done["level"]) == ("automation.cycle", "INFO")
    assert (done["user"], done["bot"], done["run"], done["slot"]) == (
        bot.owner_id,
        bot.pk,
        run.pk,
        SLOT.isoformat(),
    )


def test_log_format_other_than_text_or_json_is_refused_with_the_reason():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tradingai.settings.test", "LOG_FORMAT": "xml"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "LOG_FORMAT is 'xml': it must be text or json" in result.stderr


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_workers_log_lines_of_a_cycle_in_json_carry_its_bot_run_and_slot(celery_env, tmp_path):
    """Celery would put its own handler and format in place of settings.LOGGING's (tradingai.celery)."""
    call_command("seed_demo", stdout=io.StringIO())
    demo = Bot.objects.get()
    bot_start(demo)
    slot = bot_run_now(demo)
    log_path = tmp_path / "celery.log"
    with log_path.open("w") as log:
        worker = start(
            ["worker", "--pool=threads", "--queues=io", "--without-mingle"],
            {**celery_env, "LOG_FORMAT": "json"},
            log,
        )
        try:
            assert wait_for(lambda: CycleRun.objects.filter(bot=demo, status="SUCCEEDED").exists()), (
                log_path.read_text()
            )
            assert wait_for(lambda: "cycle succeeded" in log_path.read_text(), 10), log_path.read_text()
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    run = CycleRun.objects.get(bot=demo)
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert any(record["message"].startswith("Task automation.tasks.run_cycle_task") for record in records)
    done = next(record for record in records if record["message"].startswith("cycle succeeded"))
    assert (done["user"], done["bot"], done["run"], done["slot"]) == (demo.owner_id, demo.pk, run.pk, slot)
