"""Invitations and password resets: single-use, expiring links (domain/invitations.py).

An admin invites a person (e-mail, role, group of their subtree) or asks for a new password
for a user of their subtree; either makes a link with a random token (256 bits) of which only
the SHA-256 is stored. The link is mailed when a mail server is configured, else (or when the
server does not take it) returned for the admin to pass on. Opening it, the person sets a
password (the rules of domain/users.py, argon2 as every password): an invitation becomes
the account, a reset replaces the password and ends every session of the user. The link is
used up by the transaction that does so — one guarded update, so of two people using it at
the same moment exactly one gets the account — and a link that was used, expired or was
replaced by a newer one for the same person answers like one that never existed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from provisiond.domain.events import EventType, NewEvent
from provisiond.domain.groups import parse_group_path
from provisiond.domain.invitations import InviteSpec, IssuedLink, Link, LinkPurpose
from provisiond.domain.scope import Scope
from provisiond.domain.users import Role, User, check_password, parse_email, parse_role
from provisiond.errors import (
    Forbidden,
    InvalidInput,
    LinkNotValid,
    Problem,
    Unavailable,
    UserExists,
    UserNotFound,
)
from provisiond.services.hashing import hash_password_off_loop, hash_token, new_token
from provisiond.services.mail import Mail, Mailer
from provisiond.services.scoping import group_in_scope, require
from provisiond.store.uow import UnitOfWork

TOKEN_BYTES = 32  # 256 random bits
TOKEN_MAX = 128  # longer "tokens" are not looked up
LINK_GONE = (
    "This link no longer works: it was used already, it expired, or a newer one replaced it. "
    "Ask an admin of your organisation for a new one."
)


@dataclass(frozen=True, slots=True)
class LinkPolicy:
    lifetime: timedelta
    base_url: str  # the service's public address: links start with it

    def url(self, purpose: LinkPurpose, token: str) -> str:
        return f"{self.base_url.rstrip('/')}{purpose.path}{token}"


def _problem(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", problems=[Problem(message, field=field)])


def check_new_password(password: str, repeat: str) -> None:
    """The password rules, and the two fields agree (each message on its field)."""
    check_password(password)
    if password != repeat:
        raise _problem("repeat", "does not match the password")


async def invite_user(
    uow: UnitOfWork,
    mailer: Mailer,
    policy: LinkPolicy,
    *,
    scope: Scope,
    spec: InviteSpec,
    actor: str,
    now: datetime,
) -> IssuedLink:
    """An invitation to a group of the caller's subtree with no higher role than the
    caller's; an earlier unused invitation of the same e-mail stops working."""
    email = parse_email(spec.email)
    role = parse_role(spec.role)
    path = parse_group_path(spec.group)
    require(scope, Role.ADMIN, "inviting users")
    if not scope.may(role):
        raise Forbidden(f"a {scope.role} cannot invite a user with the {role} role")
    token, token_hash = new_token("", TOKEN_BYTES)
    async with uow:
        group = await group_in_scope(uow, scope, path)
        if await uow.users.find_by_email(email) is not None:
            raise UserExists(
                f"a user {email!r} already exists",
                problems=[Problem("already has an account", field="email")],
                email=email,
            )
        await uow.invitations.revoke_pending(email, LinkPurpose.INVITATION, now)
        link = Link(
            uuid.uuid4(),
            LinkPurpose.INVITATION,
            email,
            role,
            group.id,
            group.path,
            None,
            now,
            now + policy.lifetime,
            actor,
        )
        await uow.invitations.add(link, token_hash)
        await uow.events.add(
            NewEvent(
                EventType.USER_INVITED,
                now,
                actor,
                group_id=group.id,
                data={
                    "email": email,
                    "role": role.value,
                    "expires_at": link.expires_at.isoformat(),
                    "mail": mailer.configured,
                },
            )
        )
        await uow.commit()
    url = policy.url(LinkPurpose.INVITATION, token)
    mail = Mail(
        email,
        "You are invited to provisiond",
        f"{actor.removeprefix('user:')} invites you to provisiond as {role.value} of "
        f"{group.path}.\n\nSet your password here (the link works once, until "
        f"{link.expires_at:%Y-%m-%d %H:%M} UTC):\n\n{url}\n",
    )
    return await _deliver(mailer, link, token, url, mail)


async def issue_password_reset(
    uow: UnitOfWork,
    mailer: Mailer,
    policy: LinkPolicy,
    *,
    scope: Scope,
    email: str,
    actor: str,
    now: datetime,
) -> IssuedLink:
    """A link to set a new password for a user of the caller's subtree. The old password
    keeps working until the link is used; an earlier unused reset link stops working."""
    email = parse_email(email)
    require(scope, Role.ADMIN, "resetting passwords")
    async with uow:
        user = await uow.users.find_by_email(email)
        if user is None or not scope.covers(user.group_path):
            raise UserNotFound(f"no user {email!r}", email=email)
        if user.disabled:
            raise InvalidInput(f"{email} is disabled: enable the user before resetting")
        await uow.invitations.revoke_pending(email, LinkPurpose.PASSWORD_RESET, now)
        token, token_hash = new_token("", TOKEN_BYTES)
        link = Link(
            uuid.uuid4(),
            LinkPurpose.PASSWORD_RESET,
            email,
            None,
            None,
            None,
            user.id,
            now,
            now + policy.lifetime,
            actor,
        )
        await uow.invitations.add(link, token_hash)
        await uow.events.add(
            NewEvent(
                EventType.USER_PASSWORD_RESET_ISSUED,
                now,
                actor,
                group_id=user.group_id,
                data={
                    "email": email,
                    "expires_at": link.expires_at.isoformat(),
                    "mail": mailer.configured,
                },
            )
        )
        await uow.commit()
    url = policy.url(LinkPurpose.PASSWORD_RESET, token)
    mail = Mail(
        email,
        "Set a new provisiond password",
        f"An admin of provisiond asked for a new password for {email}.\n\n"
        f"Set it here (the link works once, until {link.expires_at:%Y-%m-%d %H:%M} UTC; "
        f"your sessions end when you do):\n\n{url}\n",
    )
    return await _deliver(mailer, link, token, url, mail)


async def _deliver(mailer: Mailer, link: Link, token: str, url: str, mail: Mail) -> IssuedLink:
    """Mail the link, after its transaction: a mail server that does not take it loses
    nothing (the link is shown to the admin instead)."""
    if not mailer.configured:
        return IssuedLink(link, token, url, mailed=False)
    try:
        await mailer.send(mail)
    except Unavailable as err:
        return IssuedLink(link, token, url, mailed=False, mail_problem=err.detail)
    return IssuedLink(link, token, url, mailed=True)


async def open_link(uow: UnitOfWork, *, token: str, purpose: LinkPurpose, now: datetime) -> Link:
    """The usable link of this token (to show its form), or LinkNotValid."""
    if not token or len(token) > TOKEN_MAX:
        raise LinkNotValid(LINK_GONE)
    async with uow.read():
        link = await uow.invitations.find_by_hash(hash_token(token))
        user = (
            await uow.users.find_by_id(link.user_id)
            if link is not None and link.user_id is not None
            else None
        )
    if link is None or link.purpose is not purpose or not link.usable(now):
        raise LinkNotValid(LINK_GONE)
    if purpose is LinkPurpose.PASSWORD_RESET and (user is None or user.disabled):
        raise LinkNotValid(LINK_GONE)
    return link


async def accept_invitation(
    uow: UnitOfWork, *, token: str, password: str, repeat: str, now: datetime
) -> User:
    """The account an invitation makes, with the password its person chose; the link is
    used up in the same transaction."""
    check_new_password(password, repeat)
    # a cheap look first: a token that opens nothing costs no password hash
    await open_link(uow, token=token, purpose=LinkPurpose.INVITATION, now=now)
    password_hash = await hash_password_off_loop(password)  # slow: before the transaction
    async with uow:
        link = await uow.invitations.find_by_hash(hash_token(token))
        if (
            link is None
            or link.purpose is not LinkPurpose.INVITATION
            or link.role is None
            or link.group_id is None
            or link.group_path is None
        ):
            raise LinkNotValid(LINK_GONE)
        uow.conflicts_as(UserExists(f"a user {link.email!r} already exists", email=link.email))
        if not await uow.invitations.use(link.id, now):
            raise LinkNotValid(LINK_GONE)
        if await uow.users.find_by_email(link.email) is not None:
            raise UserExists(
                f"an account for {link.email} exists already: sign in with it", email=link.email
            )
        user = User(uuid.uuid4(), link.email, link.role, link.group_id, link.group_path, now)
        await uow.users.add(user, password_hash)
        await uow.events.add(
            NewEvent(
                EventType.USER_CREATED,
                now,
                f"user:{link.email}",
                group_id=link.group_id,
                data={
                    "email": link.email,
                    "role": link.role.value,
                    "invited_by": link.created_by,
                },
            )
        )
        await uow.commit()
    return user


async def reset_password(
    uow: UnitOfWork, *, token: str, password: str, repeat: str, now: datetime
) -> tuple[User, int]:
    """Set the password a reset link is for; every session of the user ends. The user and
    how many sessions ended."""
    check_new_password(password, repeat)
    await open_link(uow, token=token, purpose=LinkPurpose.PASSWORD_RESET, now=now)
    password_hash = await hash_password_off_loop(password)
    async with uow:
        link = await uow.invitations.find_by_hash(hash_token(token))
        if link is None or link.purpose is not LinkPurpose.PASSWORD_RESET or link.user_id is None:
            raise LinkNotValid(LINK_GONE)
        user = await uow.users.find_by_id(link.user_id)
        if user is None or user.disabled or not await uow.invitations.use(link.id, now):
            raise LinkNotValid(LINK_GONE)
        await uow.users.set_password_hash(user.id, password_hash)
        ended = await uow.sessions.delete_for_user(user.id)
        await uow.events.add(
            NewEvent(
                EventType.USER_PASSWORD_CHANGED,
                now,
                f"user:{user.email}",
                group_id=user.group_id,
                data={"email": user.email, "by": "reset link", "sessions_ended": ended},
            )
        )
        await uow.commit()
    return user, ended


async def revoke_invitation(
    uow: UnitOfWork, *, scope: Scope, link_id: str, actor: str, now: datetime
) -> Link:
    """Take back an invitation into the caller's subtree that was not used yet."""
    require(scope, Role.ADMIN, "revoking invitations")
    try:
        wanted = uuid.UUID(link_id)
    except ValueError:
        raise LinkNotValid("no such invitation") from None
    async with uow:
        link = await uow.invitations.find_by_id(wanted)
        if (
            link is None
            or link.purpose is not LinkPurpose.INVITATION
            or not scope.covers(link.group_path)
            or not await uow.invitations.revoke(link.id, now)
        ):
            raise LinkNotValid("no such invitation, or it was used or revoked already")
        await uow.events.add(
            NewEvent(
                EventType.USER_INVITATION_REVOKED,
                now,
                actor,
                group_id=link.group_id,
                data={"email": link.email},
            )
        )
        await uow.commit()
    return link


async def pending_invitations(uow: UnitOfWork, *, scope: Scope, now: datetime) -> list[Link]:
    """The invitations into the caller's subtree that still work, newest first."""
    require(scope, Role.ADMIN, "listing invitations")
    async with uow.read():
        return await uow.invitations.pending(scope.group_path, now)
