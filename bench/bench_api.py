"""The REST API's two long lists under load: GET /api/v1/trades/ and GET /api/v1/analyses/ with 1,000,000
trades and 200,000 analyses of 1,000 users (1,000 trades and 200 analyses each, every user's rows spread
over a year and interleaved with the others' as they would be written), served by gunicorn (4 sync workers)
from a throwaway PostgreSQL database and asked over real HTTP with API tokens. First the latency of one
client at a time, p50/p90/p99, of each list's first page and of its last page reached by following `next`;
then 30 s of 32 connections at once mixing both lists across the users: requests/s, latency under load and
every error. Last, in this process, where one request's time goes: its SQL and the plan of its list query;
and each first page's CPU written the lean way (core/api_lists.py) beside its serializer's, the baseline.

Run: .venv/bin/python -m bench.bench_api [--keep] (or `make bench`).
Needs PostgreSQL (trust auth, user postgres) on 127.0.0.1; creates and drops the database
tradingai_bench_api (--keep leaves it, and the gunicorn environment, for a look afterwards)."""

import argparse
import asyncio
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from .common import (
    Request,
    Usage,
    close_database,
    database_url,
    describe,
    drop_database,
    free_port,
    headers,
    http_load,
    in_own_process,
    machine_state,
    ms,
    percentiles,
    server_env,
    setup_django,
    start_gunicorn,
    stop_processes,
    wait_until_up,
)

USERS = 1000
TRADES_PER_USER = 1000
ANALYSES_PER_USER = 200
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "EUR/USD", "XAU/USD"]
NOW = datetime(2025, 6, 30, 12, tzinfo=UTC)  # fixed: the rows are the same in every run
YEAR_SECONDS = 365 * 86400
OPEN_PER_USER = 10  # each user's latest trades are still open
LINK_EVERY = 10  # every 10th trade of a user was opened by one of their analyses (Trade.analysis)

WORKERS = 4  # gunicorn sync workers, one thread each
CONNECTIONS = 32
LOAD_SECONDS = 30.0
SAMPLES, WARM_UPS = 300, 40  # unloaded requests per list and page, after warm-ups spread over the workers
DEEP_USERS = 40  # users whose lists are walked to their last page, for the deep-page figures
DEEP_PAGE = 20  # follow `next` until this page (or the list's last page, if it has fewer)
ERROR_EXAMPLES = 5
TARGET_P50 = 0.020  # seconds, each list's first page unloaded, issue 21 (0.050 before it, issue 9's)
TARGET_ERRORS = 0  # under load, from the issue

DB_NAME = "tradingai_bench_api"
LISTS = {"trades": "/api/v1/trades/", "analyses": "/api/v1/analyses/"}


# --- setting up ---------------------------------------------------------------------------------------------
# Both tables are filled by one INSERT ... SELECT over generate_series each, in the database: no row passes
# through Python. Row i belongs to user i % USERS, so the users' rows interleave in the heap in time order,
# as rows written by bots running side by side would, and a page of one user's rows touches as many heap
# pages as it would in production, not the few a user-by-user load would give.
OWNERS = """
    SELECT row_number() OVER (ORDER BY u.id) - 1 AS idx, u.id AS user_id, b.id AS bot_id, b.symbol
    FROM accounts_user u JOIN automation_bot b ON b.owner_id = u.id
"""

ANALYSES_SQL = f"""
WITH owner AS ({OWNERS}),
rows AS (
    SELECT g.j, o.user_id, o.bot_id, o.symbol, g.j / %(users)s AS a,
           random() AS r1, random() AS r2, random() AS r3, random() AS r4, random() AS r5,
           %(start)s::timestamptz + (g.j + random()) * %(step)s * interval '1 second' AS created_at
    FROM generate_series(0, %(n)s - 1) AS g(j) JOIN owner o ON o.idx = g.j %% %(users)s
)
INSERT INTO learning_ailearningdata (
    id, user_id, bot_id, analysis_data, market_conditions, symbol, timeframe, market_sentiment,
    recommendation, regime, confidence_score, predicted_price, screenshot, outcome, actual_price,
    accuracy_score, outcome_r, untraded, feedback_data, resolved_at, analyst, model_name, prompt_version_id,
    prompt_section, prompt_tokens, completion_tokens, cost_usd, billed_to, llm_call, created_at, updated_at
)
SELECT
    j + 1, user_id, bot_id, '{{}}', '{{}}', symbol, '1h',
    (ARRAY['BULLISH', 'BEARISH', 'NEUTRAL'])[1 + floor(r1 * 3)::int],
    (ARRAY['BUY', 'SELL', 'HOLD'])[1 + floor(r2 * 3)::int],
    (ARRAY['TREND_HIGH_VOL', 'TREND_LOW_VOL', 'RANGE_HIGH_VOL', 'RANGE_LOW_VOL'])[1 + floor(r3 * 4)::int],
    20 + floor(r4 * 76),
    round((100 + r5 * 900)::numeric, 12),
    'charts/' || to_char(created_at, 'YYYY/MM') || '/bench_' || (j + 1) || '.png',
    CASE WHEN a >= %(unresolved_from)s THEN '' WHEN r5 < 0.5 THEN 'WIN' WHEN r5 < 0.55 THEN 'BREAKEVEN'
         ELSE 'LOSS' END,
    CASE WHEN a >= %(unresolved_from)s THEN NULL ELSE round((100 + r4 * 900)::numeric, 12) END,
    CASE WHEN a >= %(unresolved_from)s THEN NULL ELSE r3 END,
    CASE WHEN a >= %(unresolved_from)s OR r2 >= 2.0 / 3 THEN NULL WHEN r5 < 0.5 THEN 0.3 + r1 * 2.7
         WHEN r5 < 0.55 THEN 0 ELSE -0.5 - r1 * 0.6 END,
    a %% %(traded_every)s <> 0,  -- the analyses no trade links to
    '{{}}',
    CASE WHEN a >= %(unresolved_from)s THEN NULL ELSE created_at + interval '1 day' END,
    'OPENAI', 'gpt-4o-mini', %(first_version)s + floor(r1 * 3)::int, '',
    1000 + floor(r2 * 500)::int, 150 + floor(r3 * 100)::int, round((0.0003 + r4 * 0.0002)::numeric, 6),
    'OPERATOR', 'ASKED', created_at, created_at
FROM rows
"""

# Trade k of a user with k % LINK_EVERY == 0 is linked to the same user's analysis k // (TRADES_PER_USER /
# ANALYSES_PER_USER), whose id is known: analysis j has id j + 1 and belongs to user j % USERS.
TRADES_SQL = f"""
WITH owner AS ({OWNERS}),
rows AS (
    SELECT g.i, o.idx, o.user_id, o.bot_id, o.symbol, g.i / %(users)s AS k,
           random() AS r1, random() AS r2, random() AS r3, random() AS r4,
           %(start)s::timestamptz + (g.i + random()) * %(step)s * interval '1 second' AS created_at
    FROM generate_series(0, %(n)s - 1) AS g(i) JOIN owner o ON o.idx = g.i %% %(users)s
),
priced AS (
    SELECT *,
           CASE WHEN k >= %(open_from)s THEN 'OPEN' WHEN r1 < 0.02 THEN 'CANCELLED' ELSE 'CLOSED' END
               AS status,
           CASE WHEN r2 < 0.45 THEN 0.2 + r3 * 5.8 WHEN r2 < 0.5 THEN 0 ELSE -0.2 - r3 * 2.8 END AS pct,
           round((100 + r4 * 900)::numeric, 2) AS entry
    FROM rows
)
INSERT INTO trades_trade (
    owner_id, bot_id, analysis_id, is_simulated, symbol, side, amount, price, stop_loss, take_profit, status,
    exit_price, fees, pnl, is_automated, confidence, market_sentiment, outcome, pnl_percent, actual_rr,
    learning_data, client_order_id, exchange_order_id, execution_time, closed_at, created_at, updated_at
)
SELECT
    user_id, bot_id,
    CASE WHEN k %% %(link_every)s = 0 THEN (k / %(ratio)s) * %(users)s + idx + 1 END,
    true, symbol, CASE WHEN r4 < 0.5 THEN 'BUY' ELSE 'SELL' END,
    round((0.01 + r3 * 2)::numeric, 6), entry, round(entry * 0.98, 2), round(entry * 1.04, 2), status,
    CASE WHEN status = 'CLOSED' THEN round(entry * (1 + pct::numeric / 100), 2) END,
    round(entry * 0.002, 6),
    CASE WHEN status = 'CLOSED' THEN round((pct * 10)::numeric, 4) END,
    true, 20 + floor(r1 * 76), (ARRAY['BULLISH', 'BEARISH', 'NEUTRAL'])[1 + floor(r2 * 3)::int],
    CASE WHEN status <> 'CLOSED' THEN '' WHEN r2 < 0.45 THEN 'WIN' WHEN r2 < 0.5 THEN 'BREAKEVEN'
         ELSE 'LOSS' END,
    CASE WHEN status = 'CLOSED' THEN round(pct::numeric, 4) END,
    CASE WHEN status = 'CLOSED' THEN round((pct / 1.5)::numeric, 4) END,
    '{{}}', 'tai-bench-' || i, 'paper-tai-bench-' || i,
    created_at + interval '2 seconds',
    CASE WHEN status = 'CLOSED' THEN created_at + (1 + r3 * 47) * interval '1 hour' END,
    created_at, created_at
FROM priced
"""


def seed() -> None:
    """1,000 users with a bot each, their analyses and trades, and 3 prompt versions."""
    from django.contrib.auth.hashers import make_password
    from django.db import connection

    from accounts.models import User
    from automation.models import Bot
    from learning.models import PromptVersion

    password = make_password(None)  # unusable, hashed once: the users log in with tokens only
    User.objects.bulk_create(
        User(email=f"user{i:04d}@bench.invalid", password=password) for i in range(USERS)
    )
    users = list(User.objects.order_by("pk"))
    Bot.objects.bulk_create(
        Bot(owner=user, name="bench", exchange="bench", symbol=SYMBOLS[i % len(SYMBOLS)], timeframe="1h")
        for i, user in enumerate(users)
    )
    versions = PromptVersion.objects.bulk_create(
        PromptVersion(sha256=f"{i:x}" * 64, text=f"prompt version {i}") for i in range(1, 4)
    )
    start = NOW.timestamp() - YEAR_SECONDS
    analyses, trades = USERS * ANALYSES_PER_USER, USERS * TRADES_PER_USER
    common = {"users": USERS, "start": datetime.fromtimestamp(start, UTC), "link_every": LINK_EVERY}
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.42)")
        started = time.perf_counter()
        cursor.execute(
            ANALYSES_SQL,
            {
                **common,
                "n": analyses,
                "step": YEAR_SECONDS / analyses,
                "unresolved_from": ANALYSES_PER_USER - 2,
                "first_version": min(v.pk for v in versions),
                "traded_every": LINK_EVERY // (TRADES_PER_USER // ANALYSES_PER_USER),
            },
        )
        print(f"  {analyses:,} analyses inserted in {time.perf_counter() - started:.1f} s")
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('learning_ailearningdata', 'id'), max(id)) "
            "FROM learning_ailearningdata"
        )
        started = time.perf_counter()
        cursor.execute(
            TRADES_SQL,
            {
                **common,
                "n": trades,
                "step": YEAR_SECONDS / trades,
                "open_from": TRADES_PER_USER - OPEN_PER_USER,
                "ratio": TRADES_PER_USER // ANALYSES_PER_USER,
            },
        )
        print(f"  {trades:,} trades inserted in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        cursor.execute("VACUUM ANALYZE")
        print(f"  VACUUM ANALYZE in {time.perf_counter() - started:.1f} s")


def issue_tokens() -> dict[int, str]:
    """An API token for every user: {user id: the token}."""
    from accounts.models import ApiToken, User

    return {user.pk: ApiToken.issue(user, "bench")[1] for user in User.objects.order_by("pk")}


# --- measuring ----------------------------------------------------------------------------------------------
def deep_urls(session, base: str, tokens: dict[int, str], rng: random.Random) -> dict[str, list[tuple]]:
    """For DEEP_USERS users, each list's page DEEP_PAGE (or its last page), reached by following `next`:
    {list: [(token, url, page number)]}."""
    urls: dict[str, list[tuple]] = {name: [] for name in LISTS}
    for user in rng.sample(sorted(tokens), DEEP_USERS):
        token = tokens[user]
        for name, path in LISTS.items():
            url, page = base + path, 1
            while page < DEEP_PAGE:
                body = session.get(url, headers=headers(token), timeout=30).json()
                if not body["next"]:
                    break
                url, page = body["next"], page + 1
            urls[name].append((token, url, page))
    return urls


def unloaded(server: subprocess.Popen, base: str, tokens: dict[int, str]) -> dict[str, float]:
    """p50/p90/p99 of each list's first and deep page, one request at a time. Returns {list: first-page
    p50}, the figure the target is on."""
    import requests

    rng = random.Random(7)
    session = requests.Session()  # keep-alive if the server offers it; gunicorn's sync workers close
    users = sorted(tokens)

    def get(token: str, url: str) -> float:
        started = time.perf_counter()
        response = session.get(url, headers=headers(token), timeout=30)
        seconds = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")
        return seconds

    print("warming up the workers and walking to the deep pages...")
    for path in LISTS.values():
        for _ in range(WARM_UPS):
            get(tokens[rng.choice(users)], base + path)
    deep = deep_urls(session, base, tokens, rng)

    print(f"unloaded, one request at a time, {SAMPLES} requests each over random users:")
    usage = Usage({"gunicorn": server}).start()
    first_p50 = {}
    for name, path in LISTS.items():
        first = [get(tokens[rng.choice(users)], base + path) for _ in range(SAMPLES)]
        first_p50[name] = percentiles(first)[0]
        print(f"  GET {path} first page: {describe(first)}")
        pages = Counter(page for _, _, page in deep[name])
        picks = [rng.choice(deep[name]) for _ in range(SAMPLES)]
        samples = [get(token, url) for token, url, _ in picks]
        where = ", ".join(f"page {page}" for page in sorted(pages))
        print(f"  GET {path} {where} (cursor, {len(deep[name])} users): {describe(samples)}")
    print(f"  {usage.stop()}")
    size = session.get(base + LISTS["trades"], headers=headers(tokens[users[0]]), timeout=30)
    analyses = session.get(base + LISTS["analyses"], headers=headers(tokens[users[0]]), timeout=30)
    print(
        f"  response sizes: trades page {len(size.content) / 1024:.0f} KiB "
        f"({len(size.json()['results'])} rows), analyses page {len(analyses.content) / 1024:.0f} KiB "
        f"({len(analyses.json()['results'])} rows)"
    )
    return first_p50


def load(server: subprocess.Popen, base: str, tokens: dict[int, str]) -> int:
    """LOAD_SECONDS of CONNECTIONS connections, each asking for a random list of a random user as soon as
    its previous answer is in. Returns the error count."""
    rng = random.Random(11)
    users = sorted(tokens)

    def pick() -> Request:
        name = rng.choice(list(LISTS))
        return Request(name, "GET", base + LISTS[name], tokens[rng.choice(users)])

    usage = Usage({"gunicorn": server}).start()
    result = asyncio.run(http_load(pick, CONNECTIONS, LOAD_SECONDS))
    latencies, errors, total, wall = result.latencies, result.errors, result.total, result.seconds
    print(
        f"load: {CONNECTIONS} connections for {LOAD_SECONDS:.0f} s, first pages of both lists, random users:"
    )
    print(f"  {total:,} requests in {wall:.1f} s: {total / wall:.1f} requests/s")
    if latencies:
        print(f"  latency, all: {describe([s for _, s in latencies])}")
        for name, path in LISTS.items():
            samples = [s for n, s in latencies if n == name]
            if len(samples) >= 2:
                print(f"  latency, GET {path} ({len(samples):,}): {describe(samples)}")
    print(f"  errors: {len(errors)}")
    for _, kind, detail in errors[:ERROR_EXAMPLES]:
        print(f"    {kind} {detail}")
    print(f"  {usage.stop()}")
    return len(errors)


def explain(tokens: dict[int, str]) -> None:
    """One request of each list in this process: its time, its queries' times, and the plan of the list
    query. Where the time goes without HTTP and gunicorn in the way."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user = sorted(tokens)[USERS // 2]
    client = Client(HTTP_HOST="127.0.0.1", headers=headers(tokens[user]))
    print(f"in this process (django.test.Client), user {user}, median of 20 requests after 2 warm-ups:")
    for path in LISTS.values():
        for _ in range(2):
            client.get(path)
        walls = []
        for _ in range(20):
            started = time.perf_counter()
            response = client.get(path)
            walls.append(time.perf_counter() - started)
        assert response.status_code == 200, response.content[:300]
        with CaptureQueriesContext(connection) as captured:
            client.get(path)
        sqls = [q["sql"] for q in captured.captured_queries]
        timings = []
        with connection.cursor() as cursor:
            for sql in sqls:
                if not sql.lstrip().upper().startswith("SELECT"):
                    timings.append((None, sql))
                    continue
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                plan = [row[0] for row in cursor.fetchall()]
                execution = next(float(line.split()[2]) for line in plan if line.startswith("Execution Time"))
                timings.append((execution / 1000, sql, plan))
        db = sum(t[0] for t in timings if t[0] is not None)
        print(
            f"  GET {path}: {ms(statistics.median(walls))} per request, {len(sqls)} queries, "
            f"{ms(db)} of them executing in PostgreSQL (EXPLAIN ANALYZE)"
        )
        for timing in timings:
            label = ms(timing[0]) if timing[0] is not None else "  (write)"
            print(f"    {label:>9}  {' '.join(timing[1].split())[:90]}")
        slowest = max((t for t in timings if t[0] is not None), key=lambda t: t[0])
        print("    plan of the slowest:")
        for line in slowest[2]:
            print(f"      {line}")


def lean_against_serializer(tokens: dict[int, str]) -> None:
    """In this process, the CPU time of each list's first page written the lean way (core/api_lists.py) and,
    as the baseline, by its serializer over model instances (DRF's own `list`), the two views otherwise the
    same; and whether both wrote the same page."""
    from rest_framework import mixins
    from rest_framework.test import APIRequestFactory

    from learning.api.views import AnalysisViewSet
    from trades.api.views import TradeViewSet

    user = sorted(tokens)[USERS // 3]
    factory = APIRequestFactory()
    print(f"in this process, user {user}, CPU per first page, median of 30 after 3 warm-ups:")
    for path, lean in ((LISTS["trades"], TradeViewSet), (LISTS["analyses"], AnalysisViewSet)):
        baseline = type(f"Serialized{lean.__name__}", (lean,), {"list": mixins.ListModelMixin.list})
        pages = {}
        for name, view in (("serializer (baseline)", baseline), ("lean", lean)):
            handler = view.as_view({"get": "list"})

            def get(handler=handler, path=path) -> bytes:
                response = handler(factory.get(path, HTTP_HOST="127.0.0.1", **auth(tokens[user])))
                return response.render().content

            for _ in range(3):
                pages[name] = get()
            cpu = []
            for _ in range(30):
                started = time.process_time()
                get()
                cpu.append(time.process_time() - started)
            print(f"  GET {path} {name}: {ms(statistics.median(cpu))}")
        print(f"    the same page: {'yes' if len(set(pages.values())) == 1 else 'NO'}")


def auth(token: str) -> dict[str, str]:
    return {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers(token).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the database and the temporary folder")
    args = parser.parse_args()

    if in_own_process("bench.bench_api"):
        return

    print(machine_state())
    tmp = Path(tempfile.mkdtemp(prefix="tradingai-bench-api-"))
    env = server_env(tmp, DB_NAME)
    server = None
    try:
        setup_django(DB_NAME, env)
        print("seeding:")
        started = time.perf_counter()
        seed()
        print(
            f"seeded in {time.perf_counter() - started:.1f} s: {USERS:,} users with a bot each, "
            f"{USERS * TRADES_PER_USER:,} trades ({TRADES_PER_USER:,} each), "
            f"{USERS * ANALYSES_PER_USER:,} analyses ({ANALYSES_PER_USER} each), over a year"
        )
        tokens = issue_tokens()

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = tmp / "gunicorn.log"
        server = start_gunicorn(env, port, log, WORKERS)
        wait_until_up(server, base + LISTS["trades"], next(iter(tokens.values())), log)
        print(f"gunicorn: {WORKERS} sync workers, 1 thread each, DEBUG off, on {base}")

        first_p50 = unloaded(server, base, tokens)
        errors = load(server, base, tokens)
        explain(tokens)
        lean_against_serializer(tokens)

        lines = log.read_text().splitlines()
        problems = [line for line in lines if "ERROR" in line or "Traceback" in line or "CRITICAL" in line]
        if problems:
            print(f"gunicorn log: {len(problems)} error line(s), the first: {problems[0]}")

        print(
            f"target: p50 <= {TARGET_P50 * 1000:.0f} ms for each list unloaded, "
            f"{TARGET_ERRORS} errors under load"
        )
        for name, path in LISTS.items():
            p50 = first_p50[name]
            verdict = "met" if p50 <= TARGET_P50 else "NOT met"
            print(f"  GET {path} p50 {ms(p50)}: p50/target = {p50 / TARGET_P50:.2f} ({verdict})")
        verdict = "met" if errors <= TARGET_ERRORS else "NOT met"
        print(f"  errors under load: {errors} ({verdict})")
    finally:
        if server is not None:
            stop_processes([server])
        close_database()
        if args.keep:
            print(f"kept: database {DB_NAME}, folder {tmp}; to serve it again:")
            print(
                f"  DJANGO_DEBUG=false DATABASE_URL={database_url(DB_NAME)} TRADINGAI_VAR_DIR={tmp / 'var'} "
                f"TRADINGAI_API_USER_RATE=1000000/second "
                f".venv/bin/gunicorn tradingai.wsgi --workers {WORKERS}"
            )
        else:
            drop_database(DB_NAME)
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
