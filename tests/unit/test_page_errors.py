"""Which error page a page route's error gets: the nearest class in the hierarchy, the
route's own titles before the shared ones, and no page for the API's errors."""

from __future__ import annotations

import pytest

from provisiond.errors import (
    ClaimNotFound,
    DeviceAlreadyClaimed,
    DeviceNotFound,
    Forbidden,
    InvalidInput,
    ProvisiondError,
    TooManyRequests,
    Unavailable,
)
from provisiond.web.pages.rendering import NOTHING_HERE, FormExpired, error_page_of

RELEASE = {Forbidden: "Not released", DeviceAlreadyClaimed: "Not released"}


@pytest.mark.parametrize(
    ("err", "titles", "page"),
    [
        (Forbidden("role"), {}, ("Not allowed", "role")),
        (FormExpired("reload"), {}, ("Form expired", "reload")),
        # one text for every device not found, whatever the serial
        (DeviceNotFound("no SN-1"), {}, ("Not found", NOTHING_HERE)),
        (ClaimNotFound("gone"), {}, ("Not found", "There is no such claim.")),
        (TooManyRequests("wait"), {}, ("Slow down", "wait")),
        (Forbidden("owner"), RELEASE, ("Not released", "owner")),
        (DeviceAlreadyClaimed("not claimed"), RELEASE, ("Not released", "not claimed")),
        # the nearer class wins over a route's title for its parent
        (FormExpired("reload"), RELEASE, ("Form expired", "reload")),
        (DeviceAlreadyClaimed("taken"), {}, None),
        (InvalidInput("bad"), {}, None),
        (Unavailable("db"), {}, None),
    ],
)
def test_error_page_of(
    err: ProvisiondError, titles: dict[type[ProvisiondError], str], page: tuple[str, str] | None
) -> None:
    assert error_page_of(err, titles) == page


def test_form_expired_is_a_forbidden_without_a_code_of_its_own() -> None:
    assert FormExpired.code == Forbidden.code
    assert FormExpired.status == 403
