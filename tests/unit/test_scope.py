"""The one subtree rule every adapter shares."""

import pytest

from provisiond.domain.scope import Scope
from provisiond.domain.users import Role

ACME = Scope(Role.ADMIN, "Acme")


@pytest.mark.parametrize("path", ["Acme", "Acme/West", "Acme/West/Anaheim"])
def test_a_scope_covers_its_group_and_below(path: str) -> None:
    assert ACME.covers(path)


@pytest.mark.parametrize(
    "path",
    [
        "Acme+Co",
        "Acme&Partners",
        "Acme West",
        "AcmeCo",
        "Acm",
        "acme",
        "Acme0",
        "Acme.",
        "Acmé",
        "Other/Acme",
        None,
    ],
)
def test_a_scope_covers_nothing_else(path: str | None) -> None:
    assert not ACME.covers(path)


def test_only_operator_wide_scopes_see_ungrouped_devices() -> None:
    assert Scope.operator().covers(None)
    assert Scope.operator().covers("Acme+Co")


def test_a_scope_includes_only_narrower_scopes() -> None:
    assert ACME.includes(Scope(Role.VIEWER, "Acme/West"))
    assert ACME.includes(ACME)
    assert not ACME.includes(Scope.operator())
    assert not ACME.includes(Scope(Role.ADMIN, "Acme+Co"))
    assert not Scope(Role.INSTALLER, "Acme").includes(Scope(Role.ADMIN, "Acme/West"))
    assert Scope.operator().includes(ACME)
