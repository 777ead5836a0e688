from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    # The database cache (the default when CACHE_URL names no Redis) holds every throttle's counts: it must
    # exist wherever the schema does, the test database included. Nothing is created for a Redis cache.
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_login_failures"),
    ]

    operations = [
        # The hand-written sign-in throttle's table: django-axes counts failures now (accounts.lockout).
        migrations.DeleteModel(name="LoginFailure"),
        migrations.RunPython(create_cache_table, migrations.RunPython.noop),
    ]
