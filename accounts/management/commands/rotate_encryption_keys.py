from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.crypto import SecretDecryptionError
from accounts.models import ExchangeAccount


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored exchange credential under the first key of FIELD_ENCRYPTION_KEYS. "
        "Put the new key first and keep the old ones after it until this has run."
    )

    def handle(self, *args, **options):
        done = 0
        for pk in ExchangeAccount.objects.order_by("pk").values_list("pk", flat=True):
            with transaction.atomic():
                account = ExchangeAccount.objects.select_for_update().get(pk=pk)
                try:
                    account.rotate_encryption()
                except SecretDecryptionError:
                    raise CommandError(
                        f"Exchange account {pk} cannot be decrypted with any configured key; "
                        "add the key it was encrypted with to FIELD_ENCRYPTION_KEYS and run again. "
                        f"{done} account(s) were re-encrypted before it."
                    ) from None
                account.save(update_fields=["api_key_encrypted", "secret_encrypted", "password_encrypted"])
            done += 1
        self.stdout.write(
            self.style.SUCCESS(f"Re-encrypted {done} exchange account(s) under the current key.")
        )
