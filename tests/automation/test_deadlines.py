"""Deadlines that hold on the io queue's thread pool, where Celery's time limits do nothing: a hung analyst
or chart fails the run at its step on time, and the call abandoned there writes nothing when it ends."""

import threading
import time

import pytest

from automation.analysis import within
from automation.analysts.base import AnalystTemporaryError
from automation.cycle import Outside, run_cycle
from automation.models import Bot
from automation.tasks import run_cycle_task
from core.log_context import current, log_context
from learning.models import AILearningData
from tests.automation.test_celery_worker import celery_env, start, wait_for
from tests.automation.test_cycle import HOUR, SLOT, FakeAnalyst, fakes
from tests.faults.test_process_faults import openai_answer, paper_bot
from trades.models import Trade

__all__ = ["celery_env", "paper_bot"]

DEADLINE = 2.0  # seconds, the analyst's in these tests
HANG = 8.0  # seconds the stand-in analyst takes to answer: well past the deadline


class HangingAnalyst(FakeAnalyst):
    """Answers as FakeAnalyst does, once `release` is set."""

    def __init__(self):
        super().__init__()
        self.release, self.answered = threading.Event(), threading.Event()

    def analyse(self, request):
        self.release.wait(30)
        try:
            return super().analyse(request)
        finally:
            self.answered.set()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_hung_analyst_fails_the_run_at_analysis_within_its_deadline_on_the_io_thread_pool(
    paper_bot, celery_env, openai_stand_in, tmp_path
):
    """The io worker as production runs it (threads), the OpenAI analyst with a client timeout far past the
    deadline: the stand-in holds its answer for HANG seconds."""
    Bot.objects.filter(pk=paper_bot.pk).update(analyst=Bot.Analyst.OPENAI)
    openai_stand_in.add_delay(HANG, openai_answer(SLOT))
    env = {
        **celery_env,
        "OPENAI_API_KEY": "sk-stand-in",
        "OPENAI_BASE_URL": openai_stand_in.base_url,
        "OPENAI_TIMEOUT_SECONDS": "120",
        "OPENAI_MAX_RETRIES": "0",
        "TRADINGAI_ANALYST_DEADLINE_SECONDS": str(DEADLINE),
    }
    log_path = tmp_path / "celery.log"
    with log_path.open("w") as log:
        worker = start(["worker", "--pool=threads", "--queues=io", "--without-mingle"], env, log)
        try:
            run_cycle_task.delay(paper_bot.pk, SLOT.isoformat())
            assert wait_for(lambda: paper_bot.runs.filter(step="analysis").exists()), log_path.read_text()
            asked_at = time.monotonic()
            assert wait_for(lambda: paper_bot.runs.filter(status="FAILED").exists(), HANG), (
                log_path.read_text()
            )
            waited = time.monotonic() - asked_at
            time.sleep(HANG - waited + 1)  # the stand-in answers the abandoned call: nothing may come of it
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    run = paper_bot.runs.get()
    assert (run.status, run.failed_step) == ("FAILED", "analysis"), run.error
    assert waited < DEADLINE + 3, waited
    assert run.error == (
        f"AnalystDeadlineError: no answer within its deadline of {DEADLINE:g} s; the call was abandoned"
    )
    assert len(openai_stand_in.requests) == 1
    assert not AILearningData.objects.exists()
    assert not Trade.objects.exists()
    assert "failed in analysis" in log_path.read_text()


@pytest.mark.django_db(transaction=True)
def test_the_abandoned_call_writes_nothing_and_the_next_slot_runs(paper_bot, settings):
    settings.ANALYST_DEADLINE_SECONDS = 0.5
    hanging = HangingAnalyst()
    started = time.monotonic()
    run = run_cycle(paper_bot.pk, SLOT, fakes(analyst=hanging))
    assert time.monotonic() - started < 5
    assert (run.status, run.failed_step) == ("FAILED", "analysis")
    hanging.release.set()
    assert hanging.answered.wait(5)
    time.sleep(0.2)
    run.refresh_from_db()
    assert run.status == "FAILED"
    assert not AILearningData.objects.exists()
    assert run_cycle(paper_bot.pk, SLOT + HOUR, fakes()).status == "SUCCEEDED"


@pytest.mark.django_db(transaction=True)
def test_a_hung_chart_fails_the_run_at_chart(paper_bot, settings):
    settings.CHART_DEADLINE_SECONDS = 0.5
    stuck = threading.Event()
    started = time.monotonic()
    run = run_cycle(
        paper_bot.pk, SLOT, Outside(analyst=FakeAnalyst(), chart=lambda *_: stuck.wait(10) and b"")
    )
    stuck.set()
    assert time.monotonic() - started < 5
    assert (run.status, run.failed_step) == ("FAILED", "chart")
    assert run.error.startswith("ChartDeadlineError: no answer within its deadline of 0.5 s")


def test_within_hands_back_the_calls_answer_or_its_error_and_keeps_the_cycles_log_context():
    assert within(1, AnalystTemporaryError, lambda a, b: a + b, 2, 3) == 5
    with pytest.raises(ZeroDivisionError):
        within(1, AnalystTemporaryError, lambda: 1 / 0)
    with log_context(run=7):
        assert within(1, AnalystTemporaryError, current)["run"] == 7
