"""The demo account: a user and a simulation bot on real candles shipped with the repository, and, on
request, a history of the bot's cycles over those candles.

Their market, the `sample` exchange, goes on past the last shipped candle on the wall clock
(`market.sources.SampleCandles`): started, the bot analyses the hour just closed, and its calls resolve
hours later. The history (`seed_history`) is replayed on the shipped hours themselves, in 2017-2018."""

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from accounts.models import User
from market.importers import parse_csv, store_bars
from market.models import Candle
from market.sources import SAMPLE_EXCHANGE, Market

from .models import Bot, CycleRun
from .replay import Progress, ReplaySpec, replay

DEMO_EMAIL = "demo@tradingai.local"
# EURUSD hourly candles, 2017-04-19 to 2018-02-07 (5,000 bars), from the `backtesting` package's test data.
SAMPLE_CSV = Path(settings.BASE_DIR) / "fixtures" / "EURUSD_1h.csv"
SAMPLE_MARKET = {"exchange": SAMPLE_EXCHANGE, "symbol": "EUR/USD", "timeframe": "1h"}
# The history ends this long before the last shipped candle, so that the trades of its last cycles can
# still reach their stop, their target or their time limit (at most MAX_HOLDING_CANDLES), and its last
# analyses theirs, on candles that exist.
HISTORY_MARGIN = timedelta(hours=48)


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


def seed_history(bot: Bot, count: int, progress: Callable[[Progress], None] | None = None) -> int:
    """Replay the bot's real cycles (its own analyst, charts drawn so that its analysis pages show them, the
    paper broker, the learning) over `count` hourly slots of the shipped candles, so that the pages have
    analyses, trades and insights to show. Slots run before are left alone, so a second call runs only what
    is missing. Returns how many cycles ran."""
    wanted = history_slots(count)
    if not wanted:
        return 0
    before = CycleRun.objects.filter(bot=bot).count()
    spec = ReplaySpec(**SAMPLE_MARKET, analyst=bot.analyst.lower(), start=wanted[0], end=wanted[-1])
    replay(spec, bot=bot, progress=progress, draw_charts=True)
    return CycleRun.objects.filter(bot=bot).count() - before
