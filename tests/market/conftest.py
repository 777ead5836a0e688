from functools import partial

import pytest

from market import exchanges
from market.exchanges import CcxtCandles
from tests.stand_ins.exchange_server import ExchangeStandIn

# A timeout short enough for the timeout test to be quick, and ccxt's rate limiter kept on but brief:
# Binance's rateLimit is 50 ms per unit of request weight, and loading markets weighs 20 per request.
STAND_IN_CLIENT_CONFIG = {"timeout": 1000, "rateLimit": 1}


@pytest.fixture
def exchange_stand_in(monkeypatch):
    """Binance on 127.0.0.1; every ccxt client the code under test builds (make_client) talks to it."""
    with ExchangeStandIn() as stand_in:
        monkeypatch.setattr(
            exchanges,
            "make_client",
            partial(exchanges.make_client, api_origin=stand_in.origin, config=STAND_IN_CLIENT_CONFIG),
        )
        yield stand_in


@pytest.fixture
def binance(exchange_stand_in) -> CcxtCandles:
    return CcxtCandles("binance")
