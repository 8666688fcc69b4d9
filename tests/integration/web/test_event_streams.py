"""A user holds at most event_streams_per_user claim-page event streams open at once: one
more is refused (429) until one of theirs ends; other users are not affected."""

from __future__ import annotations

import time
from contextlib import ExitStack

import httpx
import pytest

from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server
from tests.integration.web.test_pages import fleet, signed_in  # noqa: F401


@pytest.fixture
def server_settings(database_url: str) -> Settings:
    return load_settings(
        database_url=database_url,
        log_level="warning",
        claims__rate_per_minute=1000,
        sessions__login_rate_per_minute=1000,
        limits__event_streams_per_user=2,
    )


def open_stream(
    stack: ExitStack, server: Server, cookies: httpx.Cookies, path: str
) -> httpx.Response:
    client = stack.enter_context(httpx.Client(base_url=server.url, cookies=cookies, timeout=10))
    return stack.enter_context(client.stream("GET", f"{path}/events"))


def test_a_user_holds_a_bounded_number_of_event_streams(
    server: Server,
    fleet: dict[str, str],  # noqa: F811
) -> None:
    tech = signed_in(server, "tech@kanarra.example")
    mine = tech.post("/provision", {"serial": "BTN-1", "target": "me"}).headers["location"]
    other = signed_in(server, "tech2@kanarra.example")
    theirs = other.post("/provision", {"serial": "BTN-2", "target": "me"}).headers["location"]
    with ExitStack() as held:
        first = ExitStack()
        held.enter_context(first)
        assert open_stream(first, server, tech.http.cookies, mine).status_code == 200
        assert open_stream(held, server, tech.http.cookies, mine).status_code == 200
        refused = tech.get(f"{mine}/events")
        assert refused.status_code == 429
        assert "event_streams_per_user" in refused.text
        assert int(refused.headers["retry-after"]) >= 1
        # another user's streams are theirs to count
        assert open_stream(held, server, other.http.cookies, theirs).status_code == 200
        first.close()  # one of mine ends: its place comes back once the server sees it
        deadline = time.monotonic() + 10
        while True:
            again = open_stream(held, server, tech.http.cookies, mine)
            if again.status_code == 200:
                break
            assert again.status_code == 429
            assert time.monotonic() < deadline, "the ended stream's place never came back"
