"""/metrics: django-prometheus's request metrics and the product's own, which the cycles add to in the
database (automation.metrics) and any web process reads at the scrape; who may read them."""

import dataclasses
from decimal import Decimal

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from automation.analysts.base import AnalystRefusedError
from automation.cycle import run_cycle
from automation.metrics import Tally
from automation.models import CycleRun
from automation.recovery import recover_lost_runs
from automation.schedule import STALE_RUN, slot_of
from tests.automation.test_cycle import HOUR, SLOT, FakeAnalyst, _candles, bot, fakes

__all__ = ["_candles", "bot"]

TOKEN = "scrape-me-4f1c"


class PricedAnalyst(FakeAnalyst):
    """FakeAnalyst's call, with the tokens and the cost an LLM's would have."""

    name = "priced"

    def analyse(self, request):
        result = super().analyse(request)
        return dataclasses.replace(
            result, analyst="priced", prompt_tokens=1200, completion_tokens=300, cost_usd=Decimal("0.00036")
        )


def scrape(client) -> dict:
    """Every sample of /metrics, by name and labels."""
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(autouse=True)
def token(settings):
    settings.METRICS_PUBLIC = False
    settings.METRICS_TOKEN = TOKEN


@pytest.mark.django_db
def test_the_counters_move_after_a_cycle(client, bot):
    before = scrape(client)
    run = run_cycle(bot.pk, SLOT, fakes(analyst=PricedAnalyst()))
    assert run.status == "SUCCEEDED", run.error
    after = scrape(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("tradingai_cycle_runs_total", status="SUCCEEDED", failed_step="") == 1
    assert moved("tradingai_cycle_step_seconds_count", step="analysis") == 1
    assert moved("tradingai_cycle_step_seconds_count", step="execute") == 1
    assert moved("tradingai_cycle_step_seconds_bucket", step="analysis", le="+Inf") == 1
    assert moved("tradingai_cycle_step_seconds_sum", step="analysis") == pytest.approx(
        run.timings["analysis"]
    )
    assert moved("tradingai_analyst_seconds_count", analyst="priced") == 1
    assert moved("tradingai_analyst_calls_total", analyst="priced", outcome="ok") == 1
    assert moved("tradingai_llm_tokens_total", analyst="priced", kind="prompt") == 1200
    assert moved("tradingai_llm_tokens_total", analyst="priced", kind="completion") == 300
    assert moved("tradingai_llm_cost_usd_total", analyst="priced") == pytest.approx(0.00036)
    assert moved("tradingai_open_trades", mode="paper") == 1
    assert value(after, "tradingai_open_trades", mode="live") == 0
    assert value(after, "tradingai_cycle_runs_running") == 0
    assert ("tradingai_queue_depth", (("queue", "io"),)) in after
    # django-prometheus's own, of this web process: the first scrape was a request.
    requests = "django_http_requests_total_by_view_transport_method_total"
    assert moved(requests, view="metrics", transport="http", method="GET") >= 1


@pytest.mark.django_db
def test_a_failed_run_is_counted_at_its_step_with_the_analysts_error(client, bot):
    before = scrape(client)
    run = run_cycle(bot.pk, SLOT, fakes(analyst=FakeAnalyst(fail=AnalystRefusedError("no"))))
    assert (run.status, run.failed_step) == ("FAILED", "analysis")
    after = scrape(client)
    assert (
        value(after, "tradingai_cycle_runs_total", status="FAILED", failed_step="analysis")
        - value(before, "tradingai_cycle_runs_total", status="FAILED", failed_step="analysis")
        == 1
    )
    assert value(after, "tradingai_analyst_calls_total", analyst="fake", outcome="AnalystRefusedError") == 1
    assert value(after, "tradingai_cycle_runs_total", status="SUCCEEDED", failed_step="") == value(
        before, "tradingai_cycle_runs_total", status="SUCCEEDED", failed_step=""
    )


@pytest.mark.django_db
def test_a_run_the_sweep_fails_is_counted_at_its_last_step(client, bot):
    lost = CycleRun.objects.create(bot=bot, slot=SLOT + HOUR, status="RUNNING", step="chart")
    CycleRun.objects.filter(pk=lost.pk).update(started_at=timezone.now() - STALE_RUN - HOUR)
    assert recover_lost_runs() == 1
    assert value(scrape(client), "tradingai_cycle_runs_total", status="FAILED", failed_step="chart") == 1


@pytest.mark.django_db
def test_a_scheduled_cycle_on_a_live_market_is_timed_against_its_slot(client, bot):
    class LiveLike:
        def candles(self, market, *, limit, until=None):
            raise AssertionError("a skipped slot must not fetch candles")

    before = scrape(client)
    run = run_cycle(bot.pk, slot_of(bot, timezone.now()) - 3 * HOUR, fakes(source=LiveLike()))
    assert run.status == "SKIPPED"
    after = scrape(client)
    lateness = "tradingai_cycle_lateness_seconds"
    assert value(after, f"{lateness}_count") - value(before, f"{lateness}_count") == 1
    late = value(after, f"{lateness}_sum") - value(before, f"{lateness}_sum")
    assert 2 * 3600 < late < 4 * 3600  # three periods before the current one's, less the bot's offset
    assert value(after, f"{lateness}_bucket", le="3600.0") == value(before, f"{lateness}_bucket", le="3600.0")
    skipped = {"status": "SKIPPED", "failed_step": ""}
    assert (
        value(after, "tradingai_cycle_runs_total", **skipped)
        - value(before, "tradingai_cycle_runs_total", **skipped)
        == 1
    )


@pytest.mark.django_db
def test_histogram_buckets_are_cumulative_and_the_lateness_lands_in_its_bucket(client):
    tally = Tally()
    for seconds in (0, 45, 45, 4000):
        tally.observe("tradingai_cycle_lateness_seconds", seconds)
    tally.save()
    samples = scrape(client)
    buckets = {le: value(samples, "tradingai_cycle_lateness_seconds_bucket", le=le) for le in ("1.0", "30.0")}
    assert buckets == {"1.0": 1, "30.0": 1}
    assert value(samples, "tradingai_cycle_lateness_seconds_bucket", le="60.0") == 3
    assert value(samples, "tradingai_cycle_lateness_seconds_bucket", le="3600.0") == 3
    assert value(samples, "tradingai_cycle_lateness_seconds_bucket", le="+Inf") == 4
    assert value(samples, "tradingai_cycle_lateness_seconds_count") == 4
    assert value(samples, "tradingai_cycle_lateness_seconds_sum") == 4090


@pytest.mark.django_db
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_metrics_refuse_anyone_without_the_token(client, authorization):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = client.get("/metrics", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"TRADINGAI_METRICS_TOKEN" in response.content
    assert b"tradingai_" not in response.content


@pytest.mark.django_db
def test_metrics_refuse_a_signed_in_user_who_is_not_staff_and_answer_a_verified_staff_member(
    alice_client, alice, alice_two_factor
):
    assert alice_client.get("/metrics").status_code == 401
    alice.is_staff = True
    alice.save()
    assert alice_client.get("/metrics").status_code == 401  # staff, without the second factor
    session = alice_client.session
    session["otp_device_id"] = alice_two_factor.persistent_id
    session.save()
    assert alice_client.get("/metrics").status_code == 200


@pytest.mark.django_db
def test_metrics_are_open_where_metrics_public_is_on(client, settings):
    settings.METRICS_PUBLIC = True
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"tradingai_cycle_runs_total" in response.content
    assert "no-store" in response["Cache-Control"]
