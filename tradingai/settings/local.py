"""The embedded default: `make run` on a laptop. SQLite, the filesystem broker, console e-mail.

Secrets that production must receive from the environment are generated here once and kept under var/,
so a fresh clone starts with no setup and keeps its encrypted data readable across restarts."""

import secrets

from cryptography.fernet import Fernet

from .base import *  # noqa: F403
from .base import VAR_DIR, env


def _persistent_secret(name: str, make) -> str:
    path = VAR_DIR / name
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(make())
    return path.read_text().strip()


DEBUG = env.bool("DJANGO_DEBUG", default=True)
API_DOCS_PUBLIC = env.bool("TRADINGAI_API_DOCS_PUBLIC", default=True)
METRICS_PUBLIC = env.bool("TRADINGAI_METRICS_PUBLIC", default=True)
# A model server beside the platform (Ollama on 127.0.0.1; the OpenAI stand-in in tests) may be used.
ALLOW_PRIVATE_MODEL_SERVERS = env.bool("TRADINGAI_ALLOW_PRIVATE_MODEL_SERVERS", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=None) or _persistent_secret(
    ".secret_key", lambda: secrets.token_urlsafe(50)
)
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[]) or [
    _persistent_secret(".field_encryption_key", lambda: Fernet.generate_key().decode())
]
