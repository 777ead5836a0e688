"""Which pages the chart capture may open: TradingView's own, over HTTPS, and nothing else.

A URL is read here by the WHATWG URL rules that Chromium follows (the `ada` parser, which Node.js uses), not
by `urllib.parse`: the two disagree on inputs such as `http://127.0.0.1:18999\\@www.tradingview.com/`, where
`urlparse` finds tradingview.com and the browser opens 127.0.0.1 (docs/security.md). On top of the parse,
anything a browser would quietly repair or reinterpret is refused outright rather than trusted to parse the
same way everywhere: backslashes, white space and control characters, user-info, another port."""

from core.outbound import UnsafeServerUrlError, parsed

ALLOWED_DOMAIN = "tradingview.com"


class UnsafeChartUrlError(ValueError):
    """A URL the chart capture will not open; the message says why, in words for the bot's owner."""


def is_tradingview_host(host: str) -> bool:
    return host == ALLOWED_DOMAIN or host.endswith("." + ALLOWED_DOMAIN)


def checked_tradingview_url(url: str) -> str:
    """The URL as the browser will read it (normalised), if it is an HTTPS page of tradingview.com or one of
    its subdomains on the default port; else UnsafeChartUrlError. The parse and its refusals are the ones of
    every URL a user makes the platform open (core/outbound.py `parsed`)."""
    try:
        parts = parsed(url)
    except UnsafeServerUrlError as e:
        raise UnsafeChartUrlError(str(e)) from e
    if parts["protocol"] != "https:":
        raise UnsafeChartUrlError("The URL must start with https://.")
    if parts["port"]:  # ada leaves it empty for the scheme's default, 443
        raise UnsafeChartUrlError("The URL may not name a port.")
    if not is_tradingview_host(parts["hostname"]):
        raise UnsafeChartUrlError("The URL must be a page of tradingview.com.")
    return parts["href"]
