"""deploy/Procfile, the production process file, starts the product: gunicorn with deploy/gunicorn.conf.py
answering over HTTP, a worker per queue and beat, all on the production settings, and the workers run a
cycle. Started as an operator would (honcho), on the test database and broker; every process is ended."""

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.core import signing
from django.core.management import call_command

from automation.models import Bot, CycleRun
from automation.run_now import bot_run_now
from automation.services import bot_start
from tests.automation.test_celery_worker import celery_env, wait_for
from tests.faults.test_process_faults import children_of, free_port
from tradingai.settings.base import BASE_DIR

__all__ = ["celery_env"]


def get(url: str, **headers) -> tuple[int, dict, bytes]:
    """Status, headers and body, without following a redirect."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        # S310: the URLs are the test's own, http://127.0.0.1.
        with opener.open(urllib.request.Request(url, headers=headers), timeout=5) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def answers_200(url: str) -> bool:
    try:
        return get(url)[0] == 200
    except OSError:
        return False


@pytest.fixture
def production(celery_env, tmp_path):
    """Starts `honcho -f deploy/Procfile start` with the production settings' required environment; yields
    the web's address and the log; ends honcho and every process it started, whatever the test did."""
    port = free_port()
    env = {
        **celery_env,
        "DJANGO_SECRET_KEY": "production-layout-test-" + "k" * 40,
        "FIELD_ENCRYPTION_KEYS": settings.FIELD_ENCRYPTION_KEYS[0],
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_ENV_FILE": str(tmp_path / "no.env"),
        "TRADINGAI_VAR_DIR": str(tmp_path / "var"),
        "TRADINGAI_BIND": f"127.0.0.1:{port}",
        "TRADINGAI_WEB_WORKERS": "1",
        "TRADINGAI_IO_CONCURRENCY": "2",
        "LOG_FORMAT": "json",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    # The process file itself must choose the production settings.
    del env["DJANGO_SETTINGS_MODULE"]
    log_path = tmp_path / "honcho.log"
    with log_path.open("w") as log:
        honcho = subprocess.Popen(
            [Path(sys.executable).parent / "honcho", "-f", "deploy/Procfile", "start"],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    # honcho starts each process in a session of its own, so each is ended by its id, with its children.
    started: set[int] = set()

    def note_children() -> bool:
        if honcho.poll() is None:
            started.update(children_of(honcho.pid))
        return len(started) >= 4

    try:
        wait_for(note_children, 30)
        yield f"http://127.0.0.1:{port}", log_path
    finally:
        note_children()
        honcho.send_signal(signal.SIGTERM)  # honcho stops them all, as on Ctrl-C
        with contextlib.suppress(subprocess.TimeoutExpired):
            honcho.wait(timeout=40)
        for pid in [honcho.pid, *started]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        honcho.wait(timeout=10)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_production_process_file_serves_and_its_workers_run_a_cycle(production):
    url, log_path = production
    call_command("seed_demo", stdout=io.StringIO())
    bot = Bot.objects.get()
    bot_start(bot)

    # Up as a whole: the database, the broker, beat's tick and a heartbeat taken by each queue's worker.
    assert wait_for(lambda: answers_200(f"{url}/healthz"), 90), log_path.read_text()
    status, _, body = get(f"{url}/healthz")
    assert json.loads(body)["down"] == []

    # The production settings, not the local ones: plain HTTP is sent to HTTPS, and what the proxy marks
    # as HTTPS is served.
    status, headers, _ = get(f"{url}/accounts/login/")
    assert (status, headers["Location"]) == (
        301,
        f"https://127.0.0.1:{url.rsplit(':', 1)[1]}/accounts/login/",
    )
    status, headers, _ = get(f"{url}/healthz", **{"X-Forwarded-Proto": "https"})
    assert status == 200

    slot = bot_run_now(bot)
    assert wait_for(
        lambda: CycleRun.objects.filter(bot=bot, status__in=["SUCCEEDED", "FAILED"]).exists(), 120
    ), log_path.read_text()
    run = CycleRun.objects.get(bot=bot)
    assert (run.status, run.slot.isoformat()) == ("SUCCEEDED", slot), run.error

    # gunicorn's access log, in the product's JSON format, on standard output.
    output = log_path.read_text()
    web = [m.group(1) for m in re.finditer(r"^\S+ web\.1\s+\| (.*)$", output, re.MULTILINE)]
    access = [json.loads(line) for line in web if '"gunicorn.access"' in line]
    login = {"method": "GET", "path": "/accounts/login/", "status": "301", "level": "INFO"}
    assert any(login.items() <= line.items() for line in access), web
    # Each queue's worker, under its own name, and one beat.
    for ready in (r"^\S+ worker\.1 .*default@\S+ ready", r"^\S+ io\.1 .*io@\S+ ready", r"^\S+ beat\.1 "):
        assert re.search(ready, output, re.MULTILINE), output


@pytest.mark.parametrize("fallbacks, verified", [("old-key-" + "o" * 42, True), ("", False)])
def test_a_rotated_secret_key_still_verifies_what_the_old_one_signed_while_it_is_a_fallback(
    fallbacks, verified
):
    """What the old key signed (a session, a password-reset link) stays valid while the old key is in
    DJANGO_SECRET_KEY_FALLBACKS, and not once it is removed."""
    signed = signing.dumps("alice", key="old-key-" + "o" * 42)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tradingai.settings.production",
        "DJANGO_SECRET_KEY": "new-key-" + "n" * 42,
        "DJANGO_SECRET_KEY_FALLBACKS": fallbacks,
        "FIELD_ENCRYPTION_KEYS": settings.FIELD_ENCRYPTION_KEYS[0],
        "DJANGO_ALLOWED_HOSTS": "tradingai.example.com",
        "DJANGO_ENV_FILE": "/nonexistent/.env",
    }
    read = f"import django; django.setup(); from django.core import signing; print(signing.loads({signed!r}))"
    result = subprocess.run(
        [sys.executable, "-c", read], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    if verified:
        assert (result.returncode, result.stdout) == (0, "alice\n"), result.stderr
    else:
        assert result.returncode != 0
        assert "BadSignature" in result.stderr
