"""AWS IoT fleet provisioning's MQTT API, as devices speak it (sans-IO): topics, request and
answer payloads in JSON or CBOR, and AWS's error payload.

The operations (``{fmt}`` is ``json`` or ``cbor``; the answer comes on the request topic
plus ``/accepted`` or ``/rejected``, in the request's format):

- ``$aws/certificates/create/{fmt}`` — CreateKeysAndCertificate (the payload is ignored);
- ``$aws/certificates/create-from-csr/{fmt}`` — CreateCertificateFromCsr
  (``certificateSigningRequest``);
- ``$aws/provisioning-templates/{templateName}/provision/{fmt}`` — RegisterThing
  (``certificateOwnershipToken``, ``parameters``).

A refusal is ``{"statusCode": int, "errorCode": str, "errorMessage": str}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from provisiond.protocols import aws_cbor

TEMPLATE_NAME = re.compile(r"[0-9A-Za-z_-]{1,36}")  # AWS's template name pattern
PARAMETERS_MAX = 64  # parameters in one RegisterThing (AWS: a template's own limit)
PARAMETER_KEY_MAX = 2048  # AWS's limits on a parameter's key and value
PARAMETER_VALUE_MAX = 4096
_CREATE = "$aws/certificates/create/"
_CREATE_FROM_CSR = "$aws/certificates/create-from-csr/"
_TEMPLATES = "$aws/provisioning-templates/"
ACCEPTED, REJECTED = "accepted", "rejected"


class Operation(StrEnum):
    CREATE_KEYS_AND_CERTIFICATE = "CreateKeysAndCertificate"
    CREATE_CERTIFICATE_FROM_CSR = "CreateCertificateFromCsr"
    REGISTER_THING = "RegisterThing"


class Format(StrEnum):
    JSON = "json"
    CBOR = "cbor"


@dataclass(frozen=True, slots=True)
class Topic:
    """A request topic: the operation, its payload format and (RegisterThing) template."""

    operation: Operation
    format: Format
    template: str | None = None

    @property
    def name(self) -> str:
        if self.operation is Operation.CREATE_KEYS_AND_CERTIFICATE:
            return f"{_CREATE}{self.format}"
        if self.operation is Operation.CREATE_CERTIFICATE_FROM_CSR:
            return f"{_CREATE_FROM_CSR}{self.format}"
        return f"{_TEMPLATES}{self.template}/provision/{self.format}"

    def answer(self, accepted: bool) -> str:
        return f"{self.name}/{ACCEPTED if accepted else REJECTED}"


def parse_topic(name: str) -> Topic | None:
    """The request a topic names, or None when it names none."""
    head, _, last = name.rpartition("/")
    try:
        fmt = Format(last)
    except ValueError:
        return None
    head += "/"
    if head == _CREATE:
        return Topic(Operation.CREATE_KEYS_AND_CERTIFICATE, fmt)
    if head == _CREATE_FROM_CSR:
        return Topic(Operation.CREATE_CERTIFICATE_FROM_CSR, fmt)
    if head.startswith(_TEMPLATES) and head.endswith("/provision/"):
        template = head[len(_TEMPLATES) : -len("/provision/")]
        if TEMPLATE_NAME.fullmatch(template):
            return Topic(Operation.REGISTER_THING, fmt, template)
    return None


def answer_filter(name: str) -> Topic | None:
    """The request whose answers a SUBSCRIBE filter receives — ``…/accepted``,
    ``…/rejected`` or ``…/+`` — or None when it is no answer topic of this API."""
    head, _, last = name.rpartition("/")
    if last not in (ACCEPTED, REJECTED, "+"):
        return None
    return parse_topic(head)


def filter_matches(name: str, topic: str) -> bool:
    """Whether an answer filter :func:`answer_filter` accepted receives ``topic``."""
    if name.endswith("/+"):
        head, _, last = topic.rpartition("/")
        return head == name[:-2] and last in (ACCEPTED, REJECTED)
    return name == topic


class PayloadError(ValueError):
    """A request payload that cannot be read (answered ``InvalidPayload``)."""


def decode(fmt: Format, payload: bytes) -> dict[str, Any]:
    """A request payload as a map; an empty payload is an empty map."""
    if not payload.strip():
        return {}
    try:
        value = orjson.loads(payload) if fmt is Format.JSON else aws_cbor.decode(payload)
    except (orjson.JSONDecodeError, aws_cbor.CborError) as err:
        raise PayloadError(f"the payload is not {fmt.value.upper()}: {err}") from None
    if not isinstance(value, dict):
        raise PayloadError("the payload is not an object")
    return value


def encode(fmt: Format, body: dict[str, Any]) -> bytes:
    return orjson.dumps(body) if fmt is Format.JSON else aws_cbor.encode(body)


@dataclass(frozen=True, slots=True)
class RegisterThing:
    token: str
    parameters: dict[str, str] = field(default_factory=dict)


def csr_of(body: dict[str, Any]) -> str:
    csr = body.get("certificateSigningRequest")
    if not isinstance(csr, str) or not csr.strip():
        raise PayloadError("certificateSigningRequest is missing")
    return csr


def register_thing_of(body: dict[str, Any]) -> RegisterThing:
    token = body.get("certificateOwnershipToken")
    if not isinstance(token, str) or not token:
        raise PayloadError("certificateOwnershipToken is missing")
    parameters = body.get("parameters", {})
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise PayloadError("parameters is not an object")
    if len(parameters) > PARAMETERS_MAX:
        raise PayloadError(f"more than {PARAMETERS_MAX} parameters")
    for key, value in parameters.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise PayloadError("parameters must map strings to strings")
        if len(key) > PARAMETER_KEY_MAX or len(value) > PARAMETER_VALUE_MAX:
            raise PayloadError(f"parameter {key[:64]!r} is too long")
    return RegisterThing(token, dict(parameters))


def error(status: int, code: str, message: str) -> dict[str, Any]:
    """AWS's error payload."""
    return {"statusCode": status, "errorCode": code, "errorMessage": message}
