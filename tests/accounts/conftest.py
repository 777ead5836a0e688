"""For the audit log's tests: the Binance stand-in (live bots and orders) and the API's clients."""

from tests.api.conftest import api, charlie_api
from tests.market.conftest import exchange_stand_in

__all__ = ["api", "charlie_api", "exchange_stand_in"]
