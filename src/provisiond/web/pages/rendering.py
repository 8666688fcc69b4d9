"""What every page shares: templates, the signed-in user of a request, redirects, and the one
error handler of the page routes.

Rules (docs/claiming.md): GET never changes state; every form carries the session's CSRF
token and is refused without it; the role is checked on every request, whatever the page
showed; a device that does not exist and one the user may not see get the same 404 page.

A page route raises the service's error (a :class:`ProvisiondError`); :class:`PageRoute`
renders error.html for it, its status the error's, its title and text from ``ERROR_PAGES``
(or the route's own titles, :func:`error_titles`). An error without a page there is left to
the app's problem documents, as for the API.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.datastructures import FormData
from starlette.templating import Jinja2Templates

from provisiond.domain.users import Role, User
from provisiond.errors import (
    ClaimNotFound,
    DeviceNotFound,
    Forbidden,
    ProvisiondError,
    TooManyRequests,
)
from provisiond.services import accounts
from provisiond.services.container import Container
from provisiond.web.deps import container_of
from provisiond.web.problems import retry_after

WEB = Path(__file__).parent.parent
templates = Jinja2Templates(
    env=jinja2.Environment(loader=jinja2.FileSystemLoader(WEB / "templates"), autoescape=True)
)
STATIC_DIR = WEB / "static"

SESSION_COOKIE = "provisiond_session"
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


class FormExpired(Forbidden):
    """A form posted without its CSRF token (no ``code`` of its own: it is a 403
    ``forbidden``; its page says the form expired)."""


class SignInNeeded(Exception):
    """No signed-in user: the page redirects to the sign-in form, then back here."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


# One page for "no such device" and "not yours": the same bytes whatever the serial.
NOTHING_HERE = "There is nothing here, or it is not yours to see."

#: The error page of an error, by its class (the nearest in its hierarchy): its title, and
#: its text when not the error's own detail.
ERROR_PAGES: dict[type[ProvisiondError], tuple[str, str | None]] = {
    FormExpired: ("Form expired", None),
    Forbidden: ("Not allowed", None),
    DeviceNotFound: ("Not found", NOTHING_HERE),
    ClaimNotFound: ("Not found", "There is no such claim."),
    TooManyRequests: ("Slow down", None),
}

Titles = dict[type[ProvisiondError], str]
_ROUTE_TITLES: dict[Callable[..., Any], Titles] = {}
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def error_titles(titles: Titles) -> Callable[[Endpoint], Endpoint]:
    """A route's own titles of its error pages (under ``@router.get``/``post``)."""

    def register(endpoint: Endpoint) -> Endpoint:
        _ROUTE_TITLES[endpoint] = titles
        return endpoint

    return register


def error_page_of(err: ProvisiondError, titles: Titles) -> tuple[str, str] | None:
    """The title and text of the error page of ``err``, or None: not a page's error."""
    for cls in type(err).__mro__:
        if cls in titles:
            return titles[cls], err.detail
        if cls in ERROR_PAGES:
            title, text = ERROR_PAGES[cls]
            return title, text if text is not None else err.detail
    return None


class PageRoute(APIRoute):
    """A page's route: sign-in redirects and error pages instead of problem documents."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        titles = _ROUTE_TITLES.get(self.endpoint, {})

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInNeeded as exc:
                return redirect(f"/login?next={quote(exc.next_path, safe='/')}")
            except ProvisiondError as err:
                page = error_page_of(err, titles)
                if page is None:
                    raise
                response = await _error_page(request, err.status, *page)
                response.headers.update(retry_after(err))
                return response

        return page_handler


async def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    user, csrf = None, ""
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        c = container_of(request)
        session = await accounts.session_for(c.uow(), c.session_policy, token=token, now=c.now())
        if session is not None:
            user, csrf = session.user, session.csrf
    return render(request, "error.html", status, user=user, csrf=csrf, title=title, message=message)


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("user", None)
    context.setdefault("csrf", "")
    response: HTMLResponse = templates.TemplateResponse(
        request, template, context, status_code=status
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def redirect(path: str) -> RedirectResponse:
    response = RedirectResponse(path, status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response


def with_retry_after(response: Response, err: Exception) -> Response:
    """A refusal by a rate limit says when to try again, as the API's do."""
    response.headers.update(retry_after(err))
    return response


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@dataclass(frozen=True, slots=True)
class Page:
    """The signed-in user of a page request."""

    request: Request
    container: Container
    user: User
    csrf: str
    token: str

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return render(self.request, template, status, user=self.user, csrf=self.csrf, **context)

    async def form(self) -> FormData:
        """The posted form, after its CSRF token is checked."""
        form = await self.request.form()
        given = str(form.get("csrf", ""))
        if not hmac.compare_digest(given.encode(), self.csrf.encode()):
            raise FormExpired(
                "This form has expired or did not come from "
                "provisiond. Reload the page and try again."
            )
        return form


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
    return Page(request, container, session.user, session.csrf, token)


PageDep = Annotated[Page, Depends(current_page)]


async def current_admin_page(page: PageDep) -> Page:
    """The signed-in user of a console page: an admin, or the "Not allowed" page. The services
    check the role and the subtree again on every call; this keeps installers and viewers
    from even seeing the console's forms."""
    if page.user.role is not Role.ADMIN:
        raise Forbidden("The console is for admins. Ask an admin of your group.")
    return page


#: A console page's signed-in admin.
AdminDep = Annotated[Page, Depends(current_admin_page)]

#: The console's sections, in the order of its navigation (base.html, /admin).
CONSOLE_SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("/overview", "Overview", "The onboarding funnel: registered, provisioned, claimed."),
    ("/devices", "Devices", "Every device of your subtree, in every state; bulk actions."),
    ("/import", "Import", "Register devices from a CSV or JSON lines file."),
    ("/labels", "Labels", "Print QR labels for devices, as a PDF."),
    ("/profiles", "Profiles", "How devices register themselves, and how they are claimed."),
    ("/groups", "Groups", "The organisation tree: customers, regions, sites."),
    ("/users", "Users", "Who signs in, with which role, in which group; invitations."),
    ("/models", "Models", "The catalogue of device models."),
    ("/tokens", "Tokens", "Operator API tokens for the REST API."),
    ("/webhooks", "Webhooks", "Events sent to your systems, their deliveries."),
    ("/integrations", "Integrations", "Broker accounts, The Things Stack, the outbox."),
    ("/audit", "Audit log", "Every change: who, what, when."),
)
templates.env.globals["console_sections"] = CONSOLE_SECTIONS


def field_errors(err: ProvisiondError) -> dict[str, str]:
    """The messages of an error by the form field they belong to (``""``: the whole form),
    for a form that shows each on its field."""
    out: dict[str, str] = {}
    for problem in err.problems:
        key = problem.field or ""
        out[key] = f"{out[key]}; {problem.message}" if key in out else problem.message
    if not out:
        out[""] = err.detail
    return out
