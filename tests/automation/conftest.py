"""The OpenAI stand-in server, for the analyze command's end-to-end test."""

from tests.stand_ins.openai_server import openai_stand_in

__all__ = ["openai_stand_in"]
