"""Encryption at rest for exchange credentials (Fernet: AES-128-CBC with an HMAC, from `cryptography`).

FIELD_ENCRYPTION_KEYS lists keys newest first: the first encrypts, any of them decrypts, so rotating is
"prepend the new key, re-encrypt, drop the old one" without a moment where stored secrets are unreadable."""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretDecryptionError(Exception):
    """A stored secret cannot be read with any configured key (a key was removed too early)."""


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty: set at least one Fernet key.")
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except ValueError as e:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS holds a value that is not a Fernet key.") from e


def _current() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plain: str) -> str:
    return _current().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError("stored secret cannot be decrypted with the configured keys") from None


def rotate(token: str) -> str:
    """The same secret re-encrypted under the first key."""
    try:
        return _current().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError("stored secret cannot be decrypted with the configured keys") from None


def generate_key() -> str:
    return Fernet.generate_key().decode()
