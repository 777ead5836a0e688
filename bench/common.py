"""What the benchmarks share: a throwaway PostgreSQL database of their own, and timing a call."""

import time

import psycopg

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def database_url(name: str) -> str:
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def recreate_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # left by a run that was killed
        admin.execute(f"CREATE DATABASE {name}")


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def timed(fn, runs: int, warm_ups: int = 1) -> list[float]:
    """Seconds of each of `runs` calls, after `warm_ups` calls that pay for imports and caches."""
    for _ in range(warm_ups):
        fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples
