"""The devices a user may see: the list, one device's page, releasing it, and a label's URL.

For an admin the list is the console's (services/fleet.py): every device of their subtree
in every state (devices of no group belong to no customer: operator-wide only), filtered,
searched, sorted, a table on a desktop with bulk actions; a device's page carries its
actions (rename, move, rotate and revoke its credentials, delete). Installers and viewers
keep their phone list; the admin actions are not shown to them, and their POSTs are refused
(AdminDep) before anything is read.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from provisiond.domain.device import DeviceState
from provisiond.domain.serials import parse_serial
from provisiond.domain.timeline import sentence
from provisiond.domain.users import Role
from provisiond.errors import (
    DeviceAlreadyClaimed,
    Forbidden,
    GroupNotFound,
    InvalidInput,
    ProvisiondError,
)
from provisiond.services import fleet, fleet_bulk
from provisiond.services.claims import ownership, visibility
from provisiond.services.credentials import revoke_credentials, rotate_credentials
from provisiond.services.devices import delete_device, list_devices
from provisiond.web.pages.rendering import (
    AdminDep,
    Page,
    PageDep,
    PageRoute,
    client_address,
    error_titles,
    field_errors,
    redirect,
)

router = APIRouter(include_in_schema=False, route_class=PageRoute)

#: What a redirect after a device's action says (``?done=``): only these words.
DONE = {
    "renamed": "Renamed.",
    "moved": "Moved.",
    "revoked": "Its credentials were revoked: it cannot connect until it gets new ones.",
}
SORT_LABELS = {"serial": "Serial", "name": "Name", "state": "State", "registered": "Registered"}


def _released(text: str) -> str | None:
    """The serial a redirect names, to say what happened (only a serial's shape)."""
    try:
        return parse_serial(text) if text else None
    except InvalidInput:
        return None


def asked_query(  # noqa: PLR0913 - the console list's filters, each optional
    q: str = "",
    cursor: str | None = None,
    group: str = "",
    state: str = "",
    model: str = "",
    profile: str = "",
    tag: str = "",
    name: str = "",
    sort: str = "serial",
    order: str = "asc",
) -> fleet.DeviceQuery:
    """The list a page asks for (its query string), as the service takes it (unchecked)."""
    return fleet.DeviceQuery(
        group, state, model, profile, (tag,), q, name, sort, order == "desc", cursor
    )


AskedDep = Annotated[fleet.DeviceQuery, Depends(asked_query)]


@router.get("/devices")
async def devices_page(
    page: PageDep, asked: AskedDep, released: str = "", deleted: str = ""
) -> Response:
    done = _released(released)
    if page.user.role is Role.ADMIN:
        return await _console_list(page, asked, done, _released(deleted))
    c = page.container
    q = asked.serial_prefix
    try:
        result = await list_devices(
            c.uow(),
            scope=page.user.scope,
            serial_prefix=q.strip() or None,
            cursor=asked.cursor,
            limit=50,
        )
    except InvalidInput as err:
        return page.render("devices.html", 422, devices=[], q=q, next_cursor=None, error=err.detail)
    return page.render(
        "devices.html", devices=result.items, q=q, next_cursor=result.next_cursor, released=done
    )


@router.get("/devices/export.csv")
async def devices_export(page: AdminDep, asked: AskedDep) -> Response:
    """The list as it is filtered, every page of it (up to EXPORT_MAX devices), as CSV."""
    c = page.container
    text = await fleet_bulk.export_fleet(c.uow, scope=fleet.console_scope(page.user), query=asked)
    return _csv(text)


def _filters(asked: fleet.DeviceQuery) -> dict[str, str]:
    values = {
        "group": asked.group,
        "state": asked.state,
        "model": asked.model,
        "profile": asked.profile,
        "tag": asked.tags[0] if asked.tags else "",
        "q": asked.serial_prefix,
        "name": asked.name,
        "sort": asked.sort,
        "order": "desc" if asked.descending else "asc",
    }
    defaults = {"sort": "serial", "order": "asc"}
    return {k: v for k, v in values.items() if v and defaults.get(k) != v}


def _sort_link(filters: dict[str, str], asked: fleet.DeviceQuery, key: str) -> str:
    """The list in ``key`` order (the other way round when it is the order shown)."""
    wanted = dict(filters, sort=key, order="asc")
    if asked.sort == key and not asked.descending:
        wanted["order"] = "desc"
    return "/devices?" + urlencode(wanted)


async def _console_list(
    page: Page, asked: fleet.DeviceQuery, released: str | None, deleted: str | None
) -> Response:
    c = page.container
    scope = fleet.console_scope(page.user)
    filters = _filters(asked)
    choices = await fleet.choices(c.uow(), scope)
    any_ = [("", "Any")]
    context: dict[str, Any] = {
        "filters": filters,
        "query": urlencode(filters),
        "options": {
            "group": any_ + [(g.path, g.path) for g in choices.groups],
            "state": any_ + [(s.value, s.value) for s in DeviceState],
            "model": any_ + [(m, m) for m in choices.models],
            "profile": any_ + [(p, p) for p in choices.profiles],
            "sort": list(SORT_LABELS.items()),
            "sort_label": SORT_LABELS.get(asked.sort, asked.sort).lower(),
            "order": [("asc", "Ascending"), ("desc", "Descending")],
        },
        "sort_links": {key: _sort_link(filters, asked, key) for key in SORT_LABELS},
        "asked": asked,
        "released": released,
        "deleted": deleted,
    }
    try:
        result = await fleet.list_fleet(c.uow(), scope=scope, query=asked)
    except InvalidInput as err:
        return page.render(
            "devices_console.html",
            422,
            devices=[],
            next_cursor=None,
            errors=field_errors(err),
            **context,
        )
    return page.render(
        "devices_console.html",
        devices=result.items,
        next_cursor=result.next_cursor,
        errors={},
        **context,
    )


@router.get("/devices/{serial}")
async def device_page(page: PageDep, serial: str, done: str = "") -> Response:
    if page.user.role is Role.ADMIN:
        return await _console_device(page, serial, message=DONE.get(done))
    c = page.container
    device, events, claims = await visibility.device_timeline(
        c.uow(), c.limiter, c.claim_policy, page.user, serial
    )
    return page.render(
        "device.html",
        device=device,
        events=events,
        claims=claims,
        may_release=ownership.may_release(page.user, device),
        now=c.now(),
        sentence=sentence,
    )


async def _console_device(
    page: Page,
    serial: str,
    *,
    message: str | None = None,
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> Response:
    """An admin's device page: its facts, timeline and actions (with a form's problems)."""
    c = page.container
    scope = fleet.console_scope(page.user)
    device, events, claims = await visibility.device_timeline(
        c.uow(), c.limiter, c.claim_policy, page.user, serial, scope=scope
    )
    return page.render(
        "device.html",
        status,
        device=device,
        events=events,
        claims=claims,
        may_release=ownership.may_release(page.user, device),
        now=c.now(),
        sentence=sentence,
        console=True,
        group_options=[("", "Choose a group")]
        + [(g.path, g.path) for g in (await fleet.choices(c.uow(), scope)).groups],
        message=message,
        errors=errors or {},
    )


_NOT_RELEASED = {Forbidden: "Not released", DeviceAlreadyClaimed: "Not released"}


async def _ask_release(page: Page, serial: str) -> Response:
    """The question: release this device? (a page of its own: no JavaScript needed)."""
    c = page.container
    found = await ownership.releasable_device(
        c.uow(), user=page.user, serial=serial, limiter=c.limiter, policy=c.claim_policy
    )
    return page.render("release.html", device=found.device, policy=found.policy.value)


@router.get("/devices/{serial}/release")
@error_titles(_NOT_RELEASED)
async def device_release_form(page: PageDep, serial: str) -> Response:
    return await _ask_release(page, serial)


@router.post("/devices/{serial}/release")
@error_titles(_NOT_RELEASED)
async def device_release(page: PageDep, serial: str) -> Response:
    form = await page.form()
    if form.get("confirm") != "yes":  # not confirmed (a stray post): ask, change nothing
        return await _ask_release(page, serial)
    c = page.container
    await ownership.release_device(
        c.uow(),
        user=page.user,
        serial=serial,
        now=c.now(),
        limiter=c.limiter,
        policy=c.claim_policy,
    )
    return redirect(f"/devices?released={quote(serial)}")


# ------------------------------------------------------------------ a device's admin actions


def _device_url(serial: str, done: str) -> str:
    return f"/devices/{quote(serial)}?done={done}"


@router.post("/devices/{serial}/rename")
async def device_rename(page: AdminDep, serial: str) -> Response:
    form = await page.form()
    c = page.container
    try:
        await fleet.rename_device(
            c.uow(),
            scope=fleet.console_scope(page.user),
            serial=serial,
            name=str(form.get("name", "")),
            actor=ownership.actor(page.user),
            now=c.now(),
        )
    except InvalidInput as err:
        return await _console_device(page, serial, status=422, errors=field_errors(err))
    return redirect(_device_url(serial, "renamed"))


@router.post("/devices/{serial}/move")
async def device_move(page: AdminDep, serial: str) -> Response:
    form = await page.form()
    c = page.container
    try:
        await fleet.move_device(
            c.uow(),
            scope=fleet.console_scope(page.user),
            serial=serial,
            group=str(form.get("group", "")),
            actor=ownership.actor(page.user),
            now=c.now(),
        )
    except (InvalidInput, GroupNotFound) as err:
        return await _console_device(page, serial, status=422, errors=_group_errors(err))
    return redirect(_device_url(serial, "moved"))


def _group_errors(err: ProvisiondError) -> dict[str, str]:
    """A group outside the subtree is one that does not exist: said on the group field."""
    if isinstance(err, GroupNotFound):
        return {"group": f"{err.detail}: choose a group of your subtree"}
    return field_errors(err)


@router.post("/devices/{serial}/rotate")
async def device_rotate(page: AdminDep, serial: str) -> Response:
    await page.form()
    c = page.container
    rotated = await rotate_credentials(
        c.uow(),
        scope=fleet.console_scope(page.user),
        serial=serial,
        kind=None,
        actor=ownership.actor(page.user),
        now=c.now(),
        sealer=c.broker_sealer,
    )
    return page.render("devices_rotated.html", serial=rotated.serial, rotated=rotated)


@router.post("/devices/{serial}/revoke")
async def device_revoke(page: AdminDep, serial: str) -> Response:
    await page.form()
    c = page.container
    await revoke_credentials(
        c.uow(),
        scope=fleet.console_scope(page.user),
        serial=serial,
        actor=ownership.actor(page.user),
        now=c.now(),
    )
    return redirect(_device_url(serial, "revoked"))


@router.get("/devices/{serial}/delete")
async def device_delete_form(page: AdminDep, serial: str) -> Response:
    c = page.container
    device = await visibility.find_visible_device(
        c.uow(),
        page.user,
        serial,
        limiter=c.limiter,
        policy=c.claim_policy,
        scope=fleet.console_scope(page.user),
    )
    return page.render("devices_delete.html", device=device)


@router.post("/devices/{serial}/delete")
async def device_delete(page: AdminDep, serial: str) -> Response:
    form = await page.form()
    if form.get("confirm") != "yes":
        return await device_delete_form(page, serial)
    c = page.container
    device = await delete_device(
        c.uow(),
        scope=fleet.console_scope(page.user),
        serial=serial,
        actor=ownership.actor(page.user),
        now=c.now(),
    )
    return redirect(f"/devices?deleted={quote(device.serial)}")


# ------------------------------------------------------------------------------ bulk actions

_BULK_TITLES = {
    "move": "Move",
    "release": "Release",
    "rotate": "Rotate the credentials of",
    "revoke": "Revoke the credentials of",
}


@router.post("/devices/bulk")
async def devices_bulk(page: AdminDep) -> Response:
    """The selected devices (``serial``, repeated; or ``all`` of the ``page`` shown): print
    their labels, export them, or — after a confirmation page — move, release, rotate or
    revoke each."""
    form = await page.form()
    action = str(form.get("action", ""))
    chosen = form.getlist("page" if form.get("all") == "page" else "serial")
    try:
        serials = fleet_bulk.parse_serials([str(s) for s in chosen])
    except InvalidInput as err:
        return page.render(
            "devices_bulk.html", 422, action="", serials=[], errors=field_errors(err)
        )
    if action == "labels":
        return redirect("/labels?" + urlencode([("serial", s) for s in serials]))
    if action == "export":
        return await _export(page, serials)
    if action not in _BULK_TITLES:
        errors = {"": "Choose what to do with the selected devices."}
        return page.render("devices_bulk.html", 422, action="", serials=[], errors=errors)
    if form.get("confirm") != "yes":
        return await _ask_bulk(page, action, serials, {})
    return await _run_bulk(page, action, serials, str(form.get("group", "")))


async def _ask_bulk(
    page: Page, action: str, serials: list[str], errors: dict[str, str], status: int = 200
) -> Response:
    c = page.container
    groups = (await fleet.choices(c.uow(), fleet.console_scope(page.user))).groups
    return page.render(
        "devices_bulk.html",
        status,
        action=action,
        title=_BULK_TITLES[action],
        serials=serials,
        group_options=[(g.path, g.path) for g in groups],
        errors=errors,
    )


async def _run_bulk(page: Page, action: str, serials: list[str], group: str) -> Response:
    c = page.container
    run = fleet_bulk.Fleet(c.uow, page.user, c.now(), c.broker_sealer)
    try:
        if action == "move":
            outcomes = await fleet_bulk.bulk_move(run, serials, group)
        elif action == "release":
            outcomes = await fleet_bulk.bulk_release(run, serials)
        elif action == "rotate":
            outcomes = await fleet_bulk.bulk_rotate(run, serials)
        else:
            outcomes = await fleet_bulk.bulk_revoke(run, serials)
    except (InvalidInput, GroupNotFound) as err:
        return await _ask_bulk(page, action, serials, _group_errors(err), 422)
    return page.render(
        "devices_bulk_done.html", action=action, title=_BULK_TITLES[action], outcomes=outcomes
    )


async def _export(page: Page, serials: list[str]) -> Response:
    c = page.container
    text = await fleet_bulk.export_devices(
        c.uow(), scope=fleet.console_scope(page.user), serials=serials
    )
    return _csv(text)


def _csv(text: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="devices.csv"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/d/{serial}")
async def label(page: PageDep, serial: str) -> Response:
    """A label's URL: the device's page for a user who may see it, the claim form (with the
    serial filled in; starting the claim is a POST) for one who may claim it."""
    c = page.container
    where = await visibility.label_target(
        c.uow(),
        c.limiter,
        c.claim_policy,
        user=page.user,
        serial_text=serial,
        address=client_address(page.request),
    )
    if where == "device":
        return redirect(f"/devices/{quote(serial)}")
    return page.render("provision.html", serial=serial, target="me", from_label=True)
