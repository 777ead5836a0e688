"""Automation's events, worded for the bot's owner and handed to notifications (which sits below
automation: docs/architecture.md)."""

from datetime import datetime

from notifications.events import Event
from notifications.services import notify

from .models import Bot, CycleRun


def run_failed(run: CycleRun, bot: Bot) -> None:
    notify(
        bot.owner,
        Event.RUN_FAILED,
        f"“{bot.name}”: a cycle failed",
        f"The cycle of “{bot.name}” for {run.slot:%Y-%m-%d %H:%M} UTC failed at its {run.failed_step} step: "
        f"{run.error}",
        {"bot": bot.pk, "run": run.pk, "slot": run.slot.isoformat(), "step": run.failed_step},
    )


def bot_paused(bot: Bot, reason: str) -> None:
    notify(
        bot.owner,
        Event.BOT_PAUSED,
        f"“{bot.name}” paused",
        f"“{bot.name}” ({bot.symbol}) was paused: {reason}. It trades again once you start it.",
        {"bot": bot.pk, "reason": reason},
    )


def spend_cap_reached(user, refusal: str, month_start: datetime) -> None:
    """Told once per calendar month (the notification's key), by the first cycle that finds the cap
    reached."""
    notify(
        user,
        Event.SPEND_CAP,
        "Your monthly LLM spending cap is reached",
        f"{refusal[:1].upper()}{refusal[1:]}. Until then, your bots' cycles with a paid analyst are skipped.",
        {"month": f"{month_start:%Y-%m}"},
        key=f"{month_start:%Y-%m}",
    )
