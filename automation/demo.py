"""The demo account: a user and a simulation bot on real candles shipped with the repository."""

import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from accounts.models import User
from market.importers import parse_csv, store_bars
from market.models import Candle

from .models import Bot

DEMO_EMAIL = "demo@tradingai.local"
# EURUSD hourly candles, 2017-04-19 to 2018-02-07 (5,000 bars), from the `backtesting` package's test data.
SAMPLE_CSV = Path(settings.BASE_DIR) / "fixtures" / "EURUSD_1h.csv"
SAMPLE_MARKET = {"exchange": "sample", "symbol": "EUR/USD", "timeframe": "1h"}


@dataclass(frozen=True)
class DemoResult:
    email: str
    password: str | None  # None when the account existed and its password was left alone
    bot: Bot
    candles: int


def load_sample_candles() -> int:
    stored = Candle.objects.filter(**SAMPLE_MARKET).count()
    if stored:
        return stored
    return store_bars(**SAMPLE_MARKET, bars=parse_csv(SAMPLE_CSV.read_text()))


@transaction.atomic
def seed_demo(reset_password: bool = False) -> DemoResult:
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
