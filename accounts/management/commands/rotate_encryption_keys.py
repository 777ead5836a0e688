from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.crypto import SecretDecryptionError


def encrypted_models():
    """Every model that keeps secrets encrypted with accounts.crypto: it names its columns in
    ENCRYPTED_FIELDS and re-encrypts them in rotate_encryption() (exchange accounts, model connections;
    notification channels, whose app sits above this one and is found here without importing it)."""
    return [model for model in apps.get_models() if getattr(model, "ENCRYPTED_FIELDS", None)]


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (exchange credentials, model connections' API keys, notification "
        "channels' webhook URLs and tokens) under the first key of FIELD_ENCRYPTION_KEYS. Put the new key "
        "first and keep the old ones after it until this has run."
    )

    def handle(self, *args, **options):
        for model in encrypted_models():
            name = model._meta.verbose_name
            done = 0
            for pk in model.objects.order_by("pk").values_list("pk", flat=True):
                with transaction.atomic():
                    row = model.objects.select_for_update().get(pk=pk)
                    try:
                        row.rotate_encryption()
                    except SecretDecryptionError:
                        raise CommandError(
                            f"{name.capitalize()} {pk} cannot be decrypted with any configured key; "
                            "add the key it was encrypted with to FIELD_ENCRYPTION_KEYS and run again. "
                            f"{done} {name}(s) were re-encrypted before it."
                        ) from None
                    row.save(update_fields=model.ENCRYPTED_FIELDS)
                done += 1
            self.stdout.write(self.style.SUCCESS(f"Re-encrypted {done} {name}(s) under the current key."))
