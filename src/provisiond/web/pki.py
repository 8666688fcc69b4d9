"""Revocation, published without authentication (as CRLs and OCSP are): each CA's CRL and
certificate, and the OCSP responder. Device certificates name these addresses
(services/certificates.py PkiUrls), so brokers and clients find them on their own.

- ``GET /crl/{ca}.crl``: the CRL (DER, ``application/pkix-crl``) with an Issuing Distribution
  Point naming this URL, as certificates' CRL distribution point names it (EMQX);
- ``GET /crl/{ca}.pem``: the complete CRL (PEM), the same as the CRL files (Mosquitto);
- ``GET /ca/{ca}.crt`` and ``/ca/{ca}.pem``: the CA's certificate (authority information
  access "CA issuers");
- ``POST /ocsp`` (``application/ocsp-request``) and ``GET /ocsp/{base64 request}``: OCSP
  (RFC 6960 appendix A), answered ``application/ocsp-response``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from fastapi import APIRouter, Request, Response

from provisiond.errors import CaNotFound, PayloadTooLarge, Unavailable
from provisiond.services import certificates, revocation
from provisiond.services.ocsp import MAX_REQUEST_BYTES, OcspAnswer
from provisiond.web.deps import ContainerDep
from provisiond.web.problems import responses

router = APIRouter(tags=["revocation"])
PKIX_CRL = "application/pkix-crl"
PKIX_CERT = "application/pkix-cert"
PEM = "application/x-pem-file"
OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"


def _content(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": description, "content": {media_type: {}}}}


def _http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


def _document(
    request: Request, body: bytes, media_type: str, tag: str, modified: datetime | None
) -> Response:
    """``body``, or 304 when the client holds this version (``tag``) already. Caches may
    keep it but must ask again before using it (a revocation may come any time)."""
    headers = {"ETag": f'"{tag}"', "Cache-Control": "public, no-cache"}
    if modified is not None:
        headers["Last-Modified"] = _http_date(modified)
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@router.get(
    "/crl/{name}.crl",
    response_class=Response,
    responses={
        **_content(
            PKIX_CRL, "The CA's CRL (DER), with an Issuing Distribution Point naming this URL"
        ),
        **responses(CaNotFound, Unavailable),
    },
)
async def crl_der(name: str, request: Request, c: ContainerDep) -> Response:
    """The CA's current CRL, as its certificates' CRL distribution point names it."""
    crl = await revocation.current_crl(c.uow(), name=name)
    return _document(
        request, revocation.der_of(crl.dp_pem), PKIX_CRL, f"{crl.number}-dp", crl.this_update
    )


@router.get(
    "/crl/{name}.pem",
    response_class=Response,
    responses={
        **_content(PEM, "The CA's complete CRL (PEM), as the CRL files hold it"),
        **responses(CaNotFound, Unavailable),
    },
)
async def crl_pem(name: str, request: Request, c: ContainerDep) -> Response:
    """The CA's current CRL in PEM, without an Issuing Distribution Point: what a broker's
    CRL file (Mosquitto's `crlfile`) should hold."""
    crl = await revocation.current_crl(c.uow(), name=name)
    return _document(request, crl.pem.encode(), PEM, str(crl.number), crl.this_update)


@router.get(
    "/ca/{name}.crt",
    response_class=Response,
    responses={**_content(PKIX_CERT, "The CA's certificate (DER)"), **responses(CaNotFound)},
)
async def ca_der(name: str, request: Request, c: ContainerDep) -> Response:
    """The CA's certificate, as its certificates' authority information access names it."""
    ca = await certificates.get_ca(c.uow(), name=name)
    return _document(
        request, revocation.der_of(ca.certificate_pem), PKIX_CERT, ca.fingerprint, None
    )


@router.get(
    "/ca/{name}.pem",
    response_class=Response,
    responses={**_content(PEM, "The CA's certificate (PEM)"), **responses(CaNotFound)},
)
async def ca_pem(name: str, request: Request, c: ContainerDep) -> Response:
    """The CA's certificate in PEM (a broker's `cafile`)."""
    ca = await certificates.get_ca(c.uow(), name=name)
    return _document(request, ca.certificate_pem.encode(), PEM, ca.fingerprint, None)


def _ocsp_response(answer: OcspAnswer, *, get: bool) -> Response:
    headers: dict[str, str] = {}
    if get and answer.cacheable and answer.next_update and answer.this_update:
        # RFC 5019 6.2: a GET answer may be cached until its nextUpdate
        age = int((answer.next_update - answer.this_update).total_seconds())
        headers = {
            "Cache-Control": f"max-age={age}, public, no-transform, must-revalidate",
            "Last-Modified": _http_date(answer.this_update),
            "Expires": _http_date(answer.next_update),
            "ETag": f'"{hashlib.sha1(answer.body).hexdigest()}"',  # noqa: S324 - RFC 5019
        }
    else:
        headers = {"Cache-Control": "no-store"}
    return Response(answer.body, media_type=OCSP_RESPONSE, headers=headers)


@router.post(
    "/ocsp",
    response_class=Response,
    responses={**_content(OCSP_RESPONSE, "The OCSP response (DER)"), **responses(PayloadTooLarge)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {OCSP_REQUEST: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def ocsp_post(request: Request, c: ContainerDep) -> Response:
    """OCSP (RFC 6960): the status of one certificate of a provisiond CA, signed by that
    CA. A request that cannot be read is answered `malformedRequest`."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REQUEST_BYTES:
            raise PayloadTooLarge(
                f"an OCSP request is at most {MAX_REQUEST_BYTES} bytes", limit=MAX_REQUEST_BYTES
            )
    return _ocsp_response(await c.ocsp.respond(bytes(body)), get=False)


@router.get(
    "/ocsp/{encoded:path}",
    response_class=Response,
    responses=_content(OCSP_RESPONSE, "The OCSP response (DER)"),
)
async def ocsp_get(encoded: str, c: ContainerDep) -> Response:
    """OCSP by GET (RFC 6960 A.1): the request, DER, base64 then URL-encoded, as the path."""
    try:
        der = base64.b64decode(encoded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        der = b""  # answered malformedRequest
    if len(der) > MAX_REQUEST_BYTES:
        der = b""
    return _ocsp_response(await c.ocsp.respond(der), get=True)
