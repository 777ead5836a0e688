import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from accounts.crypto import SecretDecryptionError
from accounts.models import ExchangeAccount
from tests.factories import ExchangeAccountFactory, UserFactory, force_login_verified

API_KEY = "AKIA-visible-key-77f1e2d3c4b5a6"
SECRET = "s3cr3t-that-must-never-leave-the-database-ciphertext"


def add_account(client, **overrides):
    data = {"label": "Main", "exchange": "kraken", "api_key": API_KEY, "secret": SECRET, "password": ""}
    return client.post(reverse("exchange_accounts"), {**data, **overrides})


def raw_rows():
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ExchangeAccount._meta.db_table}")  # noqa: S608 - table name is ours
        return [" ".join(str(v) for v in row) for row in cursor.fetchall()]


def test_credentials_are_encrypted_in_the_database_and_readable_by_the_owner_only_through_code(alice_client):
    response = add_account(alice_client)
    assert response.status_code == 302
    [row] = raw_rows()
    assert SECRET not in row
    assert API_KEY not in row
    account = ExchangeAccount.objects.get()
    creds = account.credentials()
    assert (creds.api_key, creds.secret) == (API_KEY, SECRET)
    assert SECRET not in repr(creds)


def test_secret_never_appears_on_a_page_after_saving(alice_client):
    add_account(alice_client)
    page = alice_client.get(reverse("exchange_accounts")).content.decode()
    assert "Main" in page
    assert f"••••{API_KEY[-4:]}" in page  # the hint: the key's last 4 characters, never the secret
    assert SECRET not in page
    assert API_KEY not in page


def test_secret_is_absent_from_every_page_of_the_owner(alice_client, alice, alice_bot):
    add_account(alice_client)
    alice_bot.exchange_account = ExchangeAccount.objects.get()
    alice_bot.save()
    account = alice_bot.exchange_account
    pages = [
        reverse(name, args=args)
        for name, args in [
            ("dashboard", []),
            ("bot_create", []),
            ("bot_detail", [alice_bot.pk]),
            ("bot_edit", [alice_bot.pk]),
            ("exchange_accounts", []),
            ("password_change", []),
        ]
    ]
    for url in pages:
        response = alice_client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        for secret in (SECRET, API_KEY, account.secret_encrypted, account.api_key_encrypted):
            assert secret not in body, url
    assert "Main" in alice_client.get(reverse("bot_detail", args=[alice_bot.pk])).content.decode()


def test_form_with_an_error_does_not_echo_the_secret_back(alice_client):
    response = add_account(alice_client, exchange="no-such-exchange")
    assert response.status_code == 200
    assert "not an exchange TradingAI can trade on" in response.context["form"].errors["exchange"][0]
    page = response.content.decode()
    assert SECRET not in page
    assert API_KEY not in page
    assert not ExchangeAccount.objects.exists()


def test_secret_is_absent_from_every_admin_view(client, alice):
    account = ExchangeAccountFactory(owner=alice, api_key=API_KEY, secret=SECRET)
    admin = UserFactory(email="ops@example.com", is_staff=True, is_superuser=True)
    force_login_verified(client, admin)
    pages = [
        reverse("admin:accounts_exchangeaccount_changelist"),
        reverse("admin:accounts_exchangeaccount_changelist") + "?q=binance",
        reverse("admin:accounts_exchangeaccount_change", args=[account.pk]),
        reverse("admin:accounts_exchangeaccount_history", args=[account.pk]),
        reverse("admin:accounts_exchangeaccount_delete", args=[account.pk]),
        reverse("admin:accounts_user_change", args=[alice.pk]),
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert SECRET not in body, url
        assert API_KEY not in body, url
        assert account.secret_encrypted not in body, url
    assert client.get(reverse("admin:accounts_exchangeaccount_add")).status_code == 403


def test_only_the_owner_can_delete_an_account(client, alice, charlie):
    account = ExchangeAccountFactory(owner=alice)
    client.force_login(charlie)
    assert client.post(reverse("exchange_account_delete", args=[account.pk])).status_code == 404
    assert ExchangeAccount.objects.filter(pk=account.pk).exists()
    assert charlie.pk != alice.pk and "Alice" not in client.get(reverse("exchange_accounts")).content.decode()


def test_an_account_used_by_a_bot_cannot_be_deleted(alice_client, alice_account, alice_bot):
    alice_bot.exchange_account = alice_account
    alice_bot.save()
    response = alice_client.post(reverse("exchange_account_delete", args=[alice_account.pk]), follow=True)
    assert "is used by a bot" in response.content.decode()
    assert ExchangeAccount.objects.filter(pk=alice_account.pk).exists()


def test_rotating_keys_re_encrypts_under_the_new_key(settings, alice):
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    account = ExchangeAccountFactory(owner=alice, api_key=API_KEY, secret=SECRET)
    before = account.secret_encrypted
    new_key = Fernet.generate_key().decode()

    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("rotate_encryption_keys", stdout=open("/dev/null", "w"))  # noqa: SIM115
    account.refresh_from_db()
    assert account.secret_encrypted != before

    settings.FIELD_ENCRYPTION_KEYS = [new_key]  # the old key is gone and the secret still reads
    assert account.credentials().secret == SECRET
    settings.FIELD_ENCRYPTION_KEYS = [old_key]  # and the old key alone no longer does
    with pytest.raises(SecretDecryptionError):
        account.credentials()


def test_rotation_stops_with_a_clear_error_when_a_key_is_missing(settings, alice):
    ExchangeAccountFactory(owner=alice)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="cannot be decrypted with any configured key"):
        call_command("rotate_encryption_keys")
