"""Pinned avoid-conditions were not validated before issue 15 (finding 9): a pin such as [null] failed every
later cycle of its bot at `decide`. Keep the usable ones; a pin left with none goes, so the bot follows what
it learns again. The allowed values are copied here (a migration must not change with the code)."""

from django.db import migrations

AVOIDABLE = {
    "regime": ("TREND_HIGH_VOL", "TREND_LOW_VOL", "RANGE_HIGH_VOL", "RANGE_LOW_VOL", "UNKNOWN"),
    "market_sentiment": ("BULLISH", "BEARISH", "NEUTRAL"),
}


def usable(condition) -> bool:
    return (
        isinstance(condition, dict)
        and set(condition) == {"field", "value"}
        and condition["field"] in AVOIDABLE
        and condition["value"] in AVOIDABLE[condition["field"]]
    )


def drop_unusable_avoid_pins(apps, schema_editor):
    LearnedPolicy = apps.get_model("learning", "LearnedPolicy")
    for policy in LearnedPolicy.objects.filter(pins__has_key="avoid_conditions"):
        pinned = policy.pins["avoid_conditions"]
        kept = [c for c in pinned if usable(c)] if isinstance(pinned, list) else []
        if kept == pinned:
            continue
        if kept:
            policy.pins["avoid_conditions"] = kept
        else:
            del policy.pins["avoid_conditions"]
        policy.save(update_fields=["pins"])


class Migration(migrations.Migration):
    dependencies = [("learning", "0006_calls_by_resolution")]

    operations = [migrations.RunPython(drop_unusable_avoid_pins, migrations.RunPython.noop)]
