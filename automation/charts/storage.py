"""Chart images go through Django's storage API (local files by default, any storage backend in production)
under names a human can read, and that carry everything that decides the picture (docs/security.md, charts: a
name without the exchange or the source let one bot's chart become another's):

- a chart TradingAI renders depends on its market's candles only, so it is shared by every bot on the
  market: `charts/rendered/<exchange>/<SYMBOL>_<timeframe>_<candle time>_<key digest>.png`;
- any other chart (a TradingView capture) belongs to the one bot it was taken for and is never reused:
  `charts/bots/<bot id>/<SYMBOL>_<timeframe>_<candle time>.png`.

Names keep letters and digits only, so two markets could read alike (`BTC/USD` and `BTCUSD`); the digest
of the exact exchange, symbol and timeframe keeps their rendered charts apart."""

import hashlib
import re
from datetime import datetime

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from market.sources import Market


def _readable(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", text)


def _stem(market: Market, at: datetime) -> str:
    return f"{_readable(market.symbol).upper()}_{_readable(market.timeframe)}_{at:%Y%m%d_%H%M%S}"


def rendered_chart_name(market: Market, at: datetime) -> str:
    key = "\0".join(("rendered", market.exchange, market.symbol, market.timeframe))
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"charts/rendered/{_readable(market.exchange).lower()}/{_stem(market, at)}_{digest}.png"


def private_chart_name(owner: str, market: Market, at: datetime) -> str:
    return f"charts/bots/{_readable(owner)}/{_stem(market, at)}.png"


def save_chart(png: bytes, name: str) -> str:
    """Stores the PNG and returns its storage name (the storage adds a suffix if the name is taken, so an
    existing chart is never overwritten)."""
    return default_storage.save(name, ContentFile(png))
