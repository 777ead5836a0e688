"""Dispatch by the minute (automation.dispatch): a running bot's next due moment kept with the bot, and the
per-bot beat entries ("bot <id> cycle") it replaces removed.

The formulas are written out here, not imported from automation.schedule, so that the migration keeps
doing what it did when the code changes: a slot is a whole period since the epoch, a bot's offset into it
is a multiplicative hash of its id in whole minutes (schedule.offset_of). Going back makes the entries
again, as automation.services made them."""

import json
from datetime import UTC, datetime, timedelta

from django.db import migrations, models
from django.utils import timezone

PERIODS = {"15m": 15, "1h": 60, "4h": 240, "1d": 1440}  # minutes, market.timeframes
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CYCLE_TASK = "automation.tasks.run_cycle_task"


def offset_minutes(bot) -> int:
    return (bot.pk * 2654435761) % 2**32 % PERIODS[bot.timeframe]


def forwards(apps, schema_editor):
    Bot = apps.get_model("automation", "Bot")
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name__regex=r"^bot [0-9]+ cycle$", task=CYCLE_TASK
    ).delete()
    now = timezone.now()
    running = Bot.objects.filter(status="RUNNING").only("pk", "timeframe")
    for bot in running.iterator():
        period, offset = timedelta(minutes=PERIODS[bot.timeframe]), timedelta(minutes=offset_minutes(bot))
        moment = now - offset
        slot = moment - (moment - EPOCH) % period
        # The first due moment after now: a slot due before the upgrade was sent by the old beat entry.
        Bot.objects.filter(pk=bot.pk).update(next_due=slot + offset + period)
    # The beat process reads its schedule's changes from this row; the entries removed must not linger.
    apps.get_model("django_celery_beat", "PeriodicTasks").objects.update_or_create(
        ident=1, defaults={"last_update": now}
    )


def backwards(apps, schema_editor):
    Bot = apps.get_model("automation", "Bot")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for bot in Bot.objects.filter(status="RUNNING").iterator():
        minutes = offset_minutes(bot)
        minute, hour = {
            "15m": (f"{minutes}-59/15", "*"),
            "1h": (str(minutes), "*"),
            "4h": (str(minutes % 60), f"{minutes // 60}-23/4"),
            "1d": (str(minutes % 60), str(minutes // 60)),
        }[bot.timeframe]
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
        )
        PeriodicTask.objects.update_or_create(
            name=f"bot {bot.pk} cycle",
            defaults={
                "task": CYCLE_TASK,
                "crontab": crontab,
                "args": json.dumps([bot.pk]),
                "enabled": True,
                "description": f"{bot.name}: {bot.symbol} {bot.timeframe} on {bot.exchange}",
            },
        )
    apps.get_model("django_celery_beat", "PeriodicTasks").objects.update_or_create(
        ident=1, defaults={"last_update": timezone.now()}
    )


class Migration(migrations.Migration):
    dependencies = [
        ("automation", "0010_bot_timeframe_in_words"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AddField(
            model_name="bot",
            name="next_due",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddIndex(
            model_name="bot",
            index=models.Index(fields=["next_due"], name="bot_next_due"),
        ),
        migrations.RunPython(forwards, backwards),
    ]
