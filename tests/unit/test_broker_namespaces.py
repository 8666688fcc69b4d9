"""Broker namespaces (``broker__namespace``): each registry's group, roles and file section
are its own, and none parses as another's."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisiond.domain.broker import check_namespace, device_group, device_of_role, role_name
from provisiond.integrations.mosquitto_files.protocol import (
    MARKER,
    Entry,
    Files,
    marker,
    parse,
    render,
)

DEVICE = uuid.UUID("0e2f1c58-5d7a-4f3e-9b1a-2c3d4e5f6a7b")
namespaces = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?", fullmatch=True) | st.just("")


def test_the_default_keeps_the_names_of_before() -> None:
    assert device_group() == "provisiond-devices"
    assert role_name(DEVICE) == f"provisiond-device-{DEVICE}"
    assert device_group("plant-b") == "provisiond-plant-b-devices"
    assert role_name(DEVICE, "plant-b") == f"provisiond-plant-b-device-{DEVICE}"


@given(namespaces, namespaces)
def test_a_role_is_its_own_namespaces_only(mine: str, other: str) -> None:
    role = role_name(DEVICE, other)
    assert device_of_role(role, mine) == (DEVICE if mine == other else None)
    assert (device_group(mine) == device_group(other)) == (mine == other)


@pytest.mark.parametrize("bad", ["Plant", "-a", "a-", "a_b", "a b", "é", "x" * 33])
def test_a_namespace_is_a_plain_name(bad: str) -> None:
    with pytest.raises(ValueError, match="lower-case letters"):
        check_namespace(bad)


def test_two_sections_are_kept_apart_in_one_pair_of_files() -> None:
    operator = "admin:$7$101$a$b\n"
    first = parse(operator, "user admin\n")
    first.accounts["a1"] = Entry("a1", "$7$1$x$y", ("d/1/#",))
    passwords, acl = render(first)
    second = parse(passwords, acl, "plant-b")
    assert second.accounts == {}
    assert second.others == {"a1"}
    second.accounts["b1"] = Entry("b1", "$7$1$x$z", ("d/2/#",))
    passwords, acl = render(second)
    assert passwords == (f"{operator}{MARKER}\na1:$7$1$x$y\n{marker('plant-b')}\nb1:$7$1$x$z\n")
    again = parse(passwords, acl)  # the first registry's view: b1 is not its own
    assert again.accounts == {"a1": Entry("a1", "$7$1$x$y", ("d/1/#",))}
    assert again.others == {"b1"}
    again.accounts.clear()
    passwords, acl = render(again)
    assert parse(passwords, acl, "plant-b").accounts == {"b1": Entry("b1", "$7$1$x$z", ("d/2/#",))}
    assert render(parse(passwords, acl)) == (passwords, acl)


def test_files_without_a_namespace_render_as_before() -> None:
    assert render(Files("a:b\n", "user a\n")) == (f"a:b\n{MARKER}\n", f"user a\n{MARKER}\n")
