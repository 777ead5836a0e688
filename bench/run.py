"""Every benchmark, one after the other: `make bench`."""

import importlib
import sys

BENCHMARKS = [
    "bench.bench_analysis",
    "bench.bench_capture",
    "bench.bench_cycles",
    "bench.bench_schedule",
    "bench.bench_insights",
    "bench.bench_api",
    "bench.bench_load",
    "bench.bench_replay",
    "bench.bench_learning",
    "bench.bench_signin",
]


def main() -> int:
    for name in BENCHMARKS:
        print(f"== {name}")
        importlib.import_module(name).main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
