"""Settings for the test suite: the same database and broker choice as the product (DATABASE_URL,
CELERY_BROKER_URL), fixed keys, fast password hashing."""

import os
import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import CELERY_BROKER_URL, DATABASES, VAR_DIR, env, filesystem_broker_options

SECRET_KEY = "test-secret-key-not-for-production"  # noqa: S105
FIELD_ENCRYPTION_KEYS = ["nRCxNhuiB_ju3SBvztmUxyPqaRaUrG0bLwZ7FNrQQ0U="]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# The stand-ins of Slack, Discord, Telegram and a user's webhook listen here (tests/stand_ins/).
NOTIFICATIONS_LOCAL_HOSTS = ["127.0.0.1"]
NOTIFICATIONS_RETRY_BASE_SECONDS = env.float("TRADINGAI_NOTIFICATIONS_RETRY_BASE_SECONDS", default=0.2)
MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="tradingai-media-"))
STATIC_ROOT = Path(tempfile.mkdtemp(prefix="tradingai-static-"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# A file, not SQLite's in-memory default: the end-to-end tests start real worker and beat processes
# that must open the same test database.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # One file per test run, so that two runs on one checkout do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}

if CELERY_BROKER_URL.startswith("filesystem://"):
    # The worker processes started by the end-to-end tests get this folder through the environment.
    CELERY_BROKER_DIR = Path(
        env.str("CELERY_BROKER_DIR", default="") or tempfile.mkdtemp(prefix="tradingai-broker-")
    )
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options(CELERY_BROKER_DIR)

# tests/api/test_schemathesis.py reads the schema as it is imported, before any user exists; the tests of the
# production default (behind login) turn this off.
API_DOCS_PUBLIC = env.bool("TRADINGAI_API_DOCS_PUBLIC", default=True)
# A model server beside the platform (Ollama on 127.0.0.1; the OpenAI stand-in in tests) may be used.
ALLOW_PRIVATE_MODEL_SERVERS = env.bool("TRADINGAI_ALLOW_PRIVATE_MODEL_SERVERS", default=True)
