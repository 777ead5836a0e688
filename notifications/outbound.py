"""Every request a notification makes goes through `post`, and every URL a user gives is checked here first:
a webhook URL is user input, and an attack until shown otherwise (a request from our servers to
169.254.169.254, to a database port on 10.0.0.5, to the admin on localhost).

- A URL is read by core/outbound.py's rules, the ones model connections' base URLs are held to: by the
  WHATWG rules (ada), refusing outright what a client might read differently (backslashes, white space,
  control characters, user-info).
- Slack and Discord URLs must lie under their services' webhook bases (settings SLACK_WEBHOOK_BASE,
  DISCORD_WEBHOOK_BASE); Telegram's is built from TELEGRAM_API_BASE. The tests point these at stand-ins.
- A generic webhook is held to core's address policy (`core.outbound.server_url`): HTTPS, on a host whose
  every address is public, checked when it is saved and again before each request, since what a name
  resolves to can change. Notifications' allowance is narrower than model connections': only the hosts
  named in NOTIFICATIONS_LOCAL_HOSTS (the tests' 127.0.0.1; none in production) may be on the operator's
  networks, and use HTTP; link-local (the metadata service) and reserved addresses never.
- Redirects are not followed: a public URL answering 302 to an internal one would undo the check.

What remains: a name that resolves to a public address when checked and to a private one a moment later
(DNS rebinding) could still be reached; docs/security.md says so."""

from dataclasses import dataclass

import ada_url
import requests
from django.conf import settings

from core.outbound import UnsafeServerUrlError, parsed, server_url

# Connect and read timeouts: a receiver that takes longer is retried later rather than holding a worker.
TIMEOUT = (5, 10)
# How much of an answer's body the delivery log keeps.
BODY_KEPT = 300


class DeliveryError(Exception):
    """A notification not delivered. `transient`: worth trying again (5xx, 429, no answer); `retry_after`:
    seconds the receiver asked us to wait, if it said."""

    def __init__(self, message: str, *, status_code: int | None = None, transient: bool, retry_after=None):
        super().__init__(message)
        self.status_code = status_code
        self.transient = transient
        self.retry_after = retry_after


def checked_under(url: str, base: str, service: str) -> str:
    """`url`, normalised, if it is a page under `base` (same scheme, host and port, its path below base's);
    else UnsafeServerUrlError naming the service."""
    parts, base_parts = parsed(url), ada_url.parse_url(base)
    same_origin = all(parts[p] == base_parts[p] for p in ("protocol", "hostname", "port"))
    below = (
        parts["pathname"].startswith(base_parts["pathname"]) and parts["pathname"] != base_parts["pathname"]
    )
    if not (same_origin and below):
        raise UnsafeServerUrlError(f"This is not a {service} webhook URL: it must start with {base}")
    return parts["href"]


def checked_public(url: str) -> str:
    """`url`, normalised, if the platform may call it (core/outbound.py), a query allowed; a host of
    NOTIFICATIONS_LOCAL_HOSTS may be on the operator's networks. Else UnsafeServerUrlError."""
    local = parsed(url)["hostname"].strip("[]") in settings.NOTIFICATIONS_LOCAL_HOSTS
    return server_url(url, allow_private=local, allow_query=True)


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: str


def post(url: str, *, secret: str = "", **kwargs) -> Answer:
    """POST to `url` (already checked by the caller) with `requests`' keyword arguments (json=, data=,
    headers=); raises DeliveryError for anything but a 2xx. `secret` is scrubbed from every error text,
    since a Slack URL or a Telegram token is the credential itself, and requests quotes URLs in its errors."""
    try:
        with requests.Session() as session:
            session.trust_env = (
                False  # no proxy or .netrc from the environment: the URL checked is the one used
            )
            response = session.post(url, timeout=TIMEOUT, allow_redirects=False, **kwargs)
    except requests.Timeout:
        raise DeliveryError("no answer within the timeout", transient=True) from None
    except requests.RequestException as e:
        raise DeliveryError(f"could not connect ({type(e).__name__})", transient=True) from None
    body = _scrubbed(response.text[:BODY_KEPT], secret)
    if 200 <= response.status_code < 300:
        return Answer(response.status_code, body)
    status = response.status_code
    transient = status == 429 or status >= 500
    raise DeliveryError(
        f"HTTP {status}: {body}".strip(),
        status_code=status,
        transient=transient,
        retry_after=retry_after_of(response) if transient else None,
    )


def retry_after_of(response: requests.Response) -> float | None:
    """The wait the receiver asked for: the Retry-After header in seconds (Slack, Discord), else Telegram's
    `parameters.retry_after` and Discord's `retry_after` in a JSON body."""
    header = response.headers.get("Retry-After", "")
    try:
        return max(float(header), 0.0)
    except ValueError:
        pass
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    for value in (body.get("retry_after"), (body.get("parameters") or {}).get("retry_after")):
        if isinstance(value, int | float) and value >= 0:
            return float(value)
    return None


def _scrubbed(text: str, secret: str) -> str:
    return text.replace(secret, "•••") if secret else text
