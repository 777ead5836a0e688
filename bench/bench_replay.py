"""Replay throughput: the whole loop (technical analyst, policy, paper broker, monitor, outcomes, insights,
policy learning, the outcome model's daily check and retraining) over the 5,000 shipped EUR/USD hours, into
a fresh SQLite database (the embedded default), with the peak memory of the process and of the worker that
computes the technical analyses ahead (automation/replay_ahead.py), and the CPU time of both. Target (issue
21): at least 1,000 cycles a second, i.e. 5,000 candles in 5 s or less; before it, 201-238 on this machine.
DEBUG is off, as in production: at DEBUG Django keeps every query's SQL, a few per cent of the time.

Run: .venv/bin/python -m bench.bench_replay (or `make bench`). The replay runs in a child process of its own,
so that its peak resident memory is its own."""

import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_CYCLES_PER_SECOND = 1000


def child() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from automation.evaluation import evaluate
    from automation.replay import ReplaySpec, replay

    call_command("migrate", verbosity=0)
    call_command(
        "import_candles", str(ROOT / "fixtures" / "EURUSD_1h.csv"), exchange="sample", symbol="EUR/USD",
        timeframe="1h", stdout=io.StringIO(),
    )  # fmt: skip
    started, cpu = time.perf_counter(), time.process_time()
    bot = replay(ReplaySpec("sample", "EUR/USD", "1h"))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    worker = resource.getrusage(resource.RUSAGE_CHILDREN)  # the worker has ended with the replay
    figures = evaluate(bot)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    worker_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the process working ahead
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


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tradingai-bench-replay-") as var:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tradingai.settings.local",
            "TRADINGAI_VAR_DIR": var,
            "DJANGO_DEBUG": "false",
            "DATABASE_URL": f"sqlite:///{var}/db.sqlite3",
        }
        done = subprocess.run(
            [sys.executable, "-m", "bench.bench_replay", "--child"],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rate = result["cycles"] / result["seconds"]
    print(
        f"replay, 5,000 EUR/USD hours, technical analyst, full learning, SQLite: {result['cycles']} cycles "
        f"({result['failed']} failed) in {result['seconds']:.1f} s = {rate:.1f} cycles/s; "
        f"{result['resolved']} analyses resolved, {result['trades']} trades; peak memory "
        f"{result['peak_rss_mib']:.0f} MiB, and {result['worker_peak_rss_mib']:.0f} MiB in the worker that "
        "computes the technical analyses ahead"
    )
    print(
        f"  CPU: {result['cpu_seconds']:.1f} s in the replay's process "
        f"({result['cycles'] / result['cpu_seconds']:.0f} cycles per CPU second), "
        f"{result['worker_cpu_seconds']:.1f} s in the worker; on a busy machine the wall time is the "
        "longer, and the CPU time what the replay itself cost"
    )
    ratio = rate / TARGET_CYCLES_PER_SECOND
    print(
        f"  target >= {TARGET_CYCLES_PER_SECOND} cycles/s: rate/target = {ratio:.2f} "
        f"({'met' if ratio >= 1 else 'NOT met'})"
    )


if __name__ == "__main__":
    if "--child" in sys.argv:
        child()
    else:
        main()
