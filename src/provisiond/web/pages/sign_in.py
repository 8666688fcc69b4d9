"""Signing in and out, the home page's redirect and the web app manifest."""

from __future__ import annotations

import hmac
import secrets

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from provisiond.errors import InvalidInput, TooManyRequests, Unauthenticated
from provisiond.services import accounts
from provisiond.web.deps import container_of
from provisiond.web.pages.rendering import (
    SESSION_COOKIE,
    FormExpired,
    PageDep,
    PageRoute,
    client_address,
    redirect,
    render,
    with_retry_after,
)

router = APIRouter(include_in_schema=False, route_class=PageRoute)

LOGIN_COOKIE = "provisiond_login"  # CSRF for the sign-in form (no session yet)


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/devices"


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
        raise FormExpired("The sign-in form expired. Reload the page and try again.")
    try:
        signed = await accounts.sign_in(
            c.uow(),
            c.limiter,
            c.session_policy,
            email=email,
            password=str(form.get("password", "")),
            address=client_address(request),
            now=c.now(),
        )
    except (Unauthenticated, TooManyRequests, InvalidInput) as err:
        # the form again, with what went wrong (401, 429 or 422)
        return with_retry_after(
            render(
                request,
                "login.html",
                err.status,
                login_csrf=expected,
                next=next_path,
                email=email,
                error=err.detail,
            ),
            err,
        )
    response = redirect(next_path)
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
    response = redirect("/login")
    _delete_cookie(page.request, response, SESSION_COOKIE)
    return response


@router.get("/")
async def home(request: Request) -> Response:
    return redirect("/devices" if request.cookies.get(SESSION_COOKIE) else "/login")


@router.get("/manifest.webmanifest")
async def manifest() -> Response:
    body = {
        "name": "provisiond",
        "short_name": "provisiond",
        "start_url": "/provision",
        "scope": "/",
        "display": "standalone",
        "background_color": "#ffffff",
        "theme_color": "#0a58ca",
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
