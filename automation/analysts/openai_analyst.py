"""The OpenAI analyst: the chart image and its numbers sent to a vision model through the official SDK, the
answer held to the `Analysis` schema by structured outputs (strict JSON schema) and parsed by the SDK.

Every SDK error is translated here, at the boundary, into "try again later" (AnalystTemporaryError) or
"this answer cannot be used" / "needs a human". Retries are the SDK's own (`max_retries`, exponential
backoff that honours Retry-After): by the time an error reaches this module they have been spent, so
there is no second retry loop here."""

import base64
import functools
import hashlib
from collections.abc import Callable

import openai
import pydantic
from django.conf import settings

from learning.prompt import SYSTEM

from .base import (
    OPERATOR,
    AnalysisRequest,
    AnalystConfigurationError,
    AnalystInvalidOutputError,
    AnalystRefusedError,
    AnalystResult,
    AnalystTemporaryError,
    billed_to_connection,
)
from .pricing import Price, default_price
from .prompt import build_prompt
from .schema import Analysis
from .text import storable_text

# The same request may succeed later: the network, a timeout, a rate limit, a server error, or a 409 (the
# SDK retries it as a lock timeout). APITimeoutError is an APIConnectionError; it is named for the reader.
TEMPORARY_ERRORS = (
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.RateLimitError,
    openai.InternalServerError,
    openai.ConflictError,
)
# The model answered, but not with an Analysis: cut off at the token limit, not JSON, or against the
# schema. pydantic reports both "not JSON" and "wrong shape" as a ValidationError.
INVALID_OUTPUT_ERRORS = (openai.LengthFinishReasonError, pydantic.ValidationError)


def _describe(error: Exception) -> str:
    """What went wrong, without the API's message: OpenAI's 401 message quotes the key it was sent. The
    status, the error code ("invalid_api_key", "model_not_found") and the request id are safe to keep."""
    if isinstance(error, pydantic.ValidationError):
        # Which fields broke the schema and how, without the (long) answer itself.
        return "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}"
            for e in error.errors(include_input=False)
        )
    if not isinstance(error, openai.APIStatusError):
        return type(error).__name__
    parts = [f"HTTP {error.status_code}"]
    if error.code:
        parts.append(error.code)
    if error.request_id:
        parts.append(f"request {error.request_id}")
    return " ".join(parts)


@functools.lru_cache(maxsize=256)
def _shared_client(
    api_key: str, base_url: str | None, timeout: float, max_retries: int, follow_redirects: bool = True
) -> openai.OpenAI:
    # One client per process and configuration: building one loads the system's CA certificates (about
    # 50 ms of CPU, a third of a cycle's), and the client is thread-safe, with a connection pool to reuse.
    # Bounded, since users' own keys make configurations without number; one dropped is rebuilt when needed.
    http_client = None if follow_redirects else openai.DefaultHttpxClient(follow_redirects=False)
    return openai.OpenAI(
        api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries, http_client=http_client
    )


def connection_client(api_key: str, base_url: str) -> openai.OpenAI:
    """A client for a user's own model server. It follows no redirect: the server's address was checked
    (core/outbound.py), the address a redirect names was not. A server that needs no key still gets one
    from the SDK, which insists: a placeholder that reveals nothing."""
    return _shared_client(
        api_key or "no-key",
        base_url,
        settings.OPENAI_TIMEOUT_SECONDS,
        settings.OPENAI_MAX_RETRIES,
        follow_redirects=False,
    )


class OpenAIAnalyst:
    """The operator's analyst by default; with `connection_id`, a user's own model server (its client,
    model and price given by automation.analysts.service.analyst_for). `check`, when given, is asked just
    before each call and answers why the server may not be called now ("" when it may)."""

    name = "openai"

    def __init__(
        self,
        client: openai.OpenAI | None = None,
        model: str | None = None,
        *,
        price: Price | None = None,
        connection_id: int | None = None,
        check: Callable[[], str] | None = None,
    ):
        if client is None:
            if not settings.OPENAI_API_KEY:
                raise AnalystConfigurationError("the OpenAI analyst needs OPENAI_API_KEY to be set")
            client = _shared_client(
                settings.OPENAI_API_KEY,
                settings.OPENAI_BASE_URL,
                settings.OPENAI_TIMEOUT_SECONDS,
                settings.OPENAI_MAX_RETRIES,
            )
        self.client = client
        self.model = model or settings.OPENAI_MODEL
        self.price = price or default_price()
        self.connection_id = connection_id
        self.billed_to = OPERATOR if connection_id is None else billed_to_connection(connection_id)
        self.check = check

    def request_parts(self, request: AnalysisRequest) -> list[str]:
        """What decides the answer to `request` and who pays for it: identical parts, one call
        (asked_once.request_key). The image by its digest, the rest as sent."""
        image = hashlib.sha256(request.chart_png).hexdigest()
        return [self.billed_to, str(self.client.base_url), self.model, SYSTEM, build_prompt(request), image]

    def analyse(self, request: AnalysisRequest) -> AnalystResult:
        if self.check and (refusal := self.check()):
            raise AnalystConfigurationError(refusal)
        prompt = build_prompt(request)
        chart_url = "data:image/png;base64," + base64.b64encode(request.chart_png).decode("ascii")
        try:
            completion = self.client.chat.completions.parse(
                model=self.model,
                messages=[
                    {"role": "system", "content": SYSTEM},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": prompt},
                            {"type": "image_url", "image_url": {"url": chart_url}},
                        ],
                    },
                ],
                response_format=Analysis,
            )
        except TEMPORARY_ERRORS as e:
            raise AnalystTemporaryError(f"OpenAI did not answer ({_describe(e)})") from e
        except openai.APIStatusError as e:
            # Any other status is the API rejecting the request itself: a bad or revoked key (401), a key
            # without access to the model (403), an unknown model (404), a request it will not accept (400,
            # 422). Sending it again cannot help; a human must look.
            raise AnalystConfigurationError(
                f"OpenAI rejected the request for model {self.model!r} ({_describe(e)})"
            ) from e
        except INVALID_OUTPUT_ERRORS as e:
            raise AnalystInvalidOutputError(f"OpenAI's answer is not an Analysis ({_describe(e)})") from e
        except openai.ContentFilterFinishReasonError as e:
            # A refusal, not a malformed answer: the provider declined to produce this content, and the same
            # chart and prompt would be declined again.
            raise AnalystRefusedError("OpenAI's content filter stopped the answer") from e

        if not completion.choices:
            raise AnalystInvalidOutputError("OpenAI answered with no choices")
        message = completion.choices[0].message
        if message.refusal:
            # Kept on the run's error, a text column: the model's words made storable like its answers'.
            raise AnalystRefusedError(f"the model refused: {storable_text(message.refusal)}")
        if message.parsed is None:
            # No refusal and nothing parsed: the answer had no content at all.
            raise AnalystInvalidOutputError("OpenAI's answer has no content")

        usage = completion.usage
        prompt_tokens = usage.prompt_tokens if usage else 0
        completion_tokens = usage.completion_tokens if usage else 0
        return AnalystResult(
            analysis=message.parsed,
            analyst=self.name,
            model_name=completion.model,
            prompt=prompt,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=self.price.cost(prompt_tokens, completion_tokens),
            connection_id=self.connection_id,
        )
