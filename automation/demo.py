"""The demo account: a user and a simulation bot on real candles shipped with the repository, and, on
request, a history of the bot's cycles over those candles.

Their market, the `sample` exchange, goes on past the last shipped candle on the wall clock
(`market.sources.SampleCandles`): started, the bot analyses the hour just closed, and its calls resolve
hours later. The history (`seed_history`) is replayed on the shipped hours themselves, in 2017-2018.

`make run` asks for the history in the background (`seed_demo --history 300 --background`): the default
worker replays it (`history_in_background`, from `seed_demo_history_task`) while the site already answers,
the dashboard shows its progress (`history_progress`, kept in the cache, which every process shares), and
the bot is started on the moving sample market once its history is there."""

import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Max

from accounts.models import User
from market.importers import parse_csv, store_bars
from market.models import Candle
from market.sources import SAMPLE_EXCHANGE, Market

from .models import Bot, CycleRun
from .replay import Progress, ReplaySpec, not_run, replay
from .services import BotActionError, bot_start

DEMO_EMAIL = "demo@tradingai.local"
# EURUSD hourly candles, 2017-04-19 to 2018-02-07 (5,000 bars), from the `backtesting` package's test data.
SAMPLE_CSV = Path(settings.BASE_DIR) / "fixtures" / "EURUSD_1h.csv"
SAMPLE_MARKET = {"exchange": SAMPLE_EXCHANGE, "symbol": "EUR/USD", "timeframe": "1h"}
# The history ends this long before the last shipped candle, so that the trades of its last cycles can
# still reach their stop, their target or their time limit (at most MAX_HOLDING_CANDLES), and its last
# analyses theirs, on candles that exist.
HISTORY_MARGIN = timedelta(hours=48)
# How long a history's progress is kept: a history queued while no worker runs says so on the dashboard
# for a day, then the dashboard stops waiting for it.
PROGRESS_TIMEOUT = 24 * 3600
# Cycles per transaction of the history replayed in the background: on SQLite a transaction holds the one
# write lock, and beat, the workers and the site wait for it (20 s at most, then fail); ten cycles with
# their charts held it past that on a busy machine.
BACKGROUND_CHUNK = 5
# And a pause after each: SQLite's waiting writers retry every 100 ms at most, and a replay that takes the
# lock again at once starved them (beat's and the workers' heartbeats failed 20 s later, chunk after chunk).
SQLITE_PAUSE_SECONDS = 0.15
# One history at a time per bot: a task handed back by a stopped worker and the one the next `make run`
# sends would otherwise replay the same slots side by side. The claim lapses this long after the last
# chunk, so that a worker killed mid-way does not hold it.
CLAIM_SECONDS = 120


class HistoryBusyError(Exception):
    """Another task is replaying this bot's history."""


@dataclass(frozen=True)
class DemoResult:
    email: str
    password: str | None  # None when the account existed and its password was left alone
    bot: Bot
    candles: int
    cycles: int = 0  # history cycles run by this call


def load_sample_candles() -> int:
    stored = Candle.objects.filter(**SAMPLE_MARKET).count()
    if stored:
        return stored
    return store_bars(**SAMPLE_MARKET, bars=parse_csv(SAMPLE_CSV.read_text()))


def seed_demo(
    reset_password: bool = False, history: int = 0, progress: Callable[[Progress], None] | None = None
) -> DemoResult:
    """The demo account; with `history`, also that many hourly cycles of its bot (see `seed_history`)."""
    result = _seed_account(reset_password)
    if not history:
        return result
    # Outside the account's transaction: minutes of cycles in one transaction would hold SQLite's write
    # lock against the web and worker processes all along.
    cycles = seed_history(result.bot, history, progress)
    return DemoResult(result.email, result.password, result.bot, result.candles, cycles)


@transaction.atomic
def _seed_account(reset_password: bool) -> DemoResult:
    candles = load_sample_candles()
    user = User.objects.filter(email=DEMO_EMAIL).first()
    password = None
    if user is None or reset_password:
        password = secrets.token_urlsafe(12)
        if user is None:
            user = User.objects.create_user(DEMO_EMAIL, password, display_name="Demo trader")
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
    bot, _ = Bot.objects.get_or_create(
        owner=user,
        name="EUR/USD demo",
        defaults={**SAMPLE_MARKET, "mode": Bot.Mode.SIMULATION, "analyst": Bot.Analyst.TECHNICAL},
    )
    return DemoResult(email=DEMO_EMAIL, password=password, bot=bot, candles=candles)


def history_slots(count: int) -> list[datetime]:
    """The slots at which the last `count` shipped candles before the margin closed: the hours a bot running
    then would have analysed, without the weekends' hours, when the market was shut and nothing changed."""
    period = Market(**SAMPLE_MARKET).period
    candles = Candle.objects.filter(**SAMPLE_MARKET)
    end = candles.aggregate(last=Max("open_time"))["last"] - HISTORY_MARGIN
    opened = candles.filter(open_time__lte=end - period).order_by("-open_time")
    return sorted(t + period for t in opened.values_list("open_time", flat=True)[:count])


def seed_history(
    bot: Bot, count: int, progress: Callable[[Progress], None] | None = None, chunk: int | None = None
) -> int:
    """Replay the bot's real cycles (its own analyst, charts drawn so that its analysis pages show them, the
    paper broker, the learning) over `count` hourly slots of the shipped candles, so that the pages have
    analyses, trades and insights to show. Slots run before are left alone, so a second call runs only what
    is missing. Returns how many cycles ran."""
    wanted = history_slots(count)
    if not wanted:
        return 0
    before = CycleRun.objects.filter(bot=bot).count()
    spec = ReplaySpec(**SAMPLE_MARKET, analyst=bot.analyst.lower(), start=wanted[0], end=wanted[-1])
    replay(spec, bot=bot, progress=progress, draw_charts=True, chunk=chunk)
    return CycleRun.objects.filter(bot=bot).count() - before


def _progress_key(bot: Bot) -> str:
    return f"demo-history:{bot.pk}"


def history_progress(bot: Bot) -> Progress | None:
    """How far the bot's history replayed in the background has come; None when none is under way."""
    found = cache.get(_progress_key(bot))
    return Progress(**found) if found else None


def history_missing(bot: Bot, count: int) -> int:
    """How many of the `count` history slots the bot has not run yet."""
    return len(not_run(bot, history_slots(count)))


def history_queued(bot: Bot, missing: int) -> None:
    """Say on the dashboard that `missing` history cycles wait for a worker, before the task is sent."""
    cache.set(_progress_key(bot), {"done": 0, "total": missing, "failed": 0}, PROGRESS_TIMEOUT)


def history_in_background(bot_id: int, count: int) -> int:
    """The worker's side of `seed_demo --background`: the history, its progress in the cache as it goes,
    then the bot started on the moving sample market (once, when this call ran the history: a demo bot
    stopped by its user stays stopped when `make run` starts again). Returns how many cycles ran."""
    bot = Bot.objects.select_related("owner").get(pk=bot_id)
    claim = f"demo-history-claim:{bot.pk}"
    if not cache.add(claim, True, CLAIM_SECONDS):
        raise HistoryBusyError(f"bot {bot.pk}'s history is being replayed by another task")

    def progress(p: Progress) -> None:  # after each chunk's commit
        done = {"done": p.done, "total": p.total, "failed": p.failed}
        cache.set(_progress_key(bot), done, PROGRESS_TIMEOUT)
        cache.set(claim, True, CLAIM_SECONDS)
        if connection.vendor == "sqlite":
            time.sleep(SQLITE_PAUSE_SECONDS)

    try:
        cycles = seed_history(bot, count, progress, chunk=BACKGROUND_CHUNK)
        bot.refresh_from_db()
        if cycles and bot.status == Bot.Status.STOPPED:
            # A plan without room for it: the history is there, and the bot waits for its user.
            with contextlib.suppress(BotActionError):
                bot_start(bot)
    finally:
        # After the start, so that the dashboard never shows the bot stopped between the two.
        cache.delete_many([_progress_key(bot), claim])
    return cycles
