"""Between cycles, every few minutes: open trades checked against the candles since their entry."""

import logging

from learning.resolution import resolve_traded
from market.errors import MarketDataError
from market.exchanges import source_for
from market.sources import Market
from trades.brokers.base import BrokerError
from trades.models import Trade
from trades.monitor import monitor_trades

from .models import Bot
from .replay import REPLAY_DOMAIN

logger = logging.getLogger(__name__)
LOOKBACK = 500  # candles: more than MAX_HOLDING_CANDLES, so every open trade's whole life is covered


def monitor_running_bots() -> int:
    closed = 0
    # PENDING: live entries whose cycle ended without recording the fill, settled from the exchange.
    # Not a replay's or a backtest's: their trades are watched by the replay on its own clock, and those left
    # open at its end belong to a past the wall clock must not close them in.
    bots = (
        Bot.objects.filter(trades__status__in=(Trade.Status.OPEN, Trade.Status.PENDING))
        .exclude(owner__email__endswith=f"@{REPLAY_DOMAIN}")
        .distinct()
    )
    for bot in bots:
        market = Market(bot.exchange, bot.symbol, bot.timeframe)
        # One bot's exchange failing must not keep the others' trades from being watched.
        try:
            candles = source_for(market).candles(market, limit=LOOKBACK)
            closed += len(monitor_trades(bot, candles, market.period, resolve=resolve_traded))
        except (MarketDataError, BrokerError) as e:
            logger.warning("monitor: bot %s: %s", bot.pk, e)
    return closed
