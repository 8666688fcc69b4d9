"""Claiming on a phone: scan or type a serial, prove possession, name and place the device.
Usable without JavaScript for the typed-serial path; the QR reader and the live claim page
(server-sent events) add JavaScript on top."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from provisiond.domain.claims import ClaimProof, ClaimStatus
from provisiond.errors import (
    ClaimClosed,
    ClaimInProgress,
    ClaimNotFound,
    DeviceAlreadyClaimed,
    Forbidden,
    InvalidInput,
    TooManyRequests,
)
from provisiond.services.claim_events import ClaimEvent, follow_claim
from provisiond.services.claims import claiming, proofs
from provisiond.services.codes import scanned_serial
from provisiond.services.metrics import counted_claim
from provisiond.web.pages.rendering import (
    SECURITY_HEADERS,
    Page,
    PageDep,
    PageRoute,
    client_address,
    error_titles,
    redirect,
    with_retry_after,
)

router = APIRouter(include_in_schema=False, route_class=PageRoute)

KEEPALIVE_SECONDS = 15.0


def _claimer(page: Page) -> None:
    if not page.user.may_claim:
        raise Forbidden(
            "Your role may look at devices but not register them. Ask an admin of your group."
            if not page.user.role.may_claim
            else page.user.why_no_claims[:1].upper() + page.user.why_no_claims[1:] + "."
        )


@router.get("/provision")
async def provision_form(page: PageDep, serial: str = "") -> Response:
    _claimer(page)
    return page.render("provision.html", serial=serial, target="me")


@router.post("/provision")
async def provision(page: PageDep) -> Response:
    _claimer(page)
    form = await page.form()
    c = page.container
    raw = str(form.get("serial", ""))
    target = str(form.get("target", "me")) or "me"
    try:
        serial = scanned_serial(raw) if raw.strip() else raw
        with counted_claim(c.counts, "start"):
            started = await claiming.start_claim(
                c.uow(),
                c.limiter,
                c.claim_policy,
                user=page.user,
                serial=serial,
                target=target,
                address=client_address(page.request),
                now=c.now(),
            )
    except (InvalidInput, ClaimInProgress, DeviceAlreadyClaimed, TooManyRequests) as err:
        return with_retry_after(
            page.render(
                "provision.html",
                err.status,
                serial=raw,
                target=target,
                error=err.detail,
                problems={p.field: p.message for p in err.problems if p.field},
            ),
            err,
        )
    return redirect(f"/claims/{started.claim.id}")


def _claim_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ClaimNotFound("no such claim") from None


async def _claim_page(page: Page, claim_id: uuid.UUID, status: int = 200, **extra: Any) -> Response:
    c = page.container
    view = await claiming.view_claim(c.uow(), page.user, claim_id)
    now = c.now()
    claim = view.claim
    return page.render(
        "claim.html",
        status,
        claim=claim,
        view=view,
        shown=claim.shown_status(now),
        seconds_left=claim.seconds_left(now),
        Status=ClaimStatus,
        Proof=ClaimProof,
        **extra,
    )


@router.get("/claims/{claim_id}")
async def claim_page(page: PageDep, claim_id: str) -> Response:
    return await _claim_page(page, _claim_id(claim_id))


@router.post("/claims/{claim_id}/proof")
async def claim_proof(page: PageDep, claim_id: str) -> Response:
    _claimer(page)
    cid = _claim_id(claim_id)
    form = await page.form()
    c = page.container
    try:
        with counted_claim(c.counts, "prove"):
            await proofs.prove(
                c.uow(),
                c.limiter,
                c.hub,
                c.claim_policy,
                user=page.user,
                claim_id=cid,
                code=str(form.get("code", "")),
                now=c.now(),
            )
    except (InvalidInput, ClaimClosed, TooManyRequests) as err:
        typed = str(form.get("code", ""))[:256]  # kept in its field, to correct it
        page_again = await _claim_page(
            page, cid, err.status, proof_error=err.detail, typed_code=typed
        )
        return with_retry_after(page_again, err)
    return redirect(f"/claims/{cid}")


@router.post("/claims/{claim_id}/finish")
async def claim_finish(page: PageDep, claim_id: str) -> Response:
    _claimer(page)
    cid = _claim_id(claim_id)
    form = await page.form()
    c = page.container
    values = {k: str(form.get(k, "")) for k in ("name", "group", "model", "model_confirmed")}
    try:
        with counted_claim(c.counts, "finish"):
            serial = await claiming.finish_claim(
                c.uow(),
                c.hub,
                user=page.user,
                claim_id=cid,
                name=values["name"],
                group_id=values["group"],
                model=values["model"],
                model_confirmed=values["model_confirmed"],
                now=c.now(),
            )
    except (InvalidInput, ClaimClosed, DeviceAlreadyClaimed) as err:
        return await _claim_page(
            page,
            cid,
            err.status,
            error=err.detail,
            values=values,
            problems={p.field: p.message for p in err.problems if p.field},
        )
    return redirect(f"/devices/{quote(serial)}")


@router.post("/claims/{claim_id}/cancel")
async def claim_cancel(page: PageDep, claim_id: str) -> Response:
    cid = _claim_id(claim_id)
    await page.form()
    c = page.container
    with counted_claim(c.counts, "cancel"):
        await claiming.cancel_claim(c.uow(), c.hub, user=page.user, claim_id=cid, now=c.now())
    return redirect("/provision")


def _sse(event: ClaimEvent) -> bytes:
    if event is None:
        return b": keep-alive\n\n"
    name, data = event
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@router.get("/claims/{claim_id}/events")
@error_titles({TooManyRequests: "Too many pages open"})
async def claim_events(page: PageDep, claim_id: str) -> Response:
    """Server-sent events of this claim only (services/claim_events.py)."""
    cid = _claim_id(claim_id)
    c = page.container
    await claiming.get_claim(c.uow(), page.user, cid)  # only the claimer may listen
    release = c.hub.hold_stream(page.user.id, c.settings.limits.event_streams_per_user)

    async def stream() -> AsyncIterator[bytes]:
        events = follow_claim(
            c.uow(), c.hub, claim_id=cid, keepalive_seconds=KEEPALIVE_SECONDS, clock=c.now
        )
        async with aclosing(events):  # unsubscribed as soon as the page goes
            async for event in events:
                yield _sse(event)

    headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
    return _HeldStream(stream(), release, media_type="text/event-stream", headers=headers)


class _HeldStream(StreamingResponse):
    """A stream holding one of its user's places (event_streams_per_user) until it ends,
    however it ends: the response is always called once returned, the generator may never
    start."""

    def __init__(
        self, content: AsyncIterator[bytes], release: Callable[[], None], **kwargs: Any
    ) -> None:
        super().__init__(content, **kwargs)
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()
