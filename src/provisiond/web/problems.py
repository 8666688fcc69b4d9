"""Every failure as an RFC 9457 problem document (application/problem+json).

One handler for ProvisiondError; request-validation errors, unknown routes and methods, and
unexpected exceptions are translated into the same shape. Expected outcomes are never a 500.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from provisiond.errors import (
    InvalidInput,
    MethodNotAllowed,
    Problem,
    ProvisiondError,
    RouteNotFound,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
)
from provisiond.web.headers import BASELINE_HEADERS

log = logging.getLogger("provisiond.http")
PROBLEM_JSON = "application/problem+json"


def retry_after(err: Exception) -> dict[str, str]:
    """``Retry-After`` for a refusal worth retrying (a rate limit, a dependency away), in
    whole seconds, at least one; nothing for any other error."""
    if not isinstance(err, Unavailable | TooManyRequests):
        return {}
    return {"Retry-After": str(max(1, math.ceil(float(err.extra.get("retry_after", 5)))))}


def problem_response(err: ProvisiondError, request: Request) -> Response:
    # the hot path answers before the middleware: the baseline headers are set here
    headers = {**BASELINE_HEADERS, **retry_after(err)}
    if isinstance(err, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="provisiond"'
    if isinstance(err, MethodNotAllowed) and "allow" in err.extra:
        headers["Allow"] = str(err.extra.pop("allow"))
    body = orjson.dumps(err.to_problem(instance=request.url.path), default=str)
    return Response(body, status_code=err.status, media_type=PROBLEM_JSON, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(loc[0] if loc else "request")


async def _provisiond_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ProvisiondError):
        raise exc
    return problem_response(exc, request)


async def _validation_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, RequestValidationError):
        raise exc
    problems = [
        Problem(str(e.get("msg", "is invalid")), field=_field(tuple(e.get("loc", ()))))
        for e in exc.errors()
    ]
    detail = "; ".join(str(p) for p in problems) or "the request is invalid"
    return problem_response(InvalidInput(detail, problems=problems), request)


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    err: ProvisiondError
    if exc.status_code == 404:
        err = RouteNotFound(f"nothing at {request.url.path}")
    elif exc.status_code == 405:
        err = MethodNotAllowed(
            f"{request.method} is not allowed on {request.url.path}",
            allow=(exc.headers or {}).get("Allow", ""),
        )
    else:
        err = ProvisiondError(str(exc.detail))
        err.status = exc.status_code  # type: ignore[misc]
    return problem_response(err, request)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unexpected failure on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(ProvisiondError("an unexpected error happened; it was logged"), request)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ProvisiondError, _provisiond_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


class ProblemItem(BaseModel):
    message: str
    field: str | None = None
    line: int | None = None


class ProblemDocument(BaseModel):
    """An RFC 9457 problem document (served as application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    retryable: bool
    instance: str | None = None
    errors: list[ProblemItem] | None = None


def responses(*errors: type[ProvisiondError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for a route: the problem documents it can answer with.

    The schema is named by reference, not given as a ``model``: FastAPI builds a pydantic
    validator for every response model of every route of every app it makes (about a third
    of an app's start-up, ~500 response fields here), and a problem is never validated on
    its way out. :func:`add_problem_schemas` puts the schema the references name into the
    document."""
    out: dict[int | str, dict[str, Any]] = {}
    always: tuple[type[ProvisiondError], ...] = (Unauthenticated, InvalidInput, Unavailable)
    for cls in (*always, *errors):
        entry = out.setdefault(cls.status, {"description": "", "content": _problem_content()})
        codes = [c for c in entry["description"].split(", ") if c]
        entry["description"] = ", ".join([*codes, cls.code])
    return out


def _problem_content() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": "#/components/schemas/ProblemDocument"}}}


@functools.cache
def _problem_schemas() -> dict[str, Any]:
    """The schemas as FastAPI renders a response model (made once: one validator)."""
    app = FastAPI()

    @app.get("/", responses={400: {"model": ProblemDocument}})
    def problem() -> None:  # pragma: no cover - never served
        return None

    return dict(app.openapi()["components"]["schemas"])


def add_problem_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """Put ``ProblemDocument`` (and what it refers to) among an OpenAPI document's schemas."""
    schemas = {
        k: copy.deepcopy(v) for k, v in _problem_schemas().items() if k.startswith("Problem")
    }
    document.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
    return document
