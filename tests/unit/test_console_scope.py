"""The console's scope (services/fleet.py): an admin's subtree, never the devices of no group
(stock, released: they belong to no customer); never an installer's or viewer's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from provisiond.domain.users import Role, User
from provisiond.errors import Forbidden
from provisiond.services.fleet import console_scope


def user(role: Role, group: str) -> User:
    return User(uuid.uuid4(), "x@example.org", role, uuid.uuid4(), group, datetime.now(UTC))


def test_a_top_level_admin_sees_their_customer_only() -> None:
    scope = console_scope(user(Role.ADMIN, "Kanarra"))
    assert not scope.covers(None)
    assert scope.covers("Kanarra/West")
    assert not scope.covers("Tekton")
    assert not scope.operator_wide
    assert not user(Role.ADMIN, "Kanarra").scope.covers(None)  # the session's own: unchanged


def test_an_admin_below_sees_no_stock() -> None:
    scope = console_scope(user(Role.ADMIN, "Kanarra/Sadler-Isberg"))
    assert not scope.covers(None)
    assert scope.covers("Kanarra/Sadler-Isberg/East")
    assert not scope.covers("Kanarra")


@pytest.mark.parametrize("role", [Role.INSTALLER, Role.VIEWER])
def test_the_console_is_for_admins(role: Role) -> None:
    with pytest.raises(Forbidden):
        console_scope(user(role, "Kanarra"))
