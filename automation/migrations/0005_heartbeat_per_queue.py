"""A heartbeat per queue (automation.health): the one worker heartbeat was the default queue's, and beat's
entry that sent it, without a queue, is replaced by one entry per queue (settings.CELERY_BEAT_SCHEDULE)."""

from django.db import migrations


def forwards(apps, schema_editor):
    apps.get_model("automation", "Heartbeat").objects.filter(name="worker").update(name="queue:default")
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name="worker-heartbeat").delete()


def backwards(apps, schema_editor):
    apps.get_model("automation", "Heartbeat").objects.filter(name="queue:default").update(name="worker")


class Migration(migrations.Migration):
    dependencies = [
        ("automation", "0004_run_now_requests"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
