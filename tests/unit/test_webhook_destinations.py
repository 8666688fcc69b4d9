"""Where webhooks may send: every spelling of an address is read as that address, every
non-public address is refused (and every address a name resolves to), the allow-list lets
intranet receivers through. The resolver is the tests' own."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from ipaddress import ip_address

import pytest

from provisiond.domain import destinations as d
from provisiond.domain.webhooks import parse_url
from provisiond.errors import InvalidInput
from provisiond.services.destinations import DestinationGuard, DestinationRefused

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:4700:4700::1111"


class Names:
    """A resolver the tests control: name -> addresses (a missing name does not resolve);
    every lookup is recorded."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError(f"{host}: name or service not known")
        return self.table[host]


def guard(
    table: dict[str, list[str]] | None = None,
    *,
    networks: Sequence[str] = (),
    hosts: Sequence[str] = (),
) -> DestinationGuard:
    return DestinationGuard(d.AllowList.parse(networks, hosts), Names(table or {}))


# ------------------------------------------------------------------- spellings


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),  # short forms: the last part fills the rest
        ("127.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),  # one decimal integer
        ("017700000001", "127.0.0.1"),  # one octal integer
        ("0x7f000001", "127.0.0.1"),  # one hex integer
        ("0X7F000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),  # octal parts
        ("0x7f.1", "127.0.0.1"),  # hex parts
        ("0x7f.0x0.0.01", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),  # trailing dot
        ("127.0.0.1..", "127.0.0.1"),
        ("0", "0.0.0.0"),  # noqa: S104 (an address, not a binding)
        ("0x", "0.0.0.0"),  # noqa: S104
        ("①②⑦.0.0.1", "127.0.0.1"),  # Unicode digits IDNA folds to ASCII
        ("１２７.０.０.１", "127.0.0.1"),  # full-width digits  # noqa: RUF001
        ("127。0。0。1", "127.0.0.1"),  # ideographic full stops
        ("10.0.0.1", "10.0.0.1"),
        ("[::1]", "::1"),
        ("[0:0:0:0:0:0:0:1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("FE80::1%25eth0", "fe80::1"),  # zone id, percent-encoded as in a URL
        ("fe80::1%eth0", "fe80::1"),
    ],
)
def test_every_spelling_of_an_address_is_that_address(host: str, address: str) -> None:
    name = d.normal_host(host)
    assert d.numeric(name)
    assert d.address_of(name) == ip_address(address)


@pytest.mark.parametrize(
    "host",
    [
        "hooks.example.com",
        "HOOKS.Example.COM.",
        "a-b.c_d.example",
        "0x7f.example",
        "127.0.0.1.nip.io",
        "example.123",
    ],
)
def test_names_are_names(host: str) -> None:
    name = d.normal_host(host)
    assert not d.numeric(name)
    assert d.literal_address(name) is None
    assert name == name.lower().rstrip(".")


@pytest.mark.parametrize(
    "host", ["1.2.3.4.5", "08.0.0.1", "0x1g.1", "256.1.1.1", "1.16777216", "4294967296"]
)
def test_numbers_that_are_no_address_are_refused(host: str) -> None:
    """inet_aton refuses them, so the C library would look them up as names."""
    with pytest.raises(d.BadHost):
        d.address_of(d.normal_host(host))


@pytest.mark.parametrize("host", ["a b", "a%2fb", "exa mple.com", "-x.example", "x..y", "[::zz]"])
def test_hosts_that_are_neither_are_refused(host: str) -> None:
    with pytest.raises(d.BadHost):
        d.normal_host(host)


# ------------------------------------------------------------------- categories


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456:789a::1", "private"),
        ("fec0::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("100.127.255.255", "shared (carrier-grade NAT)"),
        ("255.255.255.255", "reserved"),
        ("240.0.0.1", "reserved"),
        ("192.0.0.8", "reserved"),
        ("198.18.0.1", "reserved"),
        ("192.88.99.1", "reserved"),
        ("192.0.2.1", "documentation"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("2001:db8::1", "documentation"),
        ("3fff::1", "documentation"),
        # IPv4 inside IPv6: judged by the IPv4 address it reaches
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:7f00:1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "link-local"),
        ("2002:7f00:1::1", "loopback"),
        ("2002:a00:1::", "private"),
        ("::127.0.0.1", "reserved"),
        ("::8.8.8.8", "reserved"),  # IPv4-compatible
        ("64:ff9b:1::1", "reserved"),
        ("2001::1", "reserved"),
        ("100::1", "reserved"),
        ("4000::1", "reserved"),
        ("::ffff:0:7f00:1", "reserved"),  # outside 2000::/3
    ],
)
def test_non_public_addresses_have_a_category(address: str, why: str) -> None:
    assert d.category(ip_address(address)) == why


@pytest.mark.parametrize(
    "address",
    [
        PUBLIC_V4,
        "8.8.8.8",
        "1.1.1.1",
        "100.63.255.255",
        "100.128.0.0",
        "172.32.0.1",
        "11.0.0.1",
        PUBLIC_V6,
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_public_addresses_pass(address: str) -> None:
    assert d.category(ip_address(address)) is None


def test_the_allow_list_lets_networks_and_names_through() -> None:
    allow = d.AllowList.parse(
        ["127.0.0.0/8", "10.20.0.0/16", "fd00::/8"], ["intranet.corp.example", "*.lab.example."]
    )
    assert d.refusal(ip_address("127.0.0.1"), allow) is None
    assert d.refusal(ip_address("::ffff:127.0.0.1"), allow) is None  # the IPv4 it reaches
    assert d.refusal(ip_address("10.20.3.4"), allow) is None
    assert d.refusal(ip_address("fd00::5"), allow) is None
    assert d.refusal(ip_address("10.21.0.1"), allow) == "private"
    assert d.refusal(ip_address("::1"), allow) == "loopback"
    assert d.refusal(ip_address("169.254.169.254"), allow) == "link-local"
    assert allow.trusts("intranet.corp.example")
    assert allow.trusts("a.lab.example")
    assert allow.trusts("a.b.lab.example")
    assert not allow.trusts("lab.example")
    assert not allow.trusts("evil-lab.example")
    assert not allow.trusts("corp.example")
    with pytest.raises(ValueError, match=re.escape("'10.0.0.0/33' is not a network")):
        d.AllowList.parse(["10.0.0.0/33"])
    with pytest.raises(ValueError, match="is not a host name"):
        d.AllowList.parse(hosts=["127.0.0.1"])


# ------------------------------------------------------------------- the URL form


MALFORMED = [
    ("http://good@127.0.0.1/", "must not carry a user name or password"),
    ("http://:pw@hooks.example/", "must not carry a user name or password"),
    ("http://127.0.0.1\\@good.example/", "backslashes"),
    ("http://hooks.example\t/", "control characters"),
    ("http://hooks.example:99999/", "port that is not a number"),
    ("http://hooks.example:0/", "port that is not a number"),
    ("http://[::zz]/", "not a valid IPv6 address"),
    ("http://1.2.3.4.5/", "host that is not a valid address"),
    ("http://127.0.0.1%2f@x/", "must not carry a user name"),
    ("http://127.0.0.1%2f/", "host that is not a valid host name"),
    ("gopher://hooks.example/", "must be an http:// or https:// URL"),
]


@pytest.mark.parametrize(("url", "message"), MALFORMED)
def test_urls_of_the_wrong_form_are_refused(url: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        parse_url(url)
    assert [p.field for p in caught.value.problems] == ["url"]


# ------------------------------------------------------------------- the guard

FORBIDDEN_URLS = [
    "http://127.0.0.1/",
    "http://127.1/",
    "http://127.0.1:8080/",
    "http://0177.0.0.1/",
    "http://0x7f.1/",
    "http://0x7F000001/",
    "http://2130706433/",
    "http://017700000001/",
    "http://127.0.0.1./",
    "HTTP://127.0.0.1/",
    "http://①②⑦.0.0.1/",
    "http://127。0。0。1/",
    "http://0/",
    "http://0.0.0.0:22/",
    "http://localhost/",
    "http://LOCALHOST./",
    "http://api.localhost/",
    "http://[::1]/",
    "http://[0:0:0:0:0:0:0:1]:80/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/",
    "http://[fe80::1%25eth0]/",
    "http://[FE80::1]/",
    "http://[fd12:3456::1]/",
    "http://[fc00::1]/",
    "http://[ff02::1]/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://192.0.2.1/",
    "http://198.51.100.1/",
    "http://203.0.113.1/",
    "http://198.18.0.1/",
    "http://loopback.test/",
    "http://LOOPBACK.TEST./",
    "http://mixed.test/",
    "http://metadata.test/",
    "http://v6loop.test/",
    "http://mapped.test/",
]
NAMES = {
    "loopback.test": ["127.0.0.1"],
    "mixed.test": [PUBLIC_V4, "10.0.0.7"],
    "metadata.test": ["169.254.169.254"],
    "v6loop.test": [PUBLIC_V4, "::1"],
    "mapped.test": ["::ffff:192.168.0.1"],
    "public.test": [PUBLIC_V4, PUBLIC_V6],
}


@pytest.mark.parametrize("url", FORBIDDEN_URLS)
def test_a_forbidden_destination_is_refused_naming_the_url(url: str) -> None:
    with pytest.raises(InvalidInput, match="must be a public destination") as caught:
        asyncio.run(guard(NAMES).check_url(parse_url(url)))
    assert [p.field for p in caught.value.problems] == ["url"]
    if url.endswith(".test/"):  # a name: the addresses it resolved to are not told
        for answer in (a for answers in NAMES.values() for a in answers):
            assert answer not in caught.value.detail


@pytest.mark.parametrize(
    "url",
    [
        f"http://{PUBLIC_V4}/",
        f"https://[{PUBLIC_V6}]:8443/x",
        "http://[::ffff:8.8.8.8]/",
        "https://public.test/hook?x=1",
        "https://PUBLIC.test./",
        "http://1.1.1.1./",
        "https://does-not-resolve.test/",  # checked again at every delivery
    ],
)
def test_public_destinations_pass(url: str) -> None:
    asyncio.run(guard(NAMES).check_url(parse_url(url)))


def test_every_address_of_a_name_is_checked() -> None:
    g = guard(NAMES)
    assert asyncio.run(g.addresses("public.test", 443)) == [
        ip_address(PUBLIC_V4),
        ip_address(PUBLIC_V6),
    ]
    with pytest.raises(DestinationRefused, match=r"^mixed\.test resolves to a private address$"):
        asyncio.run(g.addresses("mixed.test", 443))


def test_localhost_is_loopback_without_asking_the_resolver() -> None:
    names = Names({"localhost": [PUBLIC_V4]})
    g = DestinationGuard(d.AllowList(), names)
    with pytest.raises(DestinationRefused, match="loopback"):
        asyncio.run(g.addresses("localhost", 80))
    assert names.asked == []


def test_the_allow_list_admits_intranet_receivers() -> None:
    g = guard(
        {
            "intranet.corp.example": ["10.1.2.3"],
            "hooks.test": ["127.0.0.1"],
            "anything.lab.example": ["192.168.7.7"],
        },
        networks=["127.0.0.0/8"],
        hosts=["intranet.corp.example", "*.lab.example"],
    )
    for url in (
        "http://127.0.0.1:9000/",
        "http://[::ffff:127.0.0.1]/",
        "http://0x7f.1/",
        "http://hooks.test/",
        "http://intranet.corp.example/",
        "http://anything.lab.example/",
    ):
        asyncio.run(g.check_url(parse_url(url)))
    assert asyncio.run(g.addresses("intranet.corp.example", 80)) == [ip_address("10.1.2.3")]
    for url in ("http://10.1.2.3/", "http://[::1]/", "http://169.254.169.254/"):
        with pytest.raises(InvalidInput):
            asyncio.run(g.check_url(parse_url(url)))


def test_a_resolver_that_does_not_answer_in_time_does_not_hold_creation() -> None:
    async def never(host: str, port: int) -> Sequence[str]:
        await asyncio.Event().wait()
        return []

    g = DestinationGuard(d.AllowList(), never, resolve_seconds=0.01)
    asyncio.run(g.check_url("https://slow.test/"))  # passes; delivery checks again
    with pytest.raises(TimeoutError):
        asyncio.run(g.addresses("slow.test", 443))
