"""Sentry (settings.SENTRY_DSN): off without a DSN; with one, an error logged in a cycle reaches the server
named, with its traceback and the cycle's fields as tags, through the Django and Celery integrations."""

import gzip
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sentry_sdk

from tradingai.settings.base import BASE_DIR

# What a worker does: Django set up from the settings, then an unexpected error in a cycle, logged.
SCRIPT = """
import logging
import django
django.setup()
import sentry_sdk
from core.log_context import log_context
print(sorted(sentry_sdk.get_client().integrations))
with log_context(user=3, bot=7, run=11, slot="2026-12-06T07:00:00+00:00"):
    try:
        1 / 0
    except ZeroDivisionError:
        logging.getLogger("automation.steps").exception("cycle of bot 7 failed in decide")
sentry_sdk.flush(timeout=10)
"""


@pytest.fixture
def sentry_stand_in():
    """An HTTP server on 127.0.0.1 that keeps the envelopes posted to it."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            received.append((self.path, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], received
    server.shutdown()
    server.server_close()


def test_sentry_is_off_without_a_dsn():
    assert not sentry_sdk.get_client().is_active()


def test_an_error_logged_in_a_cycle_reaches_sentry_with_its_traceback_and_fields(sentry_stand_in):
    port, received = sentry_stand_in
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tradingai.settings.test",
        "SENTRY_DSN": f"http://publickey@127.0.0.1:{port}/42",
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "'celery'" in result.stdout and "'django'" in result.stdout
    assert [path for path, _ in received] == ["/api/42/envelope/"]
    items = [json.loads(line) for line in received[0][1].splitlines() if line.strip().startswith(b"{")]
    event = next(item for item in items if "exception" in item)
    exception = event["exception"]["values"][-1]
    assert (exception["type"], exception["value"]) == ("ZeroDivisionError", "division by zero")
    assert exception["stacktrace"]["frames"]
    assert event["logentry"]["message"] == "cycle of bot 7 failed in decide"
    assert event["tags"] == {"user": 3, "bot": 7, "run": 11, "slot": "2026-12-06T07:00:00+00:00"}
    assert not any("vars" in frame for frame in exception["stacktrace"]["frames"])  # no local variables
