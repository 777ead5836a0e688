"""What the sign-in lockout (django-axes, accounts.lockout) costs a sign-in: POST /accounts/login/ through the
whole middleware stack (Django's test client, in this process) on a throwaway PostgreSQL database, with the
lockout on and with it off (AXES_ENABLED), in alternating rounds of the same run so that both see the same
machine. A right password (the lockout checks the pair, logs the access and clears the pair's failures) and a
wrong one (it records the failure and counts the pair's and the address's). The password hash is the same
work both ways and would drown the difference (PBKDF2 takes hundreds of milliseconds on purpose), so the
users here have MD5 hashes; what is left is the lockout's own cost. Target (docs/security.md): at most 5 ms
more.

Run: .venv/bin/python -m bench.bench_signin (or `make bench`).
Needs PostgreSQL (trust auth, user postgres) on 127.0.0.1; creates and drops the database
tradingai_bench_signin."""

import itertools
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from .common import (
    close_database,
    database_url,
    drop_database,
    in_own_process,
    machine_state,
    ms,
    setup_django,
)

DB_NAME = "tradingai_bench_signin"
ROUNDS = 10  # alternating rounds of each mode
PER_ROUND = 40  # sign-ins per round
WARM_UPS = 20
TARGET_EXTRA = 0.005  # seconds the lockout may add to a sign-in, from the issue
PASSWORD = "bench password 7731"


ADDRESSES = (f"10.{n // 62500}.{n // 250 % 250}.{n % 250 + 1}" for n in itertools.count())


def sign_ins(client_class, right: bool, count: int) -> list[float]:
    """Seconds of each of `count` sign-ins, each from an address of its own: wrong passwords then never bring
    a pair or an address to its limit, where it would be refused before its password is checked (cheaper,
    and not what is measured)."""
    samples = []
    for n in range(count):
        client = client_class(REMOTE_ADDR=next(ADDRESSES))
        data = {"username": f"user{n % 50}@example.com", "password": PASSWORD if right else "wrong guess"}
        started = time.perf_counter()
        response = client.post("/accounts/login/", data)
        samples.append(time.perf_counter() - started)
        assert response.status_code == (302 if right else 200), (response.status_code, right)
    return samples


def measure() -> None:
    from django.test import Client, override_settings

    from accounts.models import User

    fast_hash = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The sign-in page's links to static files, without collectstatic's manifest.
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(PASSWORD_HASHERS=fast_hash, STORAGES=storages):
        for n in range(50):
            User.objects.create_user(f"user{n}@example.com", PASSWORD)
        for right in (True, False):
            samples = {True: [], False: []}
            for lockout in (True, False):
                with override_settings(AXES_ENABLED=lockout):
                    sign_ins(Client, right, WARM_UPS)
            for round_ in range(ROUNDS):
                for lockout in (True, False) if round_ % 2 else (False, True):
                    with override_settings(AXES_ENABLED=lockout):
                        samples[lockout] += sign_ins(Client, right, PER_ROUND)
            report(right, samples)


def report(right: bool, samples: dict[bool, list[float]]) -> None:
    on, off = statistics.median(samples[True]), statistics.median(samples[False])
    extra = on - off
    kind = "right password" if right else "wrong password"
    verdict = "meets" if extra <= TARGET_EXTRA else "MISSES"
    print(
        f"sign-in, {kind}: p50 {ms(on)} with the lockout, {ms(off)} without (n={len(samples[True])} each): "
        f"{ms(extra)} more ({extra / TARGET_EXTRA:.2f} of the {ms(TARGET_EXTRA)} target: {verdict} it)"
    )


def main() -> None:
    if in_own_process("bench.bench_signin"):
        return
    tmp = Path(tempfile.mkdtemp(prefix="tradingai-bench-signin-"))
    env = {
        "DJANGO_SETTINGS_MODULE": "tradingai.settings.local",
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "DATABASE_URL": database_url(DB_NAME),
        "TRADINGAI_VAR_DIR": str(tmp / "var"),
        "LOG_LEVEL": "WARNING",
    }
    try:
        print(machine_state())
        setup_django(DB_NAME, env)
        measure()
    finally:
        close_database()
        drop_database(DB_NAME)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
