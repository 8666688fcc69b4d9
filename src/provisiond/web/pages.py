"""The pages people use on a phone: sign in, scan a label, prove possession, claim; browse
devices; release. Server-rendered (Jinja2, Bootstrap), usable without JavaScript for the
typed-serial path; the QR reader and the live claim page add JavaScript on top.

Rules (docs/claiming.md): GET never changes state; every form carries the session's CSRF
token and is refused without it; the role is checked on every request, whatever the page
showed; a device that does not exist and one the user may not see get the same 404 page.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import jinja2
import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.datastructures import FormData
from starlette.templating import Jinja2Templates
from starlette.types import Receive, Scope, Send

from provisiond.domain.claims import ClaimProof, ClaimStatus
from provisiond.domain.users import Role, User
from provisiond.errors import (
    ClaimClosed,
    ClaimInProgress,
    ClaimNotFound,
    DeviceAlreadyClaimed,
    DeviceNotFound,
    Forbidden,
    InvalidInput,
    TooManyRequests,
    Unauthenticated,
)
from provisiond.services import accounts
from provisiond.services.claims import claiming, overview, ownership, proofs, visibility
from provisiond.services.codes import scanned_serial
from provisiond.services.devices import list_devices
from provisiond.store.sessions import StoredSession
from provisiond.web.deps import Container, container_of
from provisiond.web.problems import retry_after

router = APIRouter(include_in_schema=False)
HERE = Path(__file__).parent
templates = Jinja2Templates(
    env=jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
)
STATIC_DIR = HERE / "static"

SESSION_COOKIE = "provisiond_session"
LOGIN_COOKIE = "provisiond_login"  # CSRF for the sign-in form (no session yet)
KEEPALIVE_SECONDS = 15.0
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; "
        "media-src 'self' blob: mediastream:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Permissions-Policy": "camera=(self)",
}


class PageError(Exception):
    """Render an error page (status, message) instead of the page asked for."""

    def __init__(
        self, status: int, title: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.headers = headers or {}


class SignInNeeded(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


@dataclass(frozen=True, slots=True)
class Page:
    """The signed-in user of a page request."""

    request: Request
    container: Container
    session: StoredSession
    token: str

    @property
    def user(self) -> User:
        return self.session.user

    @property
    def csrf(self) -> str:
        return self.session.csrf

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return render(self.request, template, status, user=self.user, csrf=self.csrf, **context)

    async def form(self) -> FormData:
        """The posted form, after its CSRF token is checked."""
        form = await self.request.form()
        given = str(form.get("csrf", ""))
        if not hmac.compare_digest(given.encode(), self.csrf.encode()):
            raise PageError(
                403,
                "Form expired",
                "This form has expired or did not come from "
                "provisiond. Reload the page and try again.",
            )
        return form


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("user", None)
    context.setdefault("csrf", "")
    response: HTMLResponse = templates.TemplateResponse(
        request, template, context, status_code=status
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _redirect(path: str) -> RedirectResponse:
    response = RedirectResponse(path, status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response


async def current_page(request: Request) -> Page:
    container = container_of(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    session = (
        await accounts.session_for(
            container.uow(), container.session_policy, token=token, now=container.now()
        )
        if token
        else None
    )
    if session is None:
        path = request.url.path
        raise SignInNeeded(path + (f"?{request.url.query}" if request.url.query else ""))
    return Page(request, container, session, token)


PageDep = Annotated[Page, Depends(current_page)]


def install(app: FastAPI) -> None:
    """Error pages for page routes: sign-in redirects and rendered errors."""
    app.add_exception_handler(SignInNeeded, _sign_in)
    app.add_exception_handler(PageError, _page_error)


async def _sign_in(_: Request, exc: Exception) -> Response:
    next_path = exc.next_path if isinstance(exc, SignInNeeded) else "/devices"
    return _redirect(f"/login?next={quote(next_path, safe='/')}")


async def _page_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, PageError):
        raise exc
    response = await _error_page(request, exc.status, exc.title, exc.message)
    response.headers.update(exc.headers)
    return response


async def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    user, csrf = None, ""
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        c = container_of(request)
        session = await accounts.session_for(c.uow(), c.session_policy, token=token, now=c.now())
        if session is not None:
            user, csrf = session.user, session.csrf
    return render(request, "error.html", status, user=user, csrf=csrf, title=title, message=message)


def _retry_after(response: Response, err: Exception) -> Response:
    """A refusal by a rate limit says when to try again, as the API's do."""
    response.headers.update(retry_after(err))
    return response


def not_found() -> PageError:
    # One page for "no such device" and "not yours": the same bytes whatever the serial.
    return PageError(404, "Not found", "There is nothing here, or it is not yours to see.")


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/devices"


# ----------------------------------------------------------------------------- sign-in


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", login_csrf=token, next=_safe_next(next), email="")
    _set_cookie(request, response, LOGIN_COOKIE, token, max_age=3600)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    c = container_of(request)
    form = await request.form()
    email = str(form.get("email", ""))
    next_path = _safe_next(str(form.get("next", "")))
    given = str(form.get("login_csrf", ""))
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise PageError(
            403, "Form expired", "The sign-in form expired. Reload the page and try again."
        )
    try:
        signed = await accounts.sign_in(
            c.uow(),
            c.limiter,
            c.session_policy,
            email=email,
            password=str(form.get("password", "")),
            address=_address(request),
            now=c.now(),
        )
    except (Unauthenticated, TooManyRequests, InvalidInput) as err:
        status = (
            429
            if isinstance(err, TooManyRequests)
            else 401
            if isinstance(err, Unauthenticated)
            else 422
        )
        return _retry_after(
            render(
                request,
                "login.html",
                status,
                login_csrf=expected,
                next=next_path,
                email=email,
                error=err.detail,
            ),
            err,
        )
    response = _redirect(next_path)
    _set_cookie(
        request,
        response,
        SESSION_COOKIE,
        signed.token,
        max_age=int(c.session_policy.lifetime.total_seconds()),
    )
    _delete_cookie(request, response, LOGIN_COOKIE)
    return response


def _delete_cookie(request: Request, response: Response, name: str) -> None:
    """Expire a cookie with the flags it was set with."""
    response.delete_cookie(
        name,
        path="/",
        secure=container_of(request).settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    secure = container_of(request).settings.secure_cookies
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=secure, httponly=True, samesite="lax"
    )


@router.post("/logout")
async def logout(page: PageDep) -> Response:
    await page.form()
    c = page.container
    await accounts.sign_out(c.uow(), token=page.token, now=c.now())
    response = _redirect("/login")
    _delete_cookie(page.request, response, SESSION_COOKIE)
    return response


@router.get("/")
async def home(request: Request) -> Response:
    return _redirect("/devices" if request.cookies.get(SESSION_COOKIE) else "/login")


# ----------------------------------------------------------------------------- claiming


def _claimer(page: Page) -> None:
    if not page.user.role.may_claim:
        raise PageError(
            403,
            "Not allowed",
            "Your role may look at devices but not register them. Ask an admin of your group.",
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
        started = await claiming.start_claim(
            c.uow(),
            c.limiter,
            c.claim_policy,
            user=page.user,
            serial=serial,
            target=target,
            address=_address(page.request),
            now=c.now(),
        )
    except DeviceNotFound:
        raise not_found() from None
    except Forbidden as err:
        raise PageError(403, "Not allowed", err.detail) from None
    except (InvalidInput, ClaimInProgress, DeviceAlreadyClaimed, TooManyRequests) as err:
        return _retry_after(
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
    if started.claim is None:
        return _redirect(f"/devices/{quote(started.serial)}")
    return _redirect(f"/claims/{started.claim.id}")


def _claim_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise PageError(404, "Not found", "There is no such claim.") from None


async def _claim_page(page: Page, claim_id: uuid.UUID, status: int = 200, **extra: Any) -> Response:
    c = page.container
    try:
        view = await claiming.view_claim(c.uow(), page.user, claim_id)
    except ClaimNotFound:
        raise PageError(404, "Not found", "There is no such claim.") from None
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
    except ClaimNotFound:
        raise PageError(404, "Not found", "There is no such claim.") from None
    except (InvalidInput, ClaimClosed, TooManyRequests) as err:
        return _retry_after(await _claim_page(page, cid, err.status, proof_error=err.detail), err)
    return _redirect(f"/claims/{cid}")


@router.post("/claims/{claim_id}/finish")
async def claim_finish(page: PageDep, claim_id: str) -> Response:
    _claimer(page)
    cid = _claim_id(claim_id)
    form = await page.form()
    c = page.container
    values = {k: str(form.get(k, "")) for k in ("name", "group", "model")}
    try:
        serial = await claiming.finish_claim(
            c.uow(),
            c.hub,
            user=page.user,
            claim_id=cid,
            name=values["name"],
            group_id=values["group"],
            model=values["model"],
            now=c.now(),
        )
    except ClaimNotFound:
        raise PageError(404, "Not found", "There is no such claim.") from None
    except Forbidden as err:
        raise PageError(403, "Not allowed", err.detail) from None
    except (InvalidInput, ClaimClosed, DeviceAlreadyClaimed) as err:
        return await _claim_page(
            page,
            cid,
            err.status,
            error=err.detail,
            values=values,
            problems={p.field: p.message for p in err.problems if p.field},
        )
    return _redirect(f"/devices/{quote(serial)}")


@router.post("/claims/{claim_id}/cancel")
async def claim_cancel(page: PageDep, claim_id: str) -> Response:
    cid = _claim_id(claim_id)
    await page.form()
    c = page.container
    try:
        await claiming.cancel_claim(c.uow(), c.hub, user=page.user, claim_id=cid, now=c.now())
    except ClaimNotFound:
        raise PageError(404, "Not found", "There is no such claim.") from None
    return _redirect("/provision")


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@router.get("/claims/{claim_id}/events")
async def claim_events(page: PageDep, claim_id: str) -> Response:
    """Server-sent events of this claim only: ``state`` first (status and seconds left, by
    the server's clock), then ``proven``, ``completed``, ``failed``, ``cancelled`` or
    ``expired`` as they happen."""
    cid = _claim_id(claim_id)
    c = page.container
    try:
        await claiming.get_claim(c.uow(), page.user, cid)  # only the claimer may listen
    except ClaimNotFound:
        raise PageError(404, "Not found", "There is no such claim.") from None
    try:
        release = c.hub.hold_stream(page.user.id, c.settings.event_streams_per_user)
    except TooManyRequests as err:
        raise PageError(429, "Too many pages open", err.detail, retry_after(err)) from None

    async def stream() -> AsyncIterator[bytes]:
        with c.hub.subscribe(cid) as queue:
            # subscribed first, then read: an event between the two is not missed
            async with c.uow().read() as uow:
                claim = await uow.claims.find(cid)
            if claim is None:
                return
            now = c.now()
            status = claim.shown_status(now)
            yield _sse("state", {"status": status.value, "seconds_left": claim.seconds_left(now)})
            if status not in (ClaimStatus.OPEN, ClaimStatus.PROVEN):
                return
            while True:
                left = (claim.expires_at - c.now()).total_seconds()
                if left <= 0:
                    yield _sse("expired", {})
                    return
                try:
                    event = await asyncio.wait_for(
                        queue.get(), timeout=min(KEEPALIVE_SECONDS, left)
                    )
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                yield _sse(str(event["event"]), event)
                if event["event"] in ("completed", "failed", "cancelled"):
                    return

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


# ----------------------------------------------------------------------------- devices


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
    try:
        device, events, claims = await visibility.device_timeline(
            c.uow(), c.limiter, c.claim_policy, page.user, serial
        )
    except DeviceNotFound:
        raise not_found() from None
    except TooManyRequests as err:
        raise PageError(429, "Slow down", err.detail, headers=retry_after(err)) from None
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
async def device_release(page: PageDep, serial: str) -> Response:
    await page.form()
    c = page.container
    try:
        await ownership.release_device(
            c.uow(),
            user=page.user,
            serial=serial,
            now=c.now(),
            limiter=c.limiter,
            policy=c.claim_policy,
        )
    except DeviceNotFound:
        raise not_found() from None
    except TooManyRequests as err:
        raise PageError(429, "Slow down", err.detail, headers=retry_after(err)) from None
    except (Forbidden, DeviceAlreadyClaimed) as err:
        raise PageError(err.status, "Not released", err.detail) from None
    return _redirect("/devices")


@router.get("/d/{serial}")
async def label(page: PageDep, serial: str) -> Response:
    """A label's URL: the device's page for a user who may see it, the claim form (with the
    serial filled in; starting the claim is a POST) for one who may claim it."""
    c = page.container
    try:
        where = await visibility.label_target(
            c.uow(),
            c.limiter,
            c.claim_policy,
            user=page.user,
            serial_text=serial,
            address=_address(page.request),
        )
    except DeviceNotFound:
        raise not_found() from None
    except TooManyRequests as err:
        raise PageError(429, "Slow down", err.detail, headers=retry_after(err)) from None
    if where == "device":
        return _redirect(f"/devices/{quote(serial)}")
    return page.render("provision.html", serial=serial, target="me", from_label=True)


@router.get("/overview")
async def overview_page(page: PageDep) -> Response:
    c = page.container
    try:
        view = await overview.overview(c.uow(), user=page.user, now=c.now())
    except Forbidden as err:
        raise PageError(403, "Not allowed", err.detail) from None
    return page.render("overview.html", view=view, chart=_funnel_chart(view))


def _funnel_chart(view: overview.Overview) -> dict[str, Any]:
    """Polylines of the three cumulative series, in a 300x120 SVG viewBox."""
    top = max([*view.registered, *view.provisioned, *view.claimed, 1])
    n = len(view.days)

    def points(series: list[int]) -> str:
        return " ".join(
            f"{i * 300 / max(n - 1, 1):.1f},{118 - v * 110 / top:.1f}" for i, v in enumerate(series)
        )

    return {
        "top": top,
        "registered": points(view.registered),
        "provisioned": points(view.provisioned),
        "claimed": points(view.claimed),
    }


@router.get("/manifest.webmanifest")
async def manifest() -> Response:
    body = {
        "name": "provisiond",
        "short_name": "provisiond",
        "start_url": "/provision",
        "scope": "/",
        "display": "standalone",
        "background_color": "#ffffff",
        "theme_color": "#0d6efd",
        "description": "Claim and onboard devices",
        "icons": [
            {
                "src": "/static/icon.svg",
                "sizes": "any",
                "type": "image/svg+xml",
                "purpose": "any maskable",
            }
        ],
    }
    return Response(orjson.dumps(body), media_type="application/manifest+json")
