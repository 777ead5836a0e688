"""Chart rendering and indicators on real candles (the shipped EUR/USD hourly fixture).

Run: .venv/bin/python -m bench.bench_analysis (or `make bench` for every benchmark)."""

import os
import statistics
import time
from pathlib import Path

import django

from .common import timed

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingai.settings.local")
django.setup()

from automation.charts import rendered  # noqa: E402
from automation.charts.rendered import render_chart  # noqa: E402
from market.importers import parse_csv  # noqa: E402
from market.indicators import compute  # noqa: E402
from market.sources import Market, frame  # noqa: E402

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "EURUSD_1h.csv"
CHART_TARGET_P50 = 0.150  # seconds, issue 21 (before it 0.300, the chart step's first target)
RUNS = 30


def describe(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return f"p50 {statistics.median(samples) * 1000:.1f} ms, p90 {q[89] * 1000:.1f} ms, n={len(samples)}"


def main() -> None:
    bars = list(parse_csv(FIXTURE.read_text()))
    candles = frame((b.open_time, b.open, b.high, b.low, b.close, b.volume) for b in bars)
    market = Market("sample", "EUR/USD", "1h")

    window = candles.iloc[-200:]
    indicators = compute(window)
    cpu = []

    def render() -> None:
        started = time.process_time()
        render_chart(window, market, indicators)
        cpu.append(time.process_time() - started)  # the first is timed's warm-up

    def render_on_a_new_figure() -> None:
        # The baseline: a figure made for each chart, as before the figure was kept (rendered._canvas).
        rendered._canvas.cache_clear()
        render_chart(window, market, indicators)

    baseline = timed(render_on_a_new_figure, RUNS)
    chart = timed(render, RUNS)
    p50 = statistics.median(chart)
    print(f"chart render, 200 candles, a new figure for each (baseline): {describe(baseline)}")
    print(f"chart render, 200 candles: {describe(chart)}; CPU p50 {statistics.median(cpu[1:]) * 1000:.1f} ms")
    print(
        f"  target p50 <= {CHART_TARGET_P50 * 1000:.0f} ms: p50/target = {p50 / CHART_TARGET_P50:.2f} "
        f"({'met' if p50 <= CHART_TARGET_P50 else 'NOT met'})"
    )

    thousand = candles.iloc[-1000:]
    ind = timed(lambda: compute(thousand), RUNS * 10)
    print(f"indicators, 1,000 candles: {describe(ind)}")


if __name__ == "__main__":
    main()
