"""A local stand-in for the services notifications are sent to, real HTTP on 127.0.0.1, answering as each
does (their documented answers):

- Slack incoming webhooks, `POST /services/T…/B…/…` with `{"text"}`: `200 ok`; a bad body `400
  invalid_payload`; rate limited `429` with `Retry-After`;
- Discord webhooks, `POST /api/webhooks/<id>/<token>` with `{"content"}`: `204`; rate limited `429` with
  `Retry-After` and `{"message", "retry_after", "global"}`;
- Telegram's Bot API, `POST /bot<token>/sendMessage` with `{"chat_id", "text"}`: `{"ok": true, "result":
  {...}}`; errors `{"ok": false, "error_code", "description"}`, a 429 with `parameters.retry_after`;
- a user's signed webhook, any other path: `200`.

Each request is recorded (path, headers, raw body). A test scripts the next answers of a path prefix:

    stand_in.fail("/services/", 429, retry_after=1)   # the next request there is answered 429
    stand_in.fail("/hook", 500)
"""

import contextlib
import json
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

import pytest

from tests.stand_ins.serving import StandInServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self):
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        stand_in = self.server.stand_in
        stand_in.record(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        scripted = stand_in.next_failure(self.path)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            if self.path.startswith("/services/"):
                self._slack(body, scripted)
            elif self.path.startswith("/api/webhooks/"):
                self._discord(body, scripted)
            elif self.path.startswith("/bot") and self.path.endswith("/sendMessage"):
                self._telegram(body, scripted)
            elif scripted:
                self._send(scripted[0], b"scripted failure", "text/plain", scripted[1])
            else:
                self._send(200, b'{"received":true}', "application/json")

    def _slack(self, body, scripted):
        if scripted:
            self._send(
                scripted[0],
                b"rate_limited" if scripted[0] == 429 else b"no_service",
                "text/plain",
                scripted[1],
            )
        elif not isinstance(_json(body), dict) or not _json(body).get("text"):
            self._send(400, b"invalid_payload", "text/plain")
        else:
            self._send(200, b"ok", "text/plain")

    def _discord(self, body, scripted):
        if scripted:
            status, retry_after = scripted
            payload = {
                "message": "You are being rate limited.",
                "retry_after": retry_after or 0,
                "global": False,
            }
            if status != 429:
                payload = {"message": "Unknown Webhook", "code": 10015}
            self._send(status, json.dumps(payload).encode(), "application/json", retry_after)
        elif not isinstance(_json(body), dict) or not _json(body).get("content"):
            self._send(400, b'{"message": "Cannot send an empty message", "code": 50006}', "application/json")
        else:
            self._send(204, b"", None)

    def _telegram(self, body, scripted):
        message = _json(body)
        if scripted:
            status, retry_after = scripted
            payload = {"ok": False, "error_code": status, "description": "Bad Request: chat not found"}
            if status == 429:
                payload = {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {retry_after}",
                    "parameters": {"retry_after": retry_after},
                }
            self._send(status, json.dumps(payload).encode(), "application/json")
        elif not isinstance(message, dict) or not message.get("chat_id") or not message.get("text"):
            payload = {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
            self._send(400, json.dumps(payload).encode(), "application/json")
        else:
            result = {"message_id": 1, "chat": {"id": message["chat_id"]}, "date": 0, "text": message["text"]}
            self._send(200, json.dumps({"ok": True, "result": result}).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str | None, retry_after=None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _json(body: bytes):
    try:
        return json.loads(body)
    except ValueError:
        return None


class NotifyStandIn(StandInServer):
    def __init__(self) -> None:
        super().__init__(_Handler)
        self._failures: dict[str, deque] = defaultdict(deque)
        self.requests: list[Received] = []

    @property
    def base_url(self) -> str:
        return self.origin

    def fail(self, prefix: str, status: int, *, retry_after: float | None = None, times: int = 1) -> None:
        with self._lock:
            self._failures[prefix].extend([(status, retry_after)] * times)

    def next_failure(self, path: str):
        with self._lock:
            for prefix, queue in self._failures.items():
                if path.startswith(prefix) and queue:
                    return queue.popleft()
        return None

    def record(self, received: Received) -> None:
        with self._lock:
            self.requests.append(received)

    def to(self, prefix: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(prefix)]


@pytest.fixture
def notify_stand_in(settings):
    """The stand-in, with Slack's, Discord's and Telegram's bases pointed at it."""
    stand_in = NotifyStandIn().start()
    settings.SLACK_WEBHOOK_BASE = f"{stand_in.base_url}/services/"
    settings.DISCORD_WEBHOOK_BASE = f"{stand_in.base_url}/api/webhooks/"
    settings.TELEGRAM_API_BASE = stand_in.base_url
    yield stand_in
    stand_in.stop()
