from functools import partial

import pytest

from market import exchanges
from tests.factories import ExchangeAccountFactory
from tests.stand_ins.exchange_server import ExchangeStandIn
from trades.brokers.live import LiveBroker

API_KEY = "AKIAPLAINKEY0000123456"
SECRET = "PLAIN-SECRET-never-to-be-seen-9f8e7d"

# A timeout short enough for the timeout tests to be quick; ccxt's rate limiter kept on but brief (see
# tests/market/conftest.py).
STAND_IN_CLIENT_CONFIG = {"timeout": 1000, "rateLimit": 1}


@pytest.fixture
def exchange_stand_in(monkeypatch):
    """Binance on 127.0.0.1, accepting API_KEY; every ccxt client the code under test builds talks to it."""
    with ExchangeStandIn(api_key=API_KEY) as stand_in:
        monkeypatch.setattr(
            exchanges,
            "make_client",
            partial(exchanges.make_client, api_origin=stand_in.origin, config=STAND_IN_CLIENT_CONFIG),
        )
        yield stand_in


@pytest.fixture
def live_trading(settings):
    settings.LIVE_TRADING_ENABLED = True


@pytest.fixture
def alice_on_binance(alice):
    return ExchangeAccountFactory(owner=alice, exchange="binance", api_key=API_KEY, secret=SECRET)


@pytest.fixture
def live_broker(exchange_stand_in, alice_on_binance, live_trading) -> LiveBroker:
    return LiveBroker(alice_on_binance)
