from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.crypto import SecretDecryptionError
from accounts.models import ExchangeAccount, ModelConnection

# Each model with encrypted columns, what its rows are called, and the columns.
ENCRYPTED = (
    (ExchangeAccount, "exchange account", ["api_key_encrypted", "secret_encrypted", "password_encrypted"]),
    (ModelConnection, "model connection", ["api_key_encrypted"]),
)


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (exchange credentials, model connections' API keys) under the "
        "first key of FIELD_ENCRYPTION_KEYS. Put the new key first and keep the old ones after it until "
        "this has run."
    )

    def handle(self, *args, **options):
        for model, called, columns in ENCRYPTED:
            done = 0
            for pk in model.objects.order_by("pk").values_list("pk", flat=True):
                with transaction.atomic():
                    row = model.objects.select_for_update().get(pk=pk)
                    try:
                        row.rotate_encryption()
                    except SecretDecryptionError:
                        raise CommandError(
                            f"{called.capitalize()} {pk} cannot be decrypted with any configured key; "
                            "add the key it was encrypted with to FIELD_ENCRYPTION_KEYS and run again. "
                            f"{done} {called}(s) were re-encrypted before it."
                        ) from None
                    row.save(update_fields=columns)
                done += 1
            self.stdout.write(self.style.SUCCESS(f"Re-encrypted {done} {called}(s) under the current key."))
