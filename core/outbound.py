"""Which servers a user may make the platform call, for every app that calls a URL a user gave: the base URL
of a user's own model server (accounts' `ModelConnection`) and a signed webhook's URL (notifications'
`Channel`). Such a URL is hostile input: a request the server sends for a user must not reach what only the
server can reach (the cloud's metadata service at 169.254.169.254, a database, an admin port on 127.0.0.1):
server-side request forgery.

The URL is read by the WHATWG rules (`ada_url`), as the TradingView check (automation/charts/urls.py) reads
its URLs, and anything a client might repair or reinterpret is refused outright (`parsed`): backslashes,
white space and control characters, user-info. The host is then resolved, and every address it gives must
be a public one (`server_url`).

Addresses on the operator's own networks (loopback, private ranges, carrier-grade NAT as Tailscale uses,
unique-local IPv6) are taken only where the caller's allowance says so (`allow_private`), and then plain
http too, since a server there (a local Ollama, the tests' stand-ins) serves no TLS. Each app has its own
allowance, because what it calls differs: a model server beside the platform is a self-hoster's normal case
(TRADINGAI_ALLOW_PRIVATE_MODEL_SERVERS, any of the operator's networks), while a webhook on a shared server
has no business inside, so only the hosts the operator names are allowed (NOTIFICATIONS_LOCAL_HOSTS,
notifications/outbound.py). Link-local (the metadata service), multicast, unspecified and reserved addresses
are refused whatever the allowance.

Callers check a URL when it is saved and again before every call: a host name that resolved to a public
address when it was saved may point inside later (DNS rebinding). What remains is the moment between that
lookup and the client's own: docs/security.md says so."""

import ipaddress
import re
import socket
from collections.abc import Callable

import ada_url

# Clients drop tabs and newlines anywhere in a URL and trim control characters and spaces at its ends, and a
# backslash is a slash to some parsers and not to others: a URL a user gives never needs them.
FORBIDDEN = re.compile(r"[\\\x00-\x20\x7f]")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], list[str]]
HTTPS_ONLY = "The URL must start with https://."


class UnsafeServerUrlError(ValueError):
    """A URL the platform will not call; the message says why, in words for the user."""


def resolve(host: str) -> list[str]:
    """Every address `host` resolves to (an IP literal resolves to itself)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as e:  # socket.gaierror is an OSError
        raise UnsafeServerUrlError(f"The host {host} cannot be resolved from this server.") from e
    return sorted({info[4][0] for info in infos})


def is_private_network(address: Address) -> bool:
    """An address of the operator's own networks, reachable only from inside: loopback, the private ranges,
    unique-local IPv6, carrier-grade NAT. Not link-local: the cloud's metadata service lives there."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback:  # before is_reserved, which ::1 is too (::/8)
        return True
    if address.is_link_local or address.is_multicast or address.is_unspecified or address.is_reserved:
        return False
    return not address.is_global


def address_refusal(address: Address, allow_private: bool) -> str:
    """Why the platform will not call `address`, or ""."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if address.is_global and not address.is_multicast:
        return ""
    if is_private_network(address):
        return "" if allow_private else "is on a private network, which this server does not call"
    return "is not an address this server calls"


def parsed(url: str) -> dict:
    """`url`'s parts as a client will read them (ada's `parse_url`), if nothing in it could be read two ways
    and it names no user; else UnsafeServerUrlError. Its scheme and host are the caller's to judge."""
    if FORBIDDEN.search(url):
        raise UnsafeServerUrlError("The URL may not contain spaces, backslashes or control characters.")
    try:
        parts = ada_url.parse_url(url)
    except ValueError as e:
        raise UnsafeServerUrlError("This is not a valid URL.") from e
    if parts["username"] or parts["password"]:
        raise UnsafeServerUrlError("The URL may not contain a user name or password.")
    return parts


def server_url(
    url: str, *, allow_private: bool, allow_query: bool = False, resolver: Resolver = resolve
) -> str:
    """`url` as a client will read it (normalised), if it is an https URL of a server the platform may call
    now (its host resolved again, each address checked); else UnsafeServerUrlError. http:// only for a
    server on a private network, where allowed. A query or a fragment only where `allow_query` (a webhook's
    URL may carry one; a base URL, which a client appends paths to, may not)."""
    parts = parsed(url)
    scheme = parts["protocol"]
    if scheme not in ("https:", "http:"):
        raise UnsafeServerUrlError(HTTPS_ONLY)
    if not allow_query and (parts["search"] or parts["hash"]):
        raise UnsafeServerUrlError("The URL may not contain a query (?) or a fragment (#).")
    host = parts["hostname"].strip("[]")  # an IPv6 literal as a URL writes it
    try:
        addresses = _addresses(host, resolver)
    except UnsafeServerUrlError:
        if scheme == "http:" and not allow_private:  # wrong whatever the host turns out to be
            raise UnsafeServerUrlError(HTTPS_ONLY) from None
        raise
    # What is wrong with an address is said before the scheme: https would not mend it.
    for text, address in addresses:
        if why := address_refusal(address, allow_private):
            shown = host if host == text else f"{host} ({text})"
            raise UnsafeServerUrlError(f"The host {shown} {why}.")
    if scheme == "http:" and not all(is_private_network(address) for _, address in addresses):
        if allow_private:
            raise UnsafeServerUrlError(
                "The URL must start with https:// (http:// only for a server on your network)."
            )
        raise UnsafeServerUrlError(HTTPS_ONLY)
    return parts["href"]


def _addresses(host: str, resolver: Resolver) -> list[tuple[str, Address]]:
    # A scope id (fe80::1%eth0) is no part of the address.
    return [(text, ipaddress.ip_address(text.split("%", 1)[0])) for text in resolver(host)]
