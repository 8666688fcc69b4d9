"""Users and groups (issue 23), through the services, on SQLite and PostgreSQL: invitation and
password-reset links (mailed through a real SMTP server, single use, expiring, stored hashed,
one account however many use a link at once), renaming and moving groups with their subtree,
changing users' roles and groups — each within the caller's subtree."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import text

from provisiond.bootstrap import open_container
from provisiond.domain.device import DeviceSpec
from provisiond.domain.invitations import InviteSpec, LinkPurpose
from provisiond.domain.scope import Scope
from provisiond.domain.users import Role, UserSpec
from provisiond.errors import (
    Forbidden,
    GroupExists,
    GroupNotFound,
    InvalidInput,
    LinkNotValid,
    Unauthenticated,
    UserExists,
    UserNotFound,
)
from provisiond.services import accounts, devices, directory, invitations, people
from provisiond.services.hashing import hash_token
from provisiond.services.mail import NoMailer, SmtpMailer, mailer_for
from provisiond.services.ratelimit import RateLimiter
from provisiond.settings import SmtpSettings, load_settings
from tests.integration.store.test_concurrency import race
from tests.support.smtp import Inbox, smtp_server

OPERATOR = Scope.operator()
KANARRA = Scope(Role.ADMIN, "Kanarra")
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
LINKS = invitations.LinkPolicy(timedelta(hours=72), "https://provision.example")
T = TypeVar("T")


def run(database_url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    async def main() -> T:
        async with open_container(load_settings(database_url=database_url)) as c:
            return await work(c)

    return asyncio.run(main())


def rows(database_url: str, query: str) -> list[tuple[Any, ...]]:
    async def work(c: Any) -> list[tuple[Any, ...]]:
        async with c.database.engine.connect() as conn:
            return [tuple(r) for r in await conn.execute(text(query))]

    return run(database_url, work)


def json_of(value: Any) -> Any:
    """A JSON column as read back (a string on SQLite, parsed on PostgreSQL)."""
    return json.loads(value) if isinstance(value, str) else value


def mailer(inbox: Inbox) -> SmtpMailer:
    return SmtpMailer(
        SmtpSettings(
            host=inbox.host, port=inbox.port, security="none", from_address="p@kanarra.example"
        )
    )


@pytest.fixture
def org(database_url: str) -> str:
    """Kanarra (admin boss@) with West/Anaheim and East; Other, another customer."""

    async def work(c: Any) -> None:
        for path in ("Kanarra/West/Anaheim", "Kanarra/East", "Other/Site"):
            await directory.create_group(c.uow(), scope=OPERATOR, path=path, actor="t", now=NOW)
        for email, role, group in (
            ("boss@kanarra.example", "admin", "Kanarra"),
            ("tech@kanarra.example", "installer", "Kanarra/West"),
            ("them@other.example", "viewer", "Other"),
        ):
            spec = UserSpec(email, PASSWORD, role, group)
            await directory.create_user(c.uow(), scope=OPERATOR, spec=spec, actor="t", now=NOW)

    run(database_url, work)
    return database_url


def invite(
    c: Any, spec: InviteSpec, mail: Any = None, scope: Scope = KANARRA, now: datetime = NOW
) -> Awaitable[Any]:
    return invitations.invite_user(
        c.uow(),
        mail or NoMailer(),
        LINKS,
        scope=scope,
        spec=spec,
        actor="user:boss@kanarra.example",
        now=now,
    )


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


# ----------------------------------------------------------------------------- invitations


def test_an_invitation_is_mailed_used_once_and_stored_only_as_a_hash(org: str) -> None:
    with smtp_server() as inbox:
        issued = run(
            org,
            lambda c: invite(
                c, InviteSpec("New@Kanarra.example", "installer", "Kanarra/East"), mailer(inbox)
            ),
        )
        (mail,) = inbox.wait_for(1)
    assert issued.mailed
    assert mail["To"] == "new@kanarra.example"
    assert inbox.link(mail) == issued.url
    token = token_of(issued.url)
    assert issued.url == f"https://provision.example/invitations/{token}"
    assert len(token) >= 43  # 256 bits, base64url
    # no column of the stored row holds the token; its SHA-256 finds it
    (row,) = rows(org, "SELECT * FROM invitations")
    assert all(token not in str(v) for v in row)
    assert rows(org, "SELECT token_hash FROM invitations") == [(hash_token(token),)]
    assert rows(org, "SELECT type, actor FROM events WHERE type = 'user.invited'") == [
        ("user.invited", "user:boss@kanarra.example")
    ]

    async def accept(c: Any) -> Any:
        link = await invitations.open_link(
            c.uow(), token=token, purpose=LinkPurpose.INVITATION, now=NOW
        )
        assert (link.email, link.role, link.group_path) == (
            "new@kanarra.example",
            Role.INSTALLER,
            "Kanarra/East",
        )
        return await invitations.accept_invitation(
            c.uow(), token=token, password=PASSWORD, repeat=PASSWORD, now=NOW
        )

    user = run(org, accept)
    assert (user.email, user.role, user.group_path) == (
        "new@kanarra.example",
        Role.INSTALLER,
        "Kanarra/East",
    )

    async def again(c: Any) -> None:
        with pytest.raises(LinkNotValid):
            await invitations.open_link(
                c.uow(), token=token, purpose=LinkPurpose.INVITATION, now=NOW
            )
        with pytest.raises(LinkNotValid):
            await invitations.accept_invitation(
                c.uow(), token=token, password=PASSWORD, repeat=PASSWORD, now=NOW
            )
        signed = await accounts.sign_in(
            c.uow(),
            RateLimiter(),
            c.session_policy,
            email="new@kanarra.example",
            password=PASSWORD,
            address="192.0.2.1",
            now=NOW,
        )
        assert signed.user.group_path == "Kanarra/East"

    run(org, again)


def test_an_expired_or_replaced_link_creates_no_account(org: str) -> None:
    spec = InviteSpec("late@kanarra.example", "viewer", "Kanarra")
    first = run(org, lambda c: invite(c, spec))
    second = run(org, lambda c: invite(c, spec))
    assert not first.mailed
    assert not second.mailed

    async def use(c: Any, url: str, now: datetime) -> Any:
        return await invitations.accept_invitation(
            c.uow(), token=token_of(url), password=PASSWORD, repeat=PASSWORD, now=now
        )

    async def refused(c: Any) -> None:
        with pytest.raises(LinkNotValid):  # replaced by the second
            await use(c, first.url, NOW)
        with pytest.raises(LinkNotValid):  # expired
            await use(c, second.url, NOW + timedelta(hours=72))
        with pytest.raises(LinkNotValid):  # never issued
            await use(c, "https://x/invitations/" + "A" * 43, NOW)
        with pytest.raises(UserNotFound):
            await people.get_user(c.uow(), scope=KANARRA, email="late@kanarra.example")

    run(org, refused)
    assert rows(org, "SELECT count(*) FROM users WHERE email = 'late@kanarra.example'") == [(0,)]


def test_the_password_rules_hold_and_a_refused_password_leaves_the_link_usable(org: str) -> None:
    issued = run(org, lambda c: invite(c, InviteSpec("p@kanarra.example", "viewer", "Kanarra")))
    token = token_of(issued.url)

    async def work(c: Any) -> None:
        with pytest.raises(InvalidInput) as short:
            await invitations.accept_invitation(
                c.uow(), token=token, password="short", repeat="short", now=NOW
            )
        assert short.value.problems[0].field == "password"
        with pytest.raises(InvalidInput) as mismatch:
            await invitations.accept_invitation(
                c.uow(), token=token, password=PASSWORD, repeat=PASSWORD + "!", now=NOW
            )
        assert mismatch.value.problems[0].field == "repeat"
        await invitations.open_link(c.uow(), token=token, purpose=LinkPurpose.INVITATION, now=NOW)

    run(org, work)


def test_an_invitation_stays_inside_the_inviters_subtree(org: str) -> None:
    west = Scope(Role.ADMIN, "Kanarra/West")

    async def work(c: Any) -> None:
        with pytest.raises(GroupNotFound):  # above the inviter's subtree
            await invite(c, InviteSpec("a@kanarra.example", "viewer", "Kanarra"), scope=west)
        with pytest.raises(GroupNotFound):  # another customer's
            await invite(c, InviteSpec("a@kanarra.example", "viewer", "Other/Site"))
        with pytest.raises(Forbidden):  # an installer invites nobody
            await invite(
                c,
                InviteSpec("a@kanarra.example", "viewer", "Kanarra/West"),
                scope=Scope(Role.INSTALLER, "Kanarra/West"),
            )
        with pytest.raises(UserExists):
            await invite(c, InviteSpec("tech@kanarra.example", "viewer", "Kanarra"))
        with pytest.raises(InvalidInput):
            await invite(c, InviteSpec("not-an-address", "viewer", "Kanarra"))

    run(org, work)
    assert rows(org, "SELECT count(*) FROM invitations") == [(0,)]


def test_a_mail_server_that_is_down_leaves_the_link_to_show(org: str) -> None:
    with smtp_server() as inbox:
        down = mailer(inbox)  # stopped when the block ends: nothing listens on its port
    issued = run(
        org, lambda c: invite(c, InviteSpec("d@kanarra.example", "viewer", "Kanarra"), down)
    )
    assert not issued.mailed
    assert issued.mail_problem
    assert "did not take the mail" in issued.mail_problem
    assert rows(org, "SELECT count(*) FROM invitations WHERE used_at IS NULL") == [(1,)]
    assert isinstance(mailer_for(SmtpSettings()), NoMailer)


def test_starttls_is_required_not_skipped_when_the_server_lacks_it(org: str) -> None:
    """security=starttls against a server without STARTTLS: the mail is not sent in clear
    (the password and the link would cross the network readable); the link is shown."""
    with smtp_server() as inbox:
        plain_only = SmtpMailer(
            SmtpSettings(
                host=inbox.host,
                port=inbox.port,
                security="starttls",
                username="provisiond",
                password="secret",
                from_address="p@kanarra.example",
            )
        )
        spec = InviteSpec("tls@kanarra.example", "viewer", "Kanarra")
        issued = run(org, lambda c: invite(c, spec, plain_only))
        assert inbox.mails == []
    assert not issued.mailed
    assert issued.mail_problem
    assert "STARTTLS" in issued.mail_problem


def test_two_people_using_one_invitation_at_once_make_one_account(org: str) -> None:
    issued = run(org, lambda c: invite(c, InviteSpec("race@kanarra.example", "viewer", "Kanarra")))
    token = token_of(issued.url)

    async def work(c: Any, i: int) -> object:
        return await invitations.accept_invitation(
            c.uow(), token=token, password=f"{PASSWORD} {i}", repeat=f"{PASSWORD} {i}", now=NOW
        )

    results = race(org, work, n=4)
    assert sum(not isinstance(r, Exception) for r in results) == 1, results
    assert all(isinstance(r, LinkNotValid) for r in results if isinstance(r, Exception)), results
    assert rows(org, "SELECT count(*) FROM users WHERE email = 'race@kanarra.example'") == [(1,)]
    assert rows(
        org,
        "SELECT count(*) FROM events WHERE type = 'user.created'"
        " AND actor = 'user:race@kanarra.example'",
    ) == [(1,)]


# ----------------------------------------------------------------------------- resets


def test_a_password_reset_ends_the_sessions_and_replaces_the_password(org: str) -> None:
    async def work(c: Any) -> None:
        def sign_in(password: str) -> Awaitable[accounts.SignedIn]:
            return accounts.sign_in(
                c.uow(),
                RateLimiter(),
                c.session_policy,
                email="tech@kanarra.example",
                password=password,
                address="192.0.2.7",
                now=NOW,
            )

        before = await sign_in(PASSWORD)
        with pytest.raises(UserNotFound):  # another customer's admin
            await invitations.issue_password_reset(
                c.uow(),
                NoMailer(),
                LINKS,
                scope=Scope(Role.ADMIN, "Other"),
                email="tech@kanarra.example",
                actor="t",
                now=NOW,
            )
        issued = await invitations.issue_password_reset(
            c.uow(),
            NoMailer(),
            LINKS,
            scope=KANARRA,
            email="tech@kanarra.example",
            actor="t",
            now=NOW,
        )
        assert issued.url.startswith("https://provision.example/password-reset/")
        token = token_of(issued.url)
        with pytest.raises(LinkNotValid):  # not an invitation
            await invitations.open_link(
                c.uow(), token=token, purpose=LinkPurpose.INVITATION, now=NOW
            )
        user, ended = await invitations.reset_password(
            c.uow(), token=token, password="a new password", repeat="a new password", now=NOW
        )
        assert (user.email, ended) == ("tech@kanarra.example", 1)
        assert (
            await accounts.session_for(c.uow(), c.session_policy, token=before.token, now=NOW)
            is None
        )
        with pytest.raises(Unauthenticated):
            await sign_in(PASSWORD)
        assert (await sign_in("a new password")).user.email == "tech@kanarra.example"
        with pytest.raises(LinkNotValid):
            await invitations.reset_password(
                c.uow(), token=token, password="another one!", repeat="another one!", now=NOW
            )

    run(org, work)
    assert rows(org, "SELECT data FROM events WHERE type = 'user.password-changed'") != []


# ----------------------------------------------------------------------------- groups


def test_moving_a_group_moves_its_subtree_devices_and_users(org: str) -> None:
    async def work(c: Any) -> None:
        await devices.create_device(
            c.uow(),
            scope=OPERATOR,
            spec=DeviceSpec("MV-1", group="Kanarra/West/Anaheim"),
            actor="t",
            now=NOW,
        )
        moved = await people.move_group(
            c.uow(),
            scope=KANARRA,
            path="Kanarra/West",
            parent="Kanarra/East",
            actor="user:boss",
            now=NOW,
        )
        assert (moved.path, moved.depth) == ("Kanarra/East/West", 2)
        device = await devices.get_device(c.uow(), scope=KANARRA, serial="MV-1")
        assert device.group_path == "Kanarra/East/West/Anaheim"
        tech = await people.get_user(c.uow(), scope=KANARRA, email="tech@kanarra.example")
        assert tech.group_path == "Kanarra/East/West"
        renamed = await people.rename_group(
            c.uow(),
            scope=KANARRA,
            path="Kanarra/East/West/Anaheim",
            name="Orange",
            actor="t",
            now=NOW,
        )
        assert renamed.path == "Kanarra/East/West/Orange"
        tree = await people.group_tree(c.uow(), scope=KANARRA)
        assert [(g.path, g.depth, d) for g, d, _ in tree] == [
            ("Kanarra", 0, 0),
            ("Kanarra/East", 1, 0),
            ("Kanarra/East/West", 2, 0),
            ("Kanarra/East/West/Orange", 3, 1),
        ]

    run(org, work)
    found = rows(
        org,
        "SELECT type, data FROM events WHERE type IN ('group.moved', 'group.renamed') ORDER BY id",
    )
    assert [(t, json_of(d)) for t, d in found] == [
        ("group.moved", {"from": "Kanarra/West", "to": "Kanarra/East/West", "groups": 2}),
        (
            "group.renamed",
            {"from": "Kanarra/East/West/Anaheim", "to": "Kanarra/East/West/Orange", "groups": 1},
        ),
    ]


def test_moves_and_renames_that_break_the_tree_or_the_scope_are_refused(org: str) -> None:
    async def work(c: Any) -> None:
        with pytest.raises(InvalidInput) as inside:
            await people.move_group(
                c.uow(),
                scope=KANARRA,
                path="Kanarra/West",
                parent="Kanarra/West/Anaheim",
                actor="t",
                now=NOW,
            )
        assert inside.value.problems[0].field == "parent"
        with pytest.raises(GroupExists):
            await people.rename_group(
                c.uow(), scope=KANARRA, path="Kanarra/West", name="East", actor="t", now=NOW
            )
        with pytest.raises(Forbidden):  # the root of the admin's subtree
            await people.rename_group(
                c.uow(), scope=KANARRA, path="Kanarra", name="Renamed", actor="t", now=NOW
            )
        with pytest.raises(GroupNotFound):  # under another customer
            await people.move_group(
                c.uow(), scope=KANARRA, path="Kanarra/West", parent="Other/Site", actor="t", now=NOW
            )
        with pytest.raises(GroupNotFound):  # another customer's group
            await people.rename_group(
                c.uow(), scope=KANARRA, path="Other/Site", name="Mine", actor="t", now=NOW
            )
        with pytest.raises(Forbidden):  # to the top: operator-wide only
            await people.move_group(
                c.uow(), scope=KANARRA, path="Kanarra/West", parent=None, actor="t", now=NOW
            )
        with pytest.raises(InvalidInput):
            await people.rename_group(
                c.uow(), scope=KANARRA, path="Kanarra/West", name="a/b", actor="t", now=NOW
            )
        # nothing of the refused changes happened: the tree as it was, no event
        tree = await people.group_tree(c.uow(), scope=OPERATOR)
        assert [g.path for g, _, _ in tree] == before
        top = await people.move_group(
            c.uow(), scope=OPERATOR, path="Kanarra/West", parent=None, actor="t", now=NOW
        )
        assert top.path == "West"

    before = [p for (p,) in rows(org, "SELECT path FROM groups ORDER BY path")]
    run(org, work)
    assert rows(
        org, "SELECT count(*) FROM events WHERE type LIKE 'group.%' AND type != 'group.created'"
    ) == [(1,)]


def test_two_moves_that_would_make_a_cycle_one_wins(org: str) -> None:
    """East under West's subtree and West under East's, at once: one is refused and the
    tree stays a tree (each path its parent's path and its name)."""
    run(
        org,
        lambda c: directory.create_group(
            c.uow(), scope=OPERATOR, path="Kanarra/East/Dock", actor="t", now=NOW
        ),
    )
    moves = [("Kanarra/West", "Kanarra/East/Dock"), ("Kanarra/East", "Kanarra/West/Anaheim")]

    async def work(c: Any, i: int) -> object:
        path, parent = moves[i]
        return await people.move_group(
            c.uow(), scope=KANARRA, path=path, parent=parent, actor="t", now=NOW
        )

    results = race(org, work)
    assert sum(not isinstance(r, Exception) for r in results) == 1, results
    found = {
        gid: (name, path, parent)
        for gid, name, path, parent in rows(org, "SELECT id, name, path, parent_id FROM groups")
    }
    for name, path, parent in found.values():
        expected = f"{found[parent][1]}/{name}" if parent else name
        assert path == expected


def test_a_group_created_while_its_parent_moves_lands_in_the_tree(org: str) -> None:
    async def work(c: Any, i: int) -> object:
        if i == 0:
            return await people.move_group(
                c.uow(),
                scope=KANARRA,
                path="Kanarra/West",
                parent="Kanarra/East",
                actor="t",
                now=NOW,
            )
        return await directory.create_group(
            c.uow(), scope=KANARRA, path="Kanarra/West/Anaheim/Bay", actor="t", now=NOW
        )

    results = race(org, work)
    assert not any(isinstance(r, Exception) for r in results), results
    found = {
        gid: (name, path, parent)
        for gid, name, path, parent in rows(org, "SELECT id, name, path, parent_id FROM groups")
    }
    for name, path, parent in found.values():
        assert path == (f"{found[parent][1]}/{name}" if parent else name)


# ----------------------------------------------------------------------------- users


def test_roles_and_groups_change_within_the_subtree_and_not_for_oneself(org: str) -> None:
    async def work(c: Any) -> None:
        me = "boss@kanarra.example"
        user = await people.change_role(
            c.uow(),
            scope=KANARRA,
            email="tech@kanarra.example",
            role="viewer",
            me=me,
            actor="t",
            now=NOW,
        )
        assert user.role is Role.VIEWER
        user = await people.change_user_group(
            c.uow(),
            scope=KANARRA,
            email="tech@kanarra.example",
            group="Kanarra/East",
            me=me,
            actor="t",
            now=NOW,
        )
        assert user.group_path == "Kanarra/East"
        with pytest.raises(GroupNotFound):
            await people.change_user_group(
                c.uow(),
                scope=KANARRA,
                email="tech@kanarra.example",
                group="Other",
                me=me,
                actor="t",
                now=NOW,
            )
        with pytest.raises(UserNotFound):
            await people.change_role(
                c.uow(),
                scope=KANARRA,
                email="them@other.example",
                role="admin",
                me=me,
                actor="t",
                now=NOW,
            )
        with pytest.raises(Forbidden):
            await people.change_role(
                c.uow(), scope=KANARRA, email=me, role="viewer", me=me, actor="t", now=NOW
            )
        with pytest.raises(Forbidden):
            await people.set_user_disabled(
                c.uow(), scope=KANARRA, email=me, disabled=True, me=me, actor="t", now=NOW
            )
        with pytest.raises(Forbidden):  # an installer's scope may not grant admin
            await people.change_role(
                c.uow(),
                scope=Scope(Role.INSTALLER, "Kanarra"),
                email="tech@kanarra.example",
                role="admin",
                me=None,
                actor="t",
                now=NOW,
            )
        disabled, _ = await people.set_user_disabled(
            c.uow(),
            scope=KANARRA,
            email="tech@kanarra.example",
            disabled=True,
            me=me,
            actor="t",
            now=NOW,
        )
        assert disabled.disabled

    run(org, work)
    types = [
        t
        for (t,) in rows(
            org,
            "SELECT type FROM events WHERE type IN"
            " ('user.role-changed', 'user.moved', 'user.disabled') ORDER BY id",
        )
    ]
    assert types == ["user.role-changed", "user.moved", "user.disabled"]
