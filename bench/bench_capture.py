"""How much reusing the browser saves: captures of the local chart page with one browser kept open, then
with a browser started and quit for each.

Run: .venv/bin/python -m bench.bench_capture (or `make bench` for every benchmark)."""

import os
import statistics
import time
from collections.abc import Callable

import django

from automation.charts.tradingview import TradingViewCapture
from tests.charts.conftest import serving_chart_site

N = 10
TARGET_SPEEDUP = 3  # the goal for a reused browser over a fresh one


def seconds(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def fresh_capture(url: str, options: dict) -> bytes:
    capture = TradingViewCapture(**options)
    try:
        return capture.capture(url)
    finally:
        capture.close()


def report(name: str, times: list[float]) -> None:
    print(f"{name:<15} p50 {statistics.median(times):.3f} s   mean {statistics.mean(times):.3f} s")


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingai.settings.local")
    django.setup()
    with serving_chart_site() as site:
        url = site.url("/chart")
        reused = TradingViewCapture(**site.capture_options())
        try:
            reused.capture(url)  # starts the browser: a worker pays this once, so it is not timed
            reused_times = [seconds(lambda: reused.capture(url)) for _ in range(N)]
        finally:
            reused.close()
        fresh_times = [seconds(lambda: fresh_capture(url, site.capture_options())) for _ in range(N)]

    print(f"{N} captures of {url}, {reused.width}x{reused.height}")
    report("reused browser", reused_times)
    report("fresh browser", fresh_times)
    by_p50 = statistics.median(fresh_times) / statistics.median(reused_times)
    by_mean = statistics.mean(fresh_times) / statistics.mean(reused_times)
    verdict = "met" if min(by_p50, by_mean) >= TARGET_SPEEDUP else "NOT met"
    print(
        f"reused is {by_p50:.1f}x faster by p50, {by_mean:.1f}x by mean (target {TARGET_SPEEDUP}x: {verdict})"
    )


if __name__ == "__main__":
    main()
