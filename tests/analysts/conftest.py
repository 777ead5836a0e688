"""The OpenAI stand-in server, for the analysts' tests."""

from tests.stand_ins.openai_server import openai_stand_in

__all__ = ["openai_stand_in"]
