"""The connection gate (a total cap, a cap per source, the idlest evicted first) and the
descriptor budget the caps are fitted into."""

from __future__ import annotations

import resource

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisiond.services.connection_caps import (
    HTTP_BACKLOG,
    MQTT_BACKLOG,
    OTHER_DESCRIPTORS,
    Gate,
    descriptors_needed,
    plan_caps,
    source_of,
)
from provisiond.settings import Settings


class Conn:
    def __init__(self, name: str) -> None:
        self.name = name
        self.evicted = False

    def evict(self) -> None:
        self.evicted = True

    def __repr__(self) -> str:
        return self.name


def test_at_the_cap_the_longest_idle_goes_and_busy_ones_stay() -> None:
    gate = Gate[Conn](3)
    a, b, c, d, e = (Conn(n) for n in "abcde")
    for conn in (a, b, c):
        assert gate.admit(conn)
    gate.busy(a)  # a has a request in hand
    assert gate.admit(d)  # b waited longest of the idle ones
    assert (a.evicted, b.evicted, c.evicted) == (False, True, False)
    gate.idle(a)  # a answered: now the newest idle one
    gate.busy(c)
    gate.busy(d)
    assert gate.admit(e)
    assert a.evicted
    gate.busy(e)
    assert not gate.admit(Conn("f"))  # all three busy: refused, nobody evicted
    assert len(gate) == 3
    gate.leave(c)
    assert gate.admit(Conn("g"))


def test_a_source_at_its_cap_evicts_its_own_not_others() -> None:
    gate = Gate[Conn](10, per_source=2)
    mine = [Conn(f"m{i}") for i in range(3)]
    theirs = Conn("t")
    assert gate.admit(theirs, "10.0.0.2")
    assert gate.admit(mine[0], "10.0.0.1")
    assert gate.admit(mine[1], "10.0.0.1")
    assert gate.admit(mine[2], "10.0.0.1")
    assert mine[0].evicted
    assert not theirs.evicted
    gate.busy(mine[1])
    gate.busy(mine[2])
    assert not gate.admit(Conn("m3"), "10.0.0.1")
    assert gate.admit(Conn("u"), "10.0.0.3")


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["admit", "busy", "idle", "leave"]),
            st.integers(0, 11),
            st.integers(0, 2),
        ),
        max_size=200,
    )
)
def test_the_caps_always_hold(steps: list[tuple[str, int, int]]) -> None:
    gate = Gate[Conn](5, per_source=3)
    conns = [Conn(str(i)) for i in range(12)]
    inside: dict[Conn, int] = {}
    for op, n, source in steps:
        conn = conns[n]
        if op == "admit" and conn not in inside:
            if gate.admit(conn, source):
                inside[conn] = source
            for other in list(inside):
                if other.evicted:
                    del inside[other]
                    other.evicted = False
        elif op == "busy":
            gate.busy(conn)
        elif op == "idle":
            gate.idle(conn)
        elif op == "leave":
            gate.leave(conn)
            inside.pop(conn, None)
        assert len(gate) == len(inside) <= 5
        assert all(list(inside.values()).count(s) <= 3 for s in range(3))


def test_sources_count_ipv6_by_its_64() -> None:
    assert source_of("2001:db8:1:2:aaaa::1") == source_of("2001:db8:1:2:bbbb::9")
    assert source_of("2001:db8:1:2::1") != source_of("2001:db8:1:3::1")
    assert source_of("::ffff:192.0.2.7") == "192.0.2.7"
    assert source_of("192.0.2.7") == "192.0.2.7"
    assert source_of(None) == "unknown"


def test_caps_fit_the_descriptor_limit() -> None:
    settings = Settings(database_url="sqlite://")
    needed = descriptors_needed(settings)
    assert needed == (OTHER_DESCRIPTORS + HTTP_BACKLOG + MQTT_BACKLOG + 4096 + 16 + 4096)
    roomy = plan_caps(settings, 65536)
    assert (roomy.http_connections, roomy.mqtt_sessions, roomy.lowered) == (4096, 4096, False)
    tight = plan_caps(settings, 1024)
    assert tight.lowered
    fixed = needed - 4096 - 4096
    assert fixed + tight.http_connections + tight.mqtt_sessions <= 1024
    assert tight.http_connections == tight.mqtt_sessions  # lowered in proportion
    assert tight.mqtt_per_address == 256 * tight.mqtt_sessions // 4096  # the same share
    no_mqtt = plan_caps(Settings(database_url="sqlite://", provisioning__mqtt_enabled=False), 1024)
    assert OTHER_DESCRIPTORS + HTTP_BACKLOG + 16 + no_mqtt.http_connections <= 1024
    assert no_mqtt.http_connections > tight.http_connections
    assert not plan_caps(settings, resource.RLIM_INFINITY).lowered


@pytest.mark.parametrize("limit", [256, 512, 1024, 4096])
def test_lowered_caps_never_go_below_a_floor(limit: int) -> None:
    caps = plan_caps(Settings(database_url="sqlite://"), limit)
    assert caps.http_connections >= 16
    assert caps.mqtt_sessions >= 16
