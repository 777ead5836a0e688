"""Chart images go through Django's storage API (local files by default, any storage backend in
production) under names a human can read: charts/SOLUSD_1h_20250718_143000.png."""

import re
from datetime import datetime

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from market.sources import Market


def chart_name(market: Market, at: datetime) -> str:
    symbol = re.sub(r"[^A-Za-z0-9]", "", market.symbol).upper()
    return f"charts/{symbol}_{market.timeframe}_{at:%Y%m%d_%H%M%S}.png"


def save_chart(png: bytes, market: Market, at: datetime) -> str:
    """Stores the PNG and returns its storage name (the storage adds a suffix if the name is taken)."""
    return default_storage.save(chart_name(market, at), ContentFile(png))
