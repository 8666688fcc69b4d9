"""The devices a user may see: the list, one device's page, releasing it, and a label's URL."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import Response

from provisiond.domain.users import Role
from provisiond.errors import DeviceAlreadyClaimed, Forbidden, InvalidInput
from provisiond.services.claims import ownership, visibility
from provisiond.services.devices import list_devices
from provisiond.web.pages.rendering import (
    PageDep,
    PageRoute,
    client_address,
    error_titles,
    redirect,
)

router = APIRouter(include_in_schema=False, route_class=PageRoute)


@router.get("/devices")
async def devices_page(page: PageDep, q: str = "", cursor: str | None = None) -> Response:
    c = page.container
    try:
        result = await list_devices(
            c.uow(), scope=page.user.scope, serial_prefix=q.strip() or None, cursor=cursor, limit=50
        )
    except InvalidInput as err:
        return page.render("devices.html", 422, devices=[], q=q, next_cursor=None, error=err.detail)
    return page.render("devices.html", devices=result.items, q=q, next_cursor=result.next_cursor)


@router.get("/devices/{serial}")
async def device_page(page: PageDep, serial: str) -> Response:
    c = page.container
    device, events, claims = await visibility.device_timeline(
        c.uow(), c.limiter, c.claim_policy, page.user, serial
    )
    may_release = (
        device.owner_user_id == page.user.id or page.user.role is Role.ADMIN
    ) and device.state == "claimed"
    return page.render(
        "device.html",
        device=device,
        events=events,
        claims=claims,
        may_release=may_release,
        now=c.now(),
    )


@router.post("/devices/{serial}/release")
@error_titles({Forbidden: "Not released", DeviceAlreadyClaimed: "Not released"})
async def device_release(page: PageDep, serial: str) -> Response:
    await page.form()
    c = page.container
    await ownership.release_device(
        c.uow(),
        user=page.user,
        serial=serial,
        now=c.now(),
        limiter=c.limiter,
        policy=c.claim_policy,
    )
    return redirect("/devices")


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
