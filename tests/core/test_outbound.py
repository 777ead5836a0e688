"""Which servers a user may make the platform call (core/outbound.py): the base URL of a user's own model
server. IP literals and localhost resolve without a network; a public host name is given its addresses by a
resolver passed in, since this machine has no DNS."""

import pytest

from core.outbound import UnsafeServerUrlError, server_url

PUBLIC = {"api.openai.com": ["104.18.7.192", "2606:4700::6812:7c0"], "rebound.example": ["127.0.0.1"]}


def resolver(host: str) -> list[str]:
    if host in PUBLIC:
        return PUBLIC[host]
    from core.outbound import resolve

    return resolve(host)


# Refused on a shared server (private networks not allowed): each with the words of its refusal.
INSIDE = {
    "http://127.0.0.1:11434/v1": "private network",
    "https://localhost/v1": "private network",
    "https://10.0.0.5/v1": "private network",
    "https://192.168.1.20:8000/v1": "private network",
    "https://172.16.0.1/v1": "private network",
    "https://100.64.0.7/v1": "private network",  # carrier-grade NAT, Tailscale's
    "https://[::1]/v1": "private network",
    "https://[::ffff:127.0.0.1]/v1": "private network",  # IPv4-mapped IPv6 is the IPv4 address
    "https://[fd00::1]/v1": "private network",
    "https://2130706433/v1": "private network",  # 127.0.0.1 as one number, as a URL parser reads it
    "https://0x7f.1/v1": "private network",
    "https://rebound.example/v1": "private network",  # a name that resolves inside
}
# Refused whatever the operator allows: the cloud's metadata service, and addresses no server is at.
NEVER = {
    "http://169.254.169.254/latest/meta-data/": "not an address this server calls",
    "https://[fe80::1]/v1": "not an address this server calls",
    "https://0.0.0.0/v1": "not an address this server calls",
    "https://224.0.0.1/v1": "not an address this server calls",
    "https://240.0.0.1/v1": "not an address this server calls",
}
# Refused for their form, before any address is looked at.
MALFORMED = {
    "ftp://api.openai.com/v1": "must start with https://",
    "file:///etc/passwd": "must start with https://",
    "api.openai.com/v1": "not a valid URL",
    "https://user:pass@api.openai.com/v1": "user name or password",
    "https://api.openai.com/v1?x=1": "query",
    "https://api.openai.com/v1#x": "fragment",
    "http://127.0.0.1:18999\\@api.openai.com/v1": "backslashes",
    "https://api.openai.com/v1 ": "spaces",
    "https://api.open\tai.com/v1": "spaces",
    "http://api.openai.com/v1": "must start with https://",  # plain http to a public host: the key in clear
    "https://no-such-host.invalid/v1": "cannot be resolved",
}


@pytest.mark.parametrize(("url", "reason"), [*INSIDE.items(), *NEVER.items(), *MALFORMED.items()])
def test_a_shared_server_calls_no_address_inside_and_no_malformed_url(url, reason):
    with pytest.raises(UnsafeServerUrlError, match=reason):
        server_url(url, allow_private=False, resolver=resolver)


@pytest.mark.parametrize("url", INSIDE)
def test_a_self_hoster_may_call_servers_on_their_own_network(url):
    assert server_url(url, allow_private=True, resolver=resolver).startswith(url.split(":")[0] + "://")


@pytest.mark.parametrize(("url", "reason"), NEVER.items())
def test_the_metadata_service_and_unroutable_addresses_are_refused_even_to_a_self_hoster(url, reason):
    with pytest.raises(UnsafeServerUrlError, match=reason):
        server_url(url, allow_private=True, resolver=resolver)


def test_a_public_https_server_is_taken_as_a_client_reads_it():
    assert server_url("https://API.OpenAI.com/v1", allow_private=False, resolver=resolver) == (
        "https://api.openai.com/v1"
    )
    # Plain http is for a server on one's own network only: a key sent to a public one would travel in clear.
    with pytest.raises(UnsafeServerUrlError, match="https://"):
        server_url("http://api.openai.com/v1", allow_private=True, resolver=resolver)
    assert server_url("http://192.168.1.20:11434/v1", allow_private=True) == "http://192.168.1.20:11434/v1"


def test_a_host_is_refused_when_any_of_its_addresses_is_inside():
    split = {"split.example": ["104.18.7.192", "10.1.2.3"]}.get
    with pytest.raises(UnsafeServerUrlError, match=r"split.example \(10.1.2.3\) is on a private network"):
        server_url("https://split.example/v1", allow_private=False, resolver=split)
    assert (
        server_url("https://split.example/v1", allow_private=True, resolver=split)
        == "https://split.example/v1"
    )
