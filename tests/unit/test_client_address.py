"""The client of a request behind trusted proxies: X-Forwarded-For read from the right."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from provisiond.web.client_address import ClientAddresses, parse_address

LB = ClientAddresses([ip_network("10.0.0.0/8"), ip_network("127.0.0.1/32"), ip_network("fd00::/8")])
NONE = ClientAddresses([])


@pytest.mark.parametrize(
    ("peer", "headers", "client"),
    [
        # not from a trusted proxy: the peer, whatever the headers say
        ("198.51.100.7", ["203.0.113.1"], "198.51.100.7"),
        ("10.0.0.1", [], "10.0.0.1"),  # the proxy itself, no header: it is the client
        # from the proxy: the entry it appended; what the client wrote in front is not read
        ("10.0.0.1", ["203.0.113.1"], "203.0.113.1"),
        ("10.0.0.1", ["6.6.6.6, 203.0.113.1"], "203.0.113.1"),
        ("10.0.0.1", ["6.6.6.6", "203.0.113.1"], "203.0.113.1"),  # two header lines, in order
        # past every trusted hop (a CDN edge in 10/8 in front of the load balancer)
        ("10.0.0.1", ["6.6.6.6, 203.0.113.1, 10.9.9.9"], "203.0.113.1"),
        ("10.0.0.1", ["10.1.1.1, 10.2.2.2"], "10.1.1.1"),  # all ours: the farthest
        # not an address: the walk stops at the last proxy read
        ("10.0.0.1", ["unknown"], "10.0.0.1"),
        ("10.0.0.1", ["203.0.113.1, garbage, 10.2.2.2"], "10.2.2.2"),
        ("10.0.0.1", [""], "10.0.0.1"),
        # spellings: ports, brackets, IPv6, IPv4-mapped
        ("10.0.0.1", ["203.0.113.1:5100"], "203.0.113.1"),
        ("10.0.0.1", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("fd00::5", [" 2001:DB8:0::1 "], "2001:db8::1"),
        ("::ffff:10.0.0.1", ["::ffff:203.0.113.1"], "203.0.113.1"),
        ("::ffff:198.51.100.7", ["203.0.113.1"], "::ffff:198.51.100.7"),
    ],
)
def test_the_client_is_read_from_the_right_past_trusted_proxies(
    peer: str, headers: list[str], client: str
) -> None:
    assert LB.client(peer, headers) == client


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert NONE.client("127.0.0.1", ["203.0.113.1"]) == "127.0.0.1"


def test_a_scope_gets_the_client_and_keeps_the_peer_when_nothing_changes() -> None:
    scope = {
        "client": ("10.0.0.1", 5555),
        "headers": [
            (b"x-forwarded-for", b"6.6.6.6, 203.0.113.1"),
            (b"forwarded", b"for=1.2.3.4"),
            (b"x-real-ip", b"1.2.3.4"),
        ],
    }
    LB.rewrite(scope)
    assert scope["client"] == ("203.0.113.1", 0)
    direct = {"client": ("198.51.100.7", 5555), "headers": [(b"x-forwarded-for", b"1.1.1.1")]}
    LB.rewrite(direct)
    assert direct["client"] == ("198.51.100.7", 5555)
    nobody = {"client": None, "headers": []}
    LB.rewrite(nobody)
    assert nobody["client"] is None


@pytest.mark.parametrize("text", ["", "x", "1.2.3", "[::1", "1.2.3.4:", "::1]:5"])
def test_what_is_not_an_address_is_none(text: str) -> None:
    assert parse_address(text) is None
