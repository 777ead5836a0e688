"""Which servers a user may make the platform call: the base URL of a user's own model server (accounts'
`ModelConnection`) is hostile input, and a request the server sends for a user must not reach what only
the server can reach (the cloud's metadata service at 169.254.169.254, a database, an admin port on
127.0.0.1): server-side request forgery.

The URL is read by the WHATWG rules (`ada_url`), as the TradingView check (automation/charts/urls.py) reads
its URLs, and anything a client might repair or reinterpret is refused outright: backslashes, white space
and control characters, user-info, a query or a fragment. The host is then resolved, and every address it
gives must be a public one. Addresses on the operator's own networks (loopback, private ranges, carrier-grade
NAT as Tailscale uses) are taken only where the operator allows them (TRADINGAI_ALLOW_PRIVATE_MODEL_SERVERS,
for self-hosters whose model server runs beside the platform), and then plain http too, since a local
Ollama or vLLM serves no TLS. Link-local (the metadata service), multicast, unspecified and reserved
addresses are refused whatever the setting.

A host name is resolved again before every call (`refusal_for`): one that resolved to a public address when
it was saved may point inside later (DNS rebinding). What remains is the moment between that lookup and the
client's own: docs/security.md says so."""

import ipaddress
import re
import socket
from collections.abc import Callable

import ada_url

FORBIDDEN = re.compile(r"[\\\x00-\x20\x7f]")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], list[str]]


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


def server_url(url: str, *, allow_private: bool, resolver: Resolver = resolve) -> str:
    """`url` as a client will read it (normalised), if it is an http(s) URL of a server the platform may
    call; else UnsafeServerUrlError. http:// only for a server on a private network, where allowed."""
    if FORBIDDEN.search(url):
        raise UnsafeServerUrlError("The URL may not contain spaces, backslashes or control characters.")
    try:
        parts = ada_url.parse_url(url)
    except ValueError as e:
        raise UnsafeServerUrlError("This is not a valid URL.") from e
    if parts["protocol"] not in ("https:", "http:"):
        raise UnsafeServerUrlError("The URL must start with https://.")
    if parts["username"] or parts["password"]:
        raise UnsafeServerUrlError("The URL may not contain a user name or password.")
    if parts["search"] or parts["hash"]:
        raise UnsafeServerUrlError("The URL may not contain a query (?) or a fragment (#).")
    refusal = refusal_for(parts["hostname"], allow_private=allow_private, resolver=resolver)
    if refusal:
        raise UnsafeServerUrlError(refusal)
    if parts["protocol"] == "http:" and not _all_private(parts["hostname"], resolver):
        raise UnsafeServerUrlError(
            "The URL must start with https:// (http:// only for a server on your network)."
        )
    return parts["href"]


def refusal_for(host: str, *, allow_private: bool, resolver: Resolver = resolve) -> str:
    """Why the platform will not call `host` now, or "": each address it resolves to is checked."""
    host = host.strip("[]")  # an IPv6 literal as a URL writes it
    try:
        addresses = resolver(host)
    except UnsafeServerUrlError as e:
        return str(e)
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # a scope id (fe80::1%eth0) is no part of it
        if why := address_refusal(address, allow_private):
            shown = host if host == text else f"{host} ({text})"
            return f"The host {shown} {why}."
    return ""


def _all_private(host: str, resolver: Resolver) -> bool:
    addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolver(host.strip("[]"))]
    return all(is_private_network(a) for a in addresses)
