"""Replay throughput: the whole loop (technical analyst, policy, paper broker, monitor, outcomes, insights,
policy learning, the outcome model's daily check and retraining) over the 5,000 shipped EUR/USD hours, into
a fresh SQLite database (the embedded default), with the peak memory of the process and of the largest of
its two workers (the one computing the technical analyses ahead, automation/replay_ahead.py, and the one
making the insight snapshots behind, automation/replay_snapshots.py), and the CPU time of each side.
Beside it, in the same run, the baseline: the same replay in one process, with no worker ahead or behind (as
a replay shorter than AHEAD_FROM runs), and whether both made the same cycles, resolutions and trades.
Target (issue 21): at least 1,000 cycles a second, i.e. 5,000 candles in 5 s or less; before it, 201-238 on
this machine.
DEBUG is off, as in production: at DEBUG Django keeps every query's SQL, a few per cent of the time.

With `--analyst openai` (issue 21): 1,000 of those hours with the OpenAI analyst, answered by a local
OpenAI-compatible stand-in after 2 s (the same answer to the same request), each refresh window's calls asked
together ahead of the cycles (automation/replay_asks.py); target at most 3 minutes. Beside it, in the same
run: a second replay over the same slots (target: no call asked), and the replay asked one call at a time
over its first `--serial-hours` hours (1,000 takes over half an hour), whose decisions must be the same.

Run: .venv/bin/python -m bench.bench_replay [--analyst openai [--serial-hours N]] (or `make bench`). The
replay (and its baseline) runs in a child process of its own, so that its peak resident memory is its own."""

import argparse
import hashlib
import io
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_CYCLES_PER_SECOND = 1000
# With the OpenAI analyst (issue 21): 1,000 hours, each call answered after 2 s, in at most 3 minutes.
LLM_HOURS, ANALYST_SECONDS, LLM_TARGET_SECONDS = 1000, 2.0, 180.0
SERIAL_HOURS = 72  # three refresh windows asked one call at a time, beside it


def child(one_process: bool) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from automation import replay as replaying
    from automation.evaluation import evaluate
    from automation.replay import ReplaySpec, replay

    if one_process:  # the baseline: no worker started, whatever the replay's length
        replaying.AHEAD_FROM = sys.maxsize

    call_command("migrate", verbosity=0)
    call_command(
        "import_candles", str(ROOT / "fixtures" / "EURUSD_1h.csv"), exchange="sample", symbol="EUR/USD",
        timeframe="1h", stdout=io.StringIO(),
    )  # fmt: skip
    started, cpu = time.perf_counter(), time.process_time()
    bot = replay(ReplaySpec("sample", "EUR/USD", "1h"))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    worker = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers have ended with the replay
    figures = evaluate(bot)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    worker_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the larger worker's
    print(
        json.dumps(
            {
                "cycles": figures["runs"]["succeeded"] + figures["runs"]["failed"],
                "failed": figures["runs"]["failed"],
                "seconds": seconds,
                "cpu_seconds": cpu,
                "worker_cpu_seconds": worker.ru_utime + worker.ru_stime,
                "peak_rss_mib": peak_kib / 1024,
                "worker_peak_rss_mib": worker_kib / 1024,
                "resolved": figures["accuracy"]["n"],
                "trades": figures["strategies"]["adaptive_account"]["trades"],
            }
        )
    )


class DecidingStandIn(ThreadingHTTPServer):
    """An OpenAI-compatible chat.completions endpoint answering after ANALYST_SECONDS, the same answer to the
    same request and different answers to different ones (a call and its confidence from the prompt's hash,
    levels around the close it quotes), so that the replays' decisions can be compared. It counts the calls
    and the distinct requests."""

    request_queue_size = 1024
    daemon_threads = True
    CLOSE = re.compile(r"Close ([0-9.]+)\.")

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _DecidingHandler)
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.calls = 0
        self.distinct: set[str] = set()
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def answer(self, body: bytes) -> bytes:
        with self.lock:
            self.calls += 1
            self.distinct.add(hashlib.sha256(body).hexdigest())
        text = json.loads(body)["messages"][1]["content"][0]["text"]
        digest = int(hashlib.sha256(text.encode()).hexdigest(), 16)
        close = float(self.CLOSE.search(text).group(1))
        call = ("BUY", "SELL", "HOLD")[digest % 3]
        side = {"BUY": 1, "SELL": -1, "HOLD": 0}[call]
        levels = (
            {
                "entry": close,
                "stop_loss": close * (1 - side * 0.002),
                "take_profit": close * (1 + side * 0.004),
            }
            if side
            else {"entry": None, "stop_loss": None, "take_profit": None}
        )
        analysis = {
            "summary": "Scripted.", "market_sentiment": {1: "BULLISH", -1: "BEARISH", 0: "NEUTRAL"}[side],
            "key_levels": {"support": [], "resistance": []}, "recommendation": call,
            "confidence": 40 + digest % 55, "reasoning": "From the prompt's hash.", **levels,
            "predicted_price": close * (1 + side * 0.003), "horizon": 6,
        }  # fmt: skip
        return json.dumps(
            {
                "id": "chatcmpl-bench", "object": "chat.completion", "created": int(time.time()),
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [{
                    "index": 0, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": json.dumps(analysis), "refusal": None},
                }],
                "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100},
            }
        ).encode()  # fmt: skip


class _DecidingHandler(BaseHTTPRequestHandler):
    server: DecidingStandIn

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.server.stopping.wait(ANALYST_SECONDS):
            return
        response = self.server.answer(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(response)))
        self.end_headers()
        self.wfile.write(response)

    def log_message(self, format: str, *args: object) -> None:
        pass


def decisions_of(bot, hours: int) -> list[tuple]:
    """What the bot decided at each of its first `hours` slots: the call, its confidence, the decision and the
    policy it was taken under, the trade."""
    from learning.models import AILearningData
    from trades.models import Trade

    rows = AILearningData.objects.filter(bot=bot).select_related("cycle_run").order_by("cycle_run__slot")
    trades = {
        t["analysis_id"]: (t["side"], str(t["amount"]), str(t["price"]))
        for t in Trade.objects.filter(bot=bot).values("analysis_id", "side", "amount", "price")
    }
    return [
        (
            a.cycle_run.slot.isoformat(), a.recommendation, a.confidence_score, a.prompt_section,
            json.dumps(a.feedback_data.get("decision")), json.dumps(a.feedback_data.get("policy")),
            trades.get(a.pk),
        )
        for a in rows[:hours]
    ]  # fmt: skip


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def openai_child(hours_wanted: int, serial_hours: int) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from accounts.models import User
    from automation.models import Bot
    from automation.replay import PreloadedCandles, ReplaySpec, replay, slots
    from learning.models import AnalystAnswer

    stand_in = DecidingStandIn()
    stand_in.thread.start()
    settings.OPENAI_BASE_URL = stand_in.base_url
    call_command("migrate", verbosity=0)
    call_command(
        "import_candles", str(ROOT / "fixtures" / "EURUSD_1h.csv"), exchange="sample", symbol="EUR/USD",
        timeframe="1h", stdout=io.StringIO(),
    )  # fmt: skip
    spec = ReplaySpec("sample", "EUR/USD", "1h", "openai")
    hours = slots(spec, PreloadedCandles.load(spec.market))[:hours_wanted]
    spec = ReplaySpec("sample", "EUR/USD", "1h", "openai", start=hours[0], end=hours[-1])

    def another_bot(name: str) -> Bot:
        owner = User.objects.create_user(f"{name}@bench.invalid", password=None, is_active=False)
        return Bot.objects.create(
            owner=owner, name=name, exchange="sample", symbol="EUR/USD", timeframe="1h", analyst="OPENAI"
        )

    def timed(fn) -> tuple:
        calls, started = stand_in.calls, time.perf_counter()
        bot = fn()
        return bot, time.perf_counter() - started, stand_in.calls - calls

    own, drawing = cpu_seconds(resource.RUSAGE_SELF), cpu_seconds(resource.RUSAGE_CHILDREN)
    together, together_s, together_calls = timed(lambda: replay(spec))
    own = cpu_seconds(resource.RUSAGE_SELF) - own
    drawing = cpu_seconds(resource.RUSAGE_CHILDREN) - drawing  # the chart processes, reaped at its end
    distinct = len(stand_in.distinct)
    again, again_s, again_calls = timed(lambda: replay(spec, bot=another_bot("again")))
    AnalystAnswer.objects.all().delete()  # so that the replay one call at a time asks for itself
    serial_spec = ReplaySpec("sample", "EUR/USD", "1h", "openai", start=hours[0], end=hours[serial_hours - 1])
    serial, serial_s, serial_calls = timed(
        lambda: replay(serial_spec, bot=another_bot("serial"), ask_concurrency=1)
    )
    stand_in.stopping.set()
    stand_in.shutdown()
    print(
        json.dumps(
            {
                "hours": len(hours), "concurrency": settings.REPLAY_ASK_CONCURRENCY,
                "refresh_hours": settings.PROMPT_REFRESH_HOURS,
                "together": {
                    "seconds": together_s, "calls": together_calls, "distinct": distinct, "cpu": own,
                    "chart_cpu": drawing,
                },
                "again": {"seconds": again_s, "calls": again_calls},
                "serial": {"hours": serial_hours, "seconds": serial_s, "calls": serial_calls},
                "same_decisions": decisions_of(serial, serial_hours) == decisions_of(together, serial_hours),
                "again_same_decisions": decisions_of(again, len(hours)) == decisions_of(together, len(hours)),
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )  # fmt: skip


def openai_main(hours: int, serial_hours: int) -> None:
    with tempfile.TemporaryDirectory(prefix="tradingai-bench-replay-") as var:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tradingai.settings.local",
            "TRADINGAI_VAR_DIR": var,
            "MEDIA_ROOT": f"{var}/media",
            "DATABASE_URL": f"sqlite:///{var}/db.sqlite3",
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_MAX_RETRIES": "0",
            "OPENAI_TIMEOUT_SECONDS": "30",
            "LOG_LEVEL": "WARNING",  # httpx logs every request at INFO
        }
        done = subprocess.run(
            [sys.executable, "-m", "bench.bench_replay", "--child", "--analyst", "openai",
             "--hours", str(hours), "--serial-hours", str(serial_hours)],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"the replay failed:\n{done.stderr[-5000:]}")
    r = json.loads(done.stdout.strip().splitlines()[-1])
    together, again, serial = r["together"], r["again"], r["serial"]
    per_hour = serial["seconds"] / serial["hours"]
    print(
        f"replay, {r['hours']:,} EUR/USD hours, OpenAI analyst (stand-in answering after "
        f"{ANALYST_SECONDS:g} s), "
        f"the learned section refreshed every {r['refresh_hours']} h, each window's calls asked together "
        f"({r['concurrency']} at once), SQLite: {together['seconds']:.1f} s, {together['calls']} calls for "
        f"{together['distinct']} distinct requests; peak memory {r['peak_rss_mib']:.0f} MiB"
    )
    ratio = together["seconds"] / LLM_TARGET_SECONDS
    verdict = "met" if ratio <= 1 else "NOT met"
    print(f"  target <= {LLM_TARGET_SECONDS:.0f} s: wall/target = {ratio:.2f} ({verdict})")
    print(
        f"  CPU: {together['cpu']:.1f} s in the replay's process (cycles, the calls' threads, the stand-in), "
        f"{together['chart_cpu']:.1f} s in the processes drawing the charts ahead "
        f"({together['chart_cpu'] / max(together['calls'], 1) * 1000:.0f} ms a chart); the calls' waits "
        f"alone, a window at a time: {r['hours'] / 24 * ANALYST_SECONDS:.0f} s"
    )
    print(
        f"  beside it, asked one call at a time (charts already stored), its first {serial['hours']} hours: "
        f"{serial['seconds']:.1f} s, {serial['calls']} calls, {per_hour:.2f} s an hour: "
        f"{per_hour * r['hours']:.0f} s for {r['hours']:,} hours, extrapolated"
    )
    print(f"  the same decisions on those {serial['hours']} hours: {'yes' if r['same_decisions'] else 'NO'}")
    print(
        f"  a second replay over the same slots: {again['calls']} calls asked in {again['seconds']:.1f} s "
        f"(target 0: {'met' if again['calls'] == 0 else 'NOT met'}), the same decisions: "
        f"{'yes' if r['again_same_decisions'] else 'NO'}"
    )


def _replayed(one_process: bool) -> dict:
    """The figures of a replay run by a child process of its own, into a fresh SQLite database."""
    with tempfile.TemporaryDirectory(prefix="tradingai-bench-replay-") as var:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tradingai.settings.local",
            "TRADINGAI_VAR_DIR": var,
            "DJANGO_DEBUG": "false",
            "DATABASE_URL": f"sqlite:///{var}/db.sqlite3",
        }
        command = [sys.executable, "-m", "bench.bench_replay", "--child"]
        done = subprocess.run(
            command + (["--one-process"] if one_process else []),
            cwd=ROOT, env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    # The baseline first, in the same run: the same replay in one process, the analyses computed and the
    # snapshots made by the cycles themselves, as a replay shorter than AHEAD_FROM (or a backtest in a
    # Celery pool's process) runs. The machine's speed varies from hour to hour; the ratio says what the
    # workers buy on it now.
    baseline, result = _replayed(one_process=True), _replayed(one_process=False)
    base_rate = baseline["cycles"] / baseline["seconds"]
    print(
        f"baseline, the same replay in one process (no worker ahead or behind): {baseline['cycles']} cycles "
        f"in {baseline['seconds']:.1f} s = {base_rate:.1f} cycles/s; CPU {baseline['cpu_seconds']:.1f} s; "
        f"peak memory {baseline['peak_rss_mib']:.0f} MiB"
    )
    rate = result["cycles"] / result["seconds"]
    print(
        f"replay, 5,000 EUR/USD hours, technical analyst, full learning, SQLite: {result['cycles']} cycles "
        f"({result['failed']} failed) in {result['seconds']:.1f} s = {rate:.1f} cycles/s "
        f"({rate / base_rate:.2f} x the baseline); {result['resolved']} analyses resolved, "
        f"{result['trades']} trades; peak memory {result['peak_rss_mib']:.0f} MiB, and "
        f"{result['worker_peak_rss_mib']:.0f} MiB in the larger of its two workers (analyses ahead, "
        "snapshots behind)"
    )
    print(
        f"  CPU: {result['cpu_seconds']:.1f} s in the replay's process "
        f"({result['cycles'] / result['cpu_seconds']:.0f} cycles per CPU second), "
        f"{result['worker_cpu_seconds']:.1f} s in its workers; on a busy machine the wall time is the "
        "longer, and the CPU time what the replay itself cost"
    )
    same = (baseline["cycles"], baseline["resolved"], baseline["trades"]) == (
        result["cycles"], result["resolved"], result["trades"],
    )  # fmt: skip
    print(f"  the same cycles, resolutions and trades as the baseline: {'yes' if same else 'NO'}")
    ratio = rate / TARGET_CYCLES_PER_SECOND
    print(
        f"  target >= {TARGET_CYCLES_PER_SECOND} cycles/s: rate/target = {ratio:.2f} "
        f"({'met' if ratio >= 1 else 'NOT met'})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analyst", choices=("technical", "openai"), default="technical")
    parser.add_argument("--hours", type=int, default=LLM_HOURS, help="hours replayed with --analyst openai")
    parser.add_argument("--serial-hours", type=int, default=SERIAL_HOURS, help="hours asked one at a time")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--one-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.analyst == "openai":
        run = openai_child if args.child else openai_main
        run(args.hours, args.serial_hours)
    else:
        child(args.one_process) if args.child else main()
