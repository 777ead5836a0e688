"""The product's own Prometheus metrics, kept in the database and read from it when `/metrics` is scraped.

Cycles run in Celery workers, on other processes and other machines than the web processes Prometheus
scrapes. Each cycle adds what it did to running totals (`MetricTotal` rows: one per metric and labels, in
one transaction at its end), and `ProductCollector` reads them, so that any web process answers for every
worker, whatever its pool (the io queue's threads, prefork, any number of gunicorn workers), and nothing is
lost when a worker restarts. prometheus_client's multiprocess mode would need every process on one machine
sharing one directory; see docs/operations.md, "Metrics"."""

import json
import logging
import math
from collections import defaultdict
from collections.abc import Iterator

from celery import current_app
from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Count
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from core.totals import add_to_totals
from learning.models import AILearningData
from trades.models import Trade

from .models import CycleRun, MetricTotal

logger = logging.getLogger(__name__)

SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, math.inf)
LATENESS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, math.inf)

# name: (help, label names); a counter's samples are exported as name_total.
COUNTERS = {
    "tradingai_cycle_runs": (
        "Cycle runs ended, by status and, for a failed one, the step it failed at",
        ("status", "failed_step"),
    ),
    "tradingai_analyst_calls": (
        "Calls to an analyst (an LLM's or the technical one), by outcome: ok, or the error's type",
        ("analyst", "outcome"),
    ),
    "tradingai_llm_tokens": (
        "Tokens of the analyses recorded, by kind: prompt or completion",
        ("analyst", "kind"),
    ),
    "tradingai_llm_cost_usd": ("What the analyses recorded cost, in US dollars", ("analyst",)),
}
# name: (help, label names, bucket bounds)
HISTOGRAMS = {
    "tradingai_cycle_step_seconds": ("How long each step of a cycle took", ("step",), SECONDS),
    "tradingai_analyst_seconds": ("How long the analyst took to answer, or to fail", ("analyst",), SECONDS),
    "tradingai_cycle_lateness_seconds": (
        "How long after its due moment (slot and the bot's offset) a scheduled cycle started",
        (),
        LATENESS,
    ),
}


def _key(labels: dict) -> str:
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))


def _bound(le: float) -> str:
    return "+Inf" if le == math.inf else repr(float(le))


class Tally:
    """What one cycle adds to the totals, kept in memory until `save`."""

    def __init__(self) -> None:
        self.added: dict[tuple[str, str], float] = defaultdict(float)

    def count(self, name: str, amount: float = 1, **labels: str) -> None:
        self.added[(f"{name}_total", _key(labels))] += amount

    def observe(self, name: str, value: float, **labels: str) -> None:
        # Each bucket row counts the observations up to its bound and above the one before; the collector
        # adds them up into Prometheus's cumulative buckets.
        le = next(bound for bound in HISTOGRAMS[name][2] if value <= bound)
        self.added[(f"{name}_bucket", _key({**labels, "le": _bound(le)}))] += 1
        self.added[(f"{name}_sum", _key(labels))] += value

    def save(self) -> None:
        """Added to the totals in one statement (core.totals). A failure is logged, never raised: the cycle's
        own outcome is already recorded."""
        if not self.added:
            return
        try:
            with transaction.atomic():
                rows = [(name, labels, amount) for (name, labels), amount in self.added.items()]
                add_to_totals(MetricTotal, ("name", "labels"), ("value",), rows)
        except DatabaseError:
            logger.exception("the cycle's metrics were not recorded")
        self.added.clear()


def count_run(tally: Tally, run: CycleRun) -> None:
    """A run that ended: by status and failed step, and each step it timed."""
    tally.count("tradingai_cycle_runs", status=run.status, failed_step=run.failed_step)
    for step, seconds in (run.timings or {}).items():
        tally.observe("tradingai_cycle_step_seconds", seconds, step=step)


def count_analyst(
    tally: Tally, run: CycleRun, analyst: str, failure: Exception | None, recorded: list[AILearningData]
) -> None:
    """The analyst's call of a run that reached the analysis step, and what the analysis it `recorded` (as
    stored: none when the run failed before) cost."""
    seconds = (run.timings or {}).get("analysis")
    if seconds is None:
        return
    tally.observe("tradingai_analyst_seconds", seconds, analyst=analyst)
    failed = failure is not None and run.failed_step == "analysis"
    tally.count(
        "tradingai_analyst_calls", analyst=analyst, outcome=type(failure).__name__ if failed else "ok"
    )
    for analysis in recorded:
        name = analysis.analyst or analyst
        tally.count("tradingai_llm_tokens", analysis.prompt_tokens, analyst=name, kind="prompt")
        tally.count("tradingai_llm_tokens", analysis.completion_tokens, analyst=name, kind="completion")
        tally.count("tradingai_llm_cost_usd", float(analysis.cost_usd), analyst=name)


class ProductCollector:
    """The totals, and what is so at the moment of the scrape: open trades, runs running, queue depths."""

    def describe(self) -> Iterator:
        # Without this, registering the collector would call collect(), and query the database at import.
        return iter(())

    def collect(self) -> Iterator:
        totals: dict[str, list[tuple[dict, float]]] = defaultdict(list)
        for name, labels, value in MetricTotal.objects.values_list("name", "labels", "value"):
            totals[name].append((json.loads(labels), value))
        for name, (help_text, label_names) in COUNTERS.items():
            family = CounterMetricFamily(name, help_text, labels=label_names)
            for labels, value in totals[f"{name}_total"]:
                family.add_metric([labels.get(label, "") for label in label_names], value)
            yield family
        for name, (help_text, label_names, bounds) in HISTOGRAMS.items():
            yield _histogram(name, help_text, label_names, bounds, totals)
        yield from self._now()

    def _now(self) -> Iterator:
        trades = GaugeMetricFamily("tradingai_open_trades", "Trades open now, paper or live", labels=["mode"])
        by_mode = dict(
            Trade.objects.filter(status=Trade.Status.OPEN)
            .values("is_simulated")
            .annotate(n=Count("pk"))
            .values_list("is_simulated", "n")
        )
        for simulated, mode in ((True, "paper"), (False, "live")):
            trades.add_metric([mode], by_mode.get(simulated, 0))
        yield trades
        running = CycleRun.objects.filter(status=CycleRun.Status.RUNNING).count()
        yield GaugeMetricFamily("tradingai_cycle_runs_running", "Cycle runs running now", value=running)
        depths = queue_depths()
        if depths is not None:
            queued = GaugeMetricFamily(
                "tradingai_queue_depth", "Tasks waiting in each queue of the broker", labels=["queue"]
            )
            for queue, depth in depths.items():
                queued.add_metric([queue], depth)
            yield queued


def _histogram(name, help_text, label_names, bounds, totals) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, help_text, labels=label_names)
    per_labels: dict[str, dict] = defaultdict(dict)
    for labels, value in totals[f"{name}_bucket"]:
        le = labels.pop("le")
        per_labels[_key(labels)][le] = value
    sums = {_key(labels): value for labels, value in totals[f"{name}_sum"]}
    for key, counts in sorted(per_labels.items()):
        labels, running, buckets = json.loads(key), 0.0, []
        for bound in bounds:
            running += counts.get(_bound(bound), 0)
            buckets.append((_bound(bound), running))
        family.add_metric([labels.get(label, "") for label in label_names], buckets, sums.get(key, 0.0))
    return family


def queue_depths() -> dict[str, int] | None:
    """Messages waiting in each of the product's queues, or None when the broker cannot be reached (one
    connection, bounded by the transport's connect timeout, as /healthz's)."""
    try:
        with current_app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=0)
            return {queue: _depth(connection, queue) for queue in settings.HEARTBEAT_QUEUES}
    except Exception as e:  # whatever the transport raises, there is no depth to tell
        logger.warning("queue depths unknown, the broker is unreachable: %s", e)
        return None


def _depth(connection, queue: str) -> int:
    # A channel each: on AMQP a passive declare of a missing queue closes its channel.
    with connection.channel() as channel:
        try:
            return channel.queue_declare(queue=queue, passive=True).message_count
        except connection.channel_errors:
            return (
                0  # a queue the broker does not know yet (Redis keeps none while it is empty) holds nothing
            )
