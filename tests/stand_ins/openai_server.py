"""A local OpenAI-compatible server for tests: real HTTP on 127.0.0.1, so the official SDK runs unchanged
(serialisation, status handling, retries, timeouts). It answers `POST /v1/chat/completions` from a
scripted queue, one reply per request, and keeps every request it received for the test to inspect.

    openai_stand_in.add_content('{"summary": ...}')     # a chat.completion whose content is this string
    openai_stand_in.add_refusal("I can't help with that.")
    openai_stand_in.add_error(429)                       # an OpenAI-shaped error body with this status
    openai_stand_in.add_delay(5, '{"summary": ...}')     # the same, sent only after 5 seconds
    openai_stand_in.answer_with(reply_for)               # past the script: reply_for(request body) each time
"""

import contextlib
import itertools
import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import pytest

from tests.stand_ins.serving import StandInServer

COMPLETIONS_PATH = "/v1/chat/completions"
# The API answers with the dated snapshot of the model asked for; a suffix keeps the two apart in tests.
SNAPSHOT_SUFFIX = "-2024-07-18"
# The SDK ignores `Retry-After: 0` (it honours only positive waits) and falls back to 0.5 s, 1 s, ...
# backoff. `retry-after-ms`, which it reads first, makes each retry wait 10 ms and keeps the tests fast.
FAST_RETRY_HEADERS = {"Retry-After": "0", "retry-after-ms": "10"}
# (type, code) of the real API's error bodies, so the SDK's exceptions carry the codes it would in production.
ERROR_CODES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


@dataclass(frozen=True)
class Reply:
    status: int = 200
    # A full response body, or None for a chat.completion built around `content` / `refusal`.
    body: dict | None = None
    content: str | None = None
    refusal: str | None = None
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive, as the real API: the SDK's connection pool reuses connections between retries.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm the second waits for the client's delayed
    # ACK, 40 ms a request on Linux.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        stand_in = self.server.stand_in
        if self.path != COMPLETIONS_PATH:
            self._send(404, _error_body(404, f"Unknown path {self.path}"), {})
            return
        body = json.loads(raw)
        reply = stand_in.receive(
            ReceivedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        # Woken early by stop(), so a test that ends while a reply is held back does not wait for it.
        if reply.delay and stand_in.stopping.wait(reply.delay):
            self.close_connection = True
            return
        if reply.body is not None:
            payload = reply.body
        elif reply.status == 200:
            payload = stand_in.completion(body["model"], reply)
        else:
            payload = _error_body(reply.status, f"Scripted {reply.status}")
        # The client may have given up first (its timeout): exactly what a delayed reply is for.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._send(reply.status, payload, reply.headers)

    def _send(self, status: int, payload: dict, headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request on stderr would bury the test output


def _error_body(status: int, message: str) -> dict:
    kind, code = ERROR_CODES.get(status, ("invalid_request_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class OpenAIStandIn(StandInServer):
    def __init__(self) -> None:
        super().__init__(_Handler)
        self._replies: deque[Reply] = deque()
        self._answer: Callable[[dict], Reply] | None = None
        self._ids = itertools.count(1)
        self.requests: list[ReceivedRequest] = []

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    # --- scripting ------------------------------------------------------------------------------------------
    def add(self, reply: Reply) -> None:
        with self._lock:
            self._replies.append(reply)

    def add_content(
        self,
        content: str,
        *,
        prompt_tokens: int = 1000,
        completion_tokens: int = 200,
        finish_reason: str = "stop",
    ) -> None:
        self.add(
            Reply(
                content=content,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                finish_reason=finish_reason,
            )
        )

    def add_refusal(self, refusal: str) -> None:
        self.add(Reply(refusal=refusal, prompt_tokens=1000, completion_tokens=10))

    def add_error(
        self, status: int, *, message: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        """An OpenAI-shaped error. On 429 and 5xx the SDK is told to retry at once, unless `headers` say
        otherwise."""
        if headers is None:
            headers = FAST_RETRY_HEADERS if status == 429 or status >= 500 else {}
        self.add(
            Reply(status=status, body=_error_body(status, message or f"Scripted {status}"), headers=headers)
        )

    def add_delay(self, seconds: float, content: str) -> None:
        """A completion with `content`, sent only after `seconds`: longer than the client's timeout, it
        is never read."""
        self.add(Reply(content=content, delay=seconds))

    def answer_with(self, answer: Callable[[dict], Reply]) -> None:
        """Once the scripted replies are spent, each request is answered by `answer(its body)`: a stand-in
        that answers the same request the same way, however many come and in whatever order."""
        self._answer = answer

    # --- serving --------------------------------------------------------------------------------------------
    def receive(self, request: ReceivedRequest) -> Reply:
        """Record the request and take the next scripted reply. An exhausted script answers 400 with code
        "stand_in_exhausted" and no retry, so a test that scripted too few replies fails saying so."""
        with self._lock:
            self.requests.append(request)
            if self._replies:
                return self._replies.popleft()
            if self._answer is not None:
                return self._answer(request.body)
        body = _error_body(400, "The stand-in has no scripted reply left")
        body["error"]["code"] = "stand_in_exhausted"
        return Reply(status=400, body=body, headers={"x-should-retry": "false"})

    def completion(self, model: str, reply: Reply) -> dict:
        return {
            "id": f"chatcmpl-standin{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model + SNAPSHOT_SUFFIX,
            "system_fingerprint": "fp_standin",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": reply.content,
                        "refusal": reply.refusal,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
                "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            },
        }


@pytest.fixture
def openai_stand_in() -> Iterator[OpenAIStandIn]:
    """A running stand-in; point a client at `openai_stand_in.base_url` (http://127.0.0.1:PORT/v1)."""
    stand_in = OpenAIStandIn().start()
    yield stand_in
    stand_in.stop()
