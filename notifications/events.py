"""The events a user can be told about, each with a switch of its own (EventSwitch)."""

from django.db import models


class Event(models.TextChoices):
    TRADE_OPENED = "TRADE_OPENED", "A trade is opened"
    TRADE_CLOSED = "TRADE_CLOSED", "A trade is closed"
    RUN_FAILED = "RUN_FAILED", "A cycle fails"
    BOT_PAUSED = "BOT_PAUSED", "A bot is paused"
    SPEND_CAP = "SPEND_CAP", "The month's LLM spending cap is reached"
    WEEKLY_SUMMARY = "WEEKLY_SUMMARY", "Weekly learning summary"
    # A message the user sends to one channel from the settings page, to see it arrive: not an event of the
    # product, so it has no switch.
    TEST = "TEST", "Test message"


SWITCHABLE = [event for event in Event if event != Event.TEST]
