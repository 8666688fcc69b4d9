"""The console's groups and users (issue 23): the group tree of the admin's subtree (create,
rename, move), the users (invite, role, group, disable, password reset), and the public pages
an invitation or a reset link opens (set a password, then signed in).

Every change is one service call (services/people.py, services/invitations.py,
services/directory.py); the services check the role and the subtree again.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from provisiond.domain.groups import Group
from provisiond.domain.invitations import InviteSpec, IssuedLink, LinkPurpose
from provisiond.domain.limits import PASSWORD_MIN
from provisiond.domain.scope import within
from provisiond.domain.users import Role, User, parse_email
from provisiond.errors import (
    Forbidden,
    GroupExists,
    GroupNotFound,
    InvalidInput,
    LinkNotValid,
    ProvisiondError,
    TooManyRequests,
    Unauthenticated,
    UserExists,
    UserNotFound,
)
from provisiond.services import accounts, directory, invitations, people
from provisiond.services.container import Container
from provisiond.services.mail import mailer_for
from provisiond.web.deps import container_of
from provisiond.web.pages.rendering import (
    SESSION_COOKIE,
    AdminDep,
    FormExpired,
    Page,
    PageRoute,
    client_address,
    error_titles,
    field_errors,
    redirect,
    render,
)

router = APIRouter(include_in_schema=False, route_class=PageRoute)

ROLES = [(r.value, r.value) for r in Role]
LINK_COOKIE = "provisiond_link"  # CSRF of a link's form (no session yet)
FORM_ERRORS = (InvalidInput, GroupExists, GroupNotFound, UserExists, Forbidden)
# The console's error pages: a group or user that is missing or not in the admin's subtree
# (the same page for both), input no form field holds (a path's e-mail).
_TITLES: dict[type[ProvisiondError], str] = {
    GroupNotFound: "Not found",
    UserNotFound: "Not found",
    InvalidInput: "Not valid",
}


def _actor(page: Page) -> str:
    return f"user:{page.user.email}"


# ----------------------------------------------------------------------------- groups


@dataclass
class Node:
    group: Group
    devices: int
    users: int
    children: list[Node] = field(default_factory=list)


def _tree(rows: list[tuple[Group, int, int]]) -> list[Node]:
    """Nested nodes of groups listed in path order."""
    nodes = {g.id: Node(g, d, u) for g, d, u in rows}
    roots: list[Node] = []
    for node in nodes.values():
        parent = nodes.get(node.group.parent_id) if node.group.parent_id else None
        (parent.children if parent else roots).append(node)
    return roots


# What a redirect after a change says it did: a code and the group it names, never free
# text from the URL (a crafted link cannot put its words on the console's pages).
GROUP_DONE = {"created": "Created {}.", "renamed": "Renamed: now {}.", "moved": "Moved: now {}."}
USER_DONE = {
    "role": "{u.email} is now {u.role.value}.",
    "group": "{u.email} is now in {u.group_path}.",
    "disabled": "{u.email} is disabled: their sessions ended.",
    "enabled": "{u.email} is enabled.",
}


async def _groups_page(
    page: Page,
    status: int = 200,
    errors: dict[str, str] | None = None,
    done: tuple[str, str] = ("", ""),
    **context: Any,
) -> Response:
    rows = await people.group_tree(page.container.uow(), scope=page.user.scope)
    paths = [(g.path, g.path) for g, _, _ in rows]
    code, path = done
    said = GROUP_DONE[code].format(path) if code in GROUP_DONE and (path, path) in paths else ""
    return page.render(
        "people_groups.html",
        status,
        tree=_tree(rows),
        paths=paths,
        errors=errors,
        done=said,
        **context,
    )


def _group_done(code: str, path: str) -> Response:
    return redirect("/groups?" + urlencode({"done": code, "path": path}))


@router.get("/groups")
@error_titles(_TITLES)
async def groups_page(page: AdminDep, done: str = "", path: str = "") -> Response:
    return await _groups_page(page, done=(done, path))


@router.post("/groups")
@error_titles(_TITLES)
async def create_group(page: AdminDep) -> Response:
    form = await page.form()
    parent, name = str(form.get("parent", "")), str(form.get("name", ""))
    c = page.container
    try:
        child = people.parse_group_name(name)
        group, _ = await directory.create_group(
            c.uow(),
            scope=page.user.scope,
            path=f"{parent}/{child}" if parent else child,
            actor=_actor(page),
            now=c.now(),
            exist_ok=False,
        )
    except FORM_ERRORS as err:
        return await _groups_page(page, err.status, _named(err), parent=parent, name=name)
    return _group_done("created", group.path)


def _named(err: ProvisiondError) -> dict[str, str]:
    """field_errors, a group that exists shown on the name field."""
    errors = field_errors(err)
    if isinstance(err, GroupExists) and "" in errors and not err.problems:
        return {"name": "a group of this name exists here already"}
    if isinstance(err, GroupNotFound) and not err.problems:
        return {"parent": "no such group"}
    return errors


async def _group_page(
    page: Page, path: str, status: int = 200, errors: dict[str, str] | None = None, **ctx: Any
) -> Response:
    c = page.container
    group = await directory.get_group(c.uow(), scope=page.user.scope, path=path)
    rows = await people.group_tree(c.uow(), scope=page.user.scope)
    parents = [(g.path, g.path) for g, _, _ in rows if not within(g.path, group.path)]
    counts = next(((d, u) for g, d, u in rows if g.id == group.id), (0, 0))
    return page.render(
        "people_group.html",
        status,
        group=group,
        parents=parents,
        counts=counts,
        root=group.path == page.user.group_path,
        errors=errors,
        **ctx,
    )


@router.get("/groups/edit")
@error_titles(_TITLES)
async def group_page(page: AdminDep, path: str = "") -> Response:
    return await _group_page(page, path)


@router.post("/groups/rename")
@error_titles(_TITLES)
async def rename_group(page: AdminDep) -> Response:
    form = await page.form()
    path, name = str(form.get("path", "")), str(form.get("name", ""))
    c = page.container
    try:
        group = await people.rename_group(
            c.uow(), scope=page.user.scope, path=path, name=name, actor=_actor(page), now=c.now()
        )
    except FORM_ERRORS as err:
        return await _group_page(page, path, err.status, field_errors(err), name=name)
    return _group_done("renamed", group.path)


@router.post("/groups/move")
@error_titles(_TITLES)
async def move_group(page: AdminDep) -> Response:
    form = await page.form()
    path, parent = str(form.get("path", "")), str(form.get("parent", ""))
    c = page.container
    try:
        group = await people.move_group(
            c.uow(),
            scope=page.user.scope,
            path=path,
            parent=parent or None,
            actor=_actor(page),
            now=c.now(),
        )
    except FORM_ERRORS as err:
        return await _group_page(page, path, err.status, field_errors(err), parent=parent)
    return _group_done("moved", group.path)


# ----------------------------------------------------------------------------- users


@router.get("/users")
@error_titles(_TITLES)
async def users_page(page: AdminDep, cursor: str | None = None, revoked: str = "") -> Response:
    c = page.container
    try:
        found = await directory.list_users(c.uow(), scope=page.user.scope, cursor=cursor, limit=100)
    except InvalidInput:  # a cursor that is not one: the first page
        found = await directory.list_users(c.uow(), scope=page.user.scope, limit=100)
    pending = await invitations.pending_invitations(c.uow(), scope=page.user.scope, now=c.now())
    return page.render(
        "people_users.html",
        users=found.items,
        next_cursor=found.next_cursor,
        pending=pending,
        done=f"The invitation of {revoked} is revoked." if _is_email(revoked) else "",
    )


def _is_email(text: str) -> bool:
    try:
        return parse_email(text) == text
    except InvalidInput:
        return False


async def _group_options(page: Page) -> list[tuple[str, str]]:
    rows = await people.group_tree(page.container.uow(), scope=page.user.scope)
    return [(g.path, g.path) for g, _, _ in rows]


async def _invite_form(
    page: Page, status: int = 200, errors: dict[str, str] | None = None, **values: str
) -> Response:
    return page.render(
        "people_invite.html",
        status,
        roles=ROLES,
        groups=await _group_options(page),
        mail=bool(page.container.settings.smtp.host),
        hours=page.container.settings.invitations.hours,
        errors=errors,
        values=values,
    )


@router.get("/users/invite")
@error_titles(_TITLES)
async def invite_form(page: AdminDep) -> Response:
    return await _invite_form(page, role=Role.INSTALLER.value, group=page.user.group_path or "")


def _links(c: Container, request: Request) -> invitations.LinkPolicy:
    """Links start with ``public_url``, else with the address the admin reached us at."""
    base = c.settings.public_url or str(request.base_url)
    return invitations.LinkPolicy(timedelta(hours=c.settings.invitations.hours), base)


@router.post("/users/invite")
@error_titles(_TITLES)
async def invite(page: AdminDep) -> Response:
    form = await page.form()
    values = {k: str(form.get(k, "")) for k in ("email", "role", "group")}
    c = page.container
    try:
        issued = await invitations.invite_user(
            c.uow(),
            mailer_for(c.settings.smtp),
            _links(c, page.request),
            scope=page.user.scope,
            spec=InviteSpec(**values),
            actor=_actor(page),
            now=c.now(),
        )
    except FORM_ERRORS as err:
        return await _invite_form(page, err.status, field_errors(err), **values)
    return _issued(page, issued, "Invitation")


@router.post("/users/invitations/{link_id}/revoke")
@error_titles({**_TITLES, LinkNotValid: "Not found"})
async def revoke_invitation(page: AdminDep, link_id: str) -> Response:
    await page.form()
    c = page.container
    link = await invitations.revoke_invitation(
        c.uow(), scope=page.user.scope, link_id=link_id, actor=_actor(page), now=c.now()
    )
    return redirect("/users?" + urlencode({"revoked": link.email}))


def _issued(page: Page, issued: IssuedLink, what: str) -> Response:
    """The link just made: said to be mailed, or shown once to be passed on."""
    return page.render("people_link.html", issued=issued, what=what)


async def _user_page(
    page: Page,
    email: str,
    status: int = 200,
    errors: dict[str, str] | None = None,
    done: str = "",
) -> Response:
    c = page.container
    person = await people.get_user(c.uow(), scope=page.user.scope, email=email)
    return page.render(
        "people_user.html",
        status,
        person=person,
        roles=ROLES,
        groups=await _group_options(page),
        yourself=person.email == page.user.email,
        errors=errors,
        done=USER_DONE[done].format(u=person) if done in USER_DONE else "",
    )


@router.get("/users/{email}")
@error_titles(_TITLES)
async def user_page(page: AdminDep, email: str, done: str = "") -> Response:
    return await _user_page(page, email, done=done)


def _user_done(email: str, code: str) -> Response:
    return redirect(f"/users/{quote(email)}?" + urlencode({"done": code}))


@router.post("/users/{email}/role")
@error_titles(_TITLES)
async def change_role(page: AdminDep, email: str) -> Response:
    form = await page.form()
    c = page.container
    try:
        user = await people.change_role(
            c.uow(),
            scope=page.user.scope,
            email=email,
            role=str(form.get("role", "")),
            me=page.user.email,
            actor=_actor(page),
            now=c.now(),
        )
    except FORM_ERRORS as err:
        return await _user_page(page, email, err.status, _on(err, "role"))
    return _user_done(user.email, "role")


@router.post("/users/{email}/group")
@error_titles(_TITLES)
async def change_group(page: AdminDep, email: str) -> Response:
    form = await page.form()
    c = page.container
    try:
        user = await people.change_user_group(
            c.uow(),
            scope=page.user.scope,
            email=email,
            group=str(form.get("group", "")),
            me=page.user.email,
            actor=_actor(page),
            now=c.now(),
        )
    except FORM_ERRORS as err:
        return await _user_page(page, email, err.status, _on(err, "group"))
    return _user_done(user.email, "group")


def _on(err: ProvisiondError, name: str) -> dict[str, str]:
    """The error on the field ``name`` when it names none (one field per form)."""
    errors = field_errors(err)
    return {name: errors.pop("")} if set(errors) == {""} else errors


@router.post("/users/{email}/disable")
@error_titles(_TITLES)
async def disable_user(page: AdminDep, email: str) -> Response:
    return await _set_disabled(page, email, disabled=True)


@router.post("/users/{email}/enable")
@error_titles(_TITLES)
async def enable_user(page: AdminDep, email: str) -> Response:
    return await _set_disabled(page, email, disabled=False)


async def _set_disabled(page: Page, email: str, *, disabled: bool) -> Response:
    await page.form()
    c = page.container
    try:
        user, _ = await people.set_user_disabled(
            c.uow(),
            scope=page.user.scope,
            email=email,
            disabled=disabled,
            me=page.user.email,
            actor=_actor(page),
            now=c.now(),
        )
    except Forbidden as err:
        return await _user_page(page, email, err.status, {"": err.detail})
    return _user_done(user.email, "disabled" if disabled else "enabled")


@router.post("/users/{email}/reset-password")
@error_titles(_TITLES)
async def reset_password(page: AdminDep, email: str) -> Response:
    await page.form()
    c = page.container
    try:
        issued = await invitations.issue_password_reset(
            c.uow(),
            mailer_for(c.settings.smtp),
            _links(c, page.request),
            scope=page.user.scope,
            email=email,
            actor=_actor(page),
            now=c.now(),
        )
    except InvalidInput as err:
        return await _user_page(page, email, err.status, {"": err.detail})
    return _issued(page, issued, "Password reset")


# ----------------------------------------------------------------------------- links

_LINK_TITLES: dict[type[ProvisiondError], str] = {LinkNotValid: "This link no longer works"}


def _link_form(request: Request, link: Any, status: int = 200, **context: Any) -> Response:
    token = request.cookies.get(LINK_COOKIE) or secrets.token_urlsafe(24)
    response = render(
        request,
        "people_password.html",
        status,
        link=link,
        link_csrf=token,
        password_min=PASSWORD_MIN,
        **context,
    )
    _set_cookie(request, response, LINK_COOKIE, token, 3600)
    return response


def _check_link_csrf(request: Request, given: str) -> None:
    expected = request.cookies.get(LINK_COOKIE, "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise FormExpired("This form expired. Open the link again.")


@router.get("/invitations/{token}")
@error_titles(_LINK_TITLES)
async def invitation_page(request: Request, token: str) -> Response:
    c = container_of(request)
    link = await invitations.open_link(
        c.uow(), token=token, purpose=LinkPurpose.INVITATION, now=c.now()
    )
    return _link_form(request, link)


@router.post("/invitations/{token}")
@error_titles(_LINK_TITLES)
async def accept_invitation(request: Request, token: str) -> Response:
    return await _use_link(request, token, LinkPurpose.INVITATION)


@router.get("/password-reset/{token}")
@error_titles(_LINK_TITLES)
async def password_reset_page(request: Request, token: str) -> Response:
    c = container_of(request)
    link = await invitations.open_link(
        c.uow(), token=token, purpose=LinkPurpose.PASSWORD_RESET, now=c.now()
    )
    return _link_form(request, link)


@router.post("/password-reset/{token}")
@error_titles(_LINK_TITLES)
async def use_password_reset(request: Request, token: str) -> Response:
    return await _use_link(request, token, LinkPurpose.PASSWORD_RESET)


async def _use_link(request: Request, token: str, purpose: LinkPurpose) -> Response:
    """Set the password of a link, then sign its person in (or send them to sign in)."""
    c = container_of(request)
    form = await request.form()
    _check_link_csrf(request, str(form.get("link_csrf", "")))
    password, repeat = str(form.get("password", "")), str(form.get("repeat", ""))
    try:
        if purpose is LinkPurpose.INVITATION:
            user = await invitations.accept_invitation(
                c.uow(), token=token, password=password, repeat=repeat, now=c.now()
            )
        else:
            user, _ = await invitations.reset_password(
                c.uow(), token=token, password=password, repeat=repeat, now=c.now()
            )
    except (InvalidInput, UserExists) as err:
        link = await invitations.open_link(c.uow(), token=token, purpose=purpose, now=c.now())
        return _link_form(request, link, err.status, errors=field_errors(err))
    return await _signed_in(request, c, user, password)


async def _signed_in(request: Request, c: Container, user: User, password: str) -> Response:
    try:
        signed = await accounts.sign_in(
            c.uow(),
            c.limiter,
            c.session_policy,
            email=user.email,
            password=password,
            address=client_address(request),
            now=c.now(),
        )
    except (Unauthenticated, TooManyRequests):
        return redirect("/login?next=/devices")
    response = redirect("/devices")
    lifetime = int(c.session_policy.lifetime.total_seconds())
    _set_cookie(request, response, SESSION_COOKIE, signed.token, lifetime)
    response.delete_cookie(
        LINK_COOKIE, path="/", secure=c.settings.secure_cookies, httponly=True, samesite="lax"
    )
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    secure = container_of(request).settings.secure_cookies
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=secure, httponly=True, samesite="lax"
    )
