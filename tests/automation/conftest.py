"""Stand-ins for the automation tests: the OpenAI server and the Binance exchange."""

from tests.market.conftest import exchange_stand_in
from tests.stand_ins.openai_server import openai_stand_in

__all__ = ["exchange_stand_in", "openai_stand_in"]
