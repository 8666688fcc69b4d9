"""Sign-in under attack, over real HTTP, on SQLite and PostgreSQL.

Wrong passwords are counted in the database, atomically, before the password is checked:
20 sent at the same instant lock the account for their address as surely as 20 sent one
after another, on one instance or two. The lock is per account *and address*, so whoever
guesses cannot lock the account's owner out; guesses from many addresses together slow the
account down for addresses it has not been signed in from.
"""

from __future__ import annotations

import asyncio
import re
import threading

import httpx
import pytest
from argon2 import PasswordHasher

from provisiond.bootstrap import open_container
from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server, make_token
from tests.support.processes import Instance

pytestmark = pytest.mark.real_password_cost

PASSWORD = "correct horse battery"
EMAIL = "tech@kanarra.example"


def browser(url: str, address: str = "127.0.0.1") -> httpx.Client:
    """A browser on this host, its connections from ``address`` (all of 127/8 is loopback:
    each is another client to the server, no proxy needed)."""
    return httpx.Client(
        base_url=url,
        timeout=60,
        follow_redirects=False,
        transport=httpx.HTTPTransport(local_address=address),
    )


def login_form(http: httpx.Client) -> str:
    page = http.get("/login")
    found = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def sign_in(url: str, password: str, address: str = "127.0.0.1") -> int:
    with browser(url, address) as http:
        token = login_form(http)
        return http.post(
            "/login", data={"email": EMAIL, "password": password, "login_csrf": token}
        ).status_code


def at_once(urls: list[str], passwords: list[str]) -> list[int]:
    """Each password posted by its own browser (to ``urls`` in turn), all released at the
    same instant once every form is loaded; their statuses."""
    statuses: list[int] = [0] * len(passwords)
    barrier = threading.Barrier(len(passwords))

    def one(i: int) -> None:
        with browser(urls[i % len(urls)]) as http:
            token = login_form(http)
            barrier.wait(timeout=60)
            statuses[i] = http.post(
                "/login", data={"email": EMAIL, "password": passwords[i], "login_csrf": token}
            ).status_code

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(passwords))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return statuses


def add_user(server: Server) -> None:
    with server.client() as api:
        assert api.post("/api/v1/groups", json={"path": "Kanarra"}).status_code == 201
        r = api.post(
            "/api/v1/users",
            json={"email": EMAIL, "password": PASSWORD, "role": "installer", "group": "Kanarra"},
        )
        assert r.status_code == 201, r.text


@pytest.fixture
def server_settings(request: pytest.FixtureRequest, database_url: str) -> Settings:
    limits = {
        "sessions__login_failures_before_lockout": 5,
        "sessions__login_account_failures_before_slowdown": 40,
        **getattr(request, "param", {}),
    }
    return load_settings(
        database_url=database_url,
        log_level="warning",
        sessions__login_rate_per_minute=1000,
        **limits,
    )


@pytest.mark.slow
def test_twenty_wrong_passwords_at_once_lock_the_account_for_their_address(server: Server) -> None:
    add_user(server)
    statuses = at_once([server.url], [f"guess {n}" for n in range(20)])
    assert statuses == [401] * 20
    # locked: the right password from that address is refused too (and looks the same) ...
    assert sign_in(server.url, PASSWORD) == 401
    # ... but the account's owner, elsewhere, is not locked out by whoever guessed
    assert sign_in(server.url, PASSWORD, address="127.0.0.2") == 303


@pytest.mark.slow
@pytest.mark.postgres
def test_twenty_wrong_passwords_at_once_across_two_instances_lock_it(postgres_url: str) -> None:
    settings = load_settings(database_url=postgres_url)
    token = make_token(settings)
    env = {
        "PROVISIOND_SESSIONS__LOGIN_RATE_PER_MINUTE": "1000",
        "PROVISIOND_LOG_LEVEL": "warning",
        "PROVISIOND_SESSIONS__LOGIN_ACCOUNT_FAILURES_BEFORE_SLOWDOWN": "40",
    }
    instances = [Instance(postgres_url, env=env) for _ in range(2)]
    try:
        a, b = (Server(i.url, token, settings) for i in instances)
        add_user(a)
        assert at_once([a.url, b.url], [f"guess {n}" for n in range(20)]) == [401] * 20
        assert sign_in(a.url, PASSWORD) == 401
        assert sign_in(b.url, PASSWORD) == 401
        assert sign_in(b.url, PASSWORD, address="127.0.0.2") == 303
    finally:
        for instance in instances:
            instance.stop()


@pytest.mark.parametrize(
    "server_settings",
    [
        {
            "sessions__login_failures_before_lockout": 2,
            "sessions__login_account_failures_before_slowdown": 4,
            "sessions__login_account_slowdown_seconds": 3600,
        }
    ],
    indirect=True,
)
def test_guesses_from_many_addresses_slow_the_account_down_but_not_for_its_owner(
    server: Server,
) -> None:
    add_user(server)
    owner = "127.0.0.9"
    assert sign_in(server.url, PASSWORD, address=owner) == 303  # a known address
    for guesser in ("127.0.0.2", "127.0.0.3"):  # 2 each: both locked, the account at 4
        assert [sign_in(server.url, f"guess {n}", address=guesser) for n in range(3)] == [
            401,
            401,
            401,
        ]
    # slowed: one password check an hour from addresses it was never signed in from (the
    # hour started with the 4th wrong password) ...
    assert sign_in(server.url, "guess 7", address="127.0.0.4") == 401
    assert sign_in(server.url, PASSWORD, address="127.0.0.5") == 401
    assert sign_in(server.url, PASSWORD, address="127.0.0.2") == 401  # still locked
    # ... while the address the account signed in from before is not slowed down
    assert sign_in(server.url, PASSWORD, address=owner) == 303
    # and a sign-in starts the account's count again
    assert sign_in(server.url, PASSWORD, address="127.0.0.5") == 303


def test_a_password_hashed_with_other_parameters_is_rehashed_at_sign_in(server: Server) -> None:
    add_user(server)
    old = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash(PASSWORD)

    async def stored(replace: str | None = None) -> str:
        async with open_container(server.settings) as c:
            async with c.uow().read() as uow:
                user = await uow.users.find_by_email(EMAIL)
                assert user is not None
                found = await uow.users.password_hash(user.id)
            assert found is not None
            if replace is None:
                return found
            async with c.uow() as uow:
                assert await uow.sessions.replace_password_hash(user.id, found, replace)
                await uow.commit()
            return replace

    assert asyncio.run(stored()).startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert asyncio.run(stored(old)) == old
    assert sign_in(server.url, "wrong password") == 401
    assert asyncio.run(stored()) == old  # only a right password is rehashed
    assert sign_in(server.url, PASSWORD) == 303
    rehashed = asyncio.run(stored())
    assert rehashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert sign_in(server.url, PASSWORD) == 303
    assert asyncio.run(stored()) == rehashed
