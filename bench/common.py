"""What the benchmarks share: a throwaway PostgreSQL database of their own, timing a call, the servers they
start (gunicorn, a Celery worker), the bots they seed, and measuring a load."""

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

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


def machine_state() -> str:
    """What else the machine and the PostgreSQL server are doing before a run, which its figures depend on."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        others = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND state = 'active'"
        ).fetchone()[0]
    load_1, load_5, _ = os.getloadavg()
    return (
        f"{os.cpu_count()} cores; before the run: load average {load_1:.2f} (1 min), {load_5:.2f} (5 min), "
        f"{others - 1} other active PostgreSQL queries"
    )


def server_env(tmp: Path, db_name: str, **extra: str) -> dict[str, str]:
    """The environment of this process and of the servers it starts: database `db_name`, files under `tmp`,
    DEBUG off, and the API's throttling on, with its cost per request, but never refusing: it is not what is
    measured."""
    (tmp / "var" / "static").mkdir(parents=True)  # STATIC_ROOT: WhiteNoise warns in every process without it
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tradingai.settings.local",
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": database_url(db_name),
        "TRADINGAI_VAR_DIR": str(tmp / "var"),
        "LOG_LEVEL": "WARNING",
        "TRADINGAI_API_USER_RATE": "1000000/second",
        "TRADINGAI_API_ANON_RATE": "1000000/second",
        **extra,
    }


def setup_django(db_name: str, env: dict[str, str]) -> None:
    """A fresh database `db_name`, and Django in this process set up on it with `env` and migrated. In this
    process first, before any server starts: settings read the environment once, and the first process to
    read them writes the secret and encryption keys under TRADINGAI_VAR_DIR that all must share."""
    recreate_database(db_name)
    os.environ.update(env)

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


# --- processes ----------------------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "EURUSD_1h.csv"


def in_own_process(module: str) -> bool:
    """Settings are read once per process, and another benchmark run before this one (bench.run) has read
    them for the developer's database; a benchmark that needs its own database runs in a process of its own.
    True when `module` was run so, in a child, and the caller has nothing left to do."""
    from django.conf import settings

    if not settings.configured:
        return False
    subprocess.run([sys.executable, "-m", module, *sys.argv[1:]], cwd=ROOT, check=True)
    return True


def close_database() -> None:
    """This process's connections and pools, so that the database can be dropped."""
    from django.conf import settings

    if not settings.configured:
        return
    from django.db import connections

    connections.close_all()
    for connection in connections.all():
        if hasattr(connection, "close_pool"):
            connection.close_pool()


def check_connections(needed: int) -> None:
    """Fail before the run, not in the middle of it with "too many clients": other databases on the server
    (test runs) hold connections too."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        limit = int(admin.execute("SHOW max_connections").fetchone()[0])
        used = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
        free = limit - used.fetchone()[0]
    # This process's own connection and a few for whoever else connects meanwhile.
    if needed + 5 > free:
        raise SystemExit(
            f"the servers' pools need {needed + 5} PostgreSQL connections; "
            f"{free} of max_connections {limit} are free"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(env: dict[str, str], port: int, log: Path, workers: int) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "tradingai.wsgi",
        f"--workers={workers}",
        "--threads=1",
        f"--bind=127.0.0.1:{port}",
        "--log-level=warning",
        f"--error-logfile={log}",
    ]
    with log.open("a") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def start_celery_worker(
    env: dict[str, str], log: Path, *, queues: str, hostname: str, pool: str, concurrency: int
) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "tradingai", "worker", f"--pool={pool}"]
    options = [f"--concurrency={concurrency}", "--loglevel=WARNING", "--without-mingle", "--without-gossip"]
    with log.open("w") as out:
        return subprocess.Popen(
            [*command, *options, f"--queues={queues}", f"--hostname={hostname}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_processes(processes: list[subprocess.Popen], timeout: float = 60) -> None:
    """SIGTERM to all first, so that they shut down side by side (gunicorn's master stops its workers, a
    Celery worker finishes its tasks), then a kill for any still up after `timeout`."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(predicate, seconds: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}", "Accept": "application/json"}


def wait_until_up(server: subprocess.Popen, url: str, token: str, log: Path, seconds: float = 60) -> None:
    import requests

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.returncode}:\n{log.read_text()}")
        with suppress(requests.ConnectionError):
            response = requests.get(url, headers=headers(token), timeout=30)
            if response.status_code == 200:
                return
            raise RuntimeError(f"gunicorn answered {response.status_code}: {response.text[:500]}")
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer within {seconds:.0f} s:\n{log.read_text()}")


# --- seeding ------------------------------------------------------------------------------------------------
def seed_running_bots(bots: int, markets: int, users: int, analyst: str) -> list:
    """`markets` markets of the shipped EUR/USD hours under other names on the exchange "bench", `users`
    owners on a plan that runs all of their bots, and `bots` started paper bots spread over both. Returns the
    bots in id order."""
    from accounts.models import Plan, User
    from automation.models import Bot
    from automation.services import bot_start
    from market.importers import parse_csv, store_bars

    bars = list(parse_csv(FIXTURE.read_text()))
    symbols = [f"M{i:02d}/USD" for i in range(1, markets + 1)]
    for symbol in symbols:
        # Not a ccxt exchange id: the bots are paper bots on stored candles, never on a live exchange.
        store_bars("bench", symbol, "1h", bars)
    # The benches measure speed, not the quotas: a plan whose caps they never reach.
    plan = Plan.objects.create(
        name="bench", max_running_bots=bots, max_bots=bots, cycles_per_day=10**9, run_now_per_hour=10**9
    )
    owners = [User.objects.create_user(f"owner{i}@bench.invalid", plan=plan) for i in range(users)]
    common = {"exchange": "bench", "timeframe": "1h", "analyst": analyst}
    Bot.objects.bulk_create(
        Bot(owner=owners[i % users], name=f"bot {i}", symbol=symbols[i % markets], **common)
        for i in range(bots)
    )
    started = list(Bot.objects.order_by("pk"))
    for bot in started:
        bot_start(bot)
    return started


# --- measuring ----------------------------------------------------------------------------------------------
TICKS = os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of every core since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads, reaped children included) of a process and its live
    descendants: what it spent on the machine, waiting excluded."""
    parents: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError, IndexError):
                # The fields after the command name, which is in parentheses and may itself hold spaces.
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                stats[int(entry.name)] = fields
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        if current in stats:
            total += sum(int(f) for f in stats[current][11:15])  # utime, stime, cutime, cstime
        todo.extend(parents.get(current, []))
    return total / TICKS


def postmaster_pid() -> int | None:
    """The PostgreSQL server's main process, the parent of every backend (ours and others'); None when the
    server is not a process of this machine that can be seen."""
    with psycopg.connect(PG_ADMIN) as admin:
        backend = admin.execute("SELECT pg_backend_pid()").fetchone()[0]
        try:  # while the backend lives: it exits with the connection
            return int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            return None


class Usage:
    """What the machine, each named process tree, PostgreSQL (every database on the server) and this process
    spent between start() and stop(); the rest is whatever else runs on the machine."""

    def __init__(self, processes: dict[str, subprocess.Popen]) -> None:
        self.processes, self.postgres = processes, postmaster_pid()

    def _cpu(self) -> list[float]:
        postgres = tree_cpu(self.postgres) if self.postgres else 0.0
        return [*(tree_cpu(p.pid) for p in self.processes.values()), postgres, sum(os.times()[:2])]

    def start(self) -> "Usage":
        self._machine, self._cpus, self._wall = machine_ticks(), self._cpu(), time.perf_counter()
        return self

    def stop(self) -> str:
        wall = time.perf_counter() - self._wall
        busy, total = (after - before for after, before in zip(machine_ticks(), self._machine, strict=True))
        *named, postgres, own = (
            after - before for after, before in zip(self._cpu(), self._cpus, strict=True)
        )
        rest = max(busy / TICKS - sum(named) - postgres - own, 0)
        return (
            f"machine busy {busy / total:.0%} of {os.cpu_count()} cores; in cores: "
            + "".join(f"{name} {cpu / wall:.2f}, " for name, cpu in zip(self.processes, named, strict=True))
            + (f"PostgreSQL {postgres / wall:.2f}, " if self.postgres else "")
            + f"this client {own / wall:.2f}, anything else {rest / wall:.2f}"
        )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[89], cuts[98]


def describe(samples: list[float]) -> str:
    p50, p90, p99 = percentiles(samples)
    return f"p50 {ms(p50)}, p90 {ms(p90)}, p99 {ms(p99)}, max {ms(max(samples))}"


@dataclass(frozen=True)
class Request:
    """One request of a load: `name` groups its latencies and errors."""

    name: str
    method: str
    url: str
    token: str
    body: dict | None = None


@dataclass
class LoadResult:
    latencies: list[tuple[str, float]]  # (request name, seconds) of each answered request
    errors: list[tuple[str, str, str]]  # (request name, kind: the status or the exception, detail)
    seconds: float

    @property
    def total(self) -> int:
        return len(self.latencies) + len(self.errors)


async def http_load(pick, connections: int, seconds: float) -> LoadResult:
    """`connections` connections at once for `seconds`, each sending `pick()`'s next Request as soon as its
    previous answer is in. Any answer but 2xx/3xx, and any failure to get one, is an error."""
    import aiohttp

    latencies: list[tuple[str, float]] = []
    errors: list[tuple[str, str, str]] = []
    started = time.perf_counter()
    deadline = started + seconds
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=connections)

    async def connection(session) -> None:
        while time.perf_counter() < deadline:
            request = pick()
            sent = time.perf_counter()
            try:
                async with session.request(
                    request.method, request.url, headers=headers(request.token), json=request.body
                ) as response:
                    body = await response.read()
                    if not 200 <= response.status < 400:
                        errors.append((request.name, str(response.status), f"{request.url}: {body[:200]!r}"))
                        continue
            except Exception as error:  # any failure is an error to count, not a reason to stop
                errors.append((request.name, type(error).__name__, f"{request.url}: {error}"))
                continue
            latencies.append((request.name, time.perf_counter() - sent))

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(connection(session) for _ in range(connections)))
    return LoadResult(latencies, errors, time.perf_counter() - started)
