"""Azure Device Provisioning Service's device registration API, as the device SDKs speak it
(sans-IO: strings and bytes in, values out; time and keys are parameters).

- the MQTT user name ``{idScope}/registrations/{registrationId}/api-version=…`` (more query
  parameters may follow, ``ClientVersion`` for one);
- the shared access signature a symmetric-key device sends as its password (MQTT) or its
  ``Authorization`` header (HTTPS): ``SharedAccessSignature sr={url-encoded resource}&sig=
  {url-encoded base64 HMAC-SHA256}&se={expiry}`` with or without ``&skn=registration``; the
  signature covers the URL-encoded resource, a newline and the expiry;
- an enrollment group's device keys: base64 of HMAC-SHA256(group key, registration id);
- the MQTT topics ``$dps/registrations/PUT/iotdps-register/?$rid={rid}``,
  ``$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={id}`` and
  the answers' ``$dps/registrations/res/{status}/?$rid={rid}[&retry-after=n]``.

Parsers are total: any input gives a value or :class:`DpsRefused`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

SUBSCRIBE_FILTER = "$dps/registrations/res/#"
REGISTER_PREFIX = "$dps/registrations/PUT/iotdps-register/"
STATUS_PREFIX = "$dps/registrations/GET/iotdps-get-operationstatus/"
RESPONSE_PREFIX = "$dps/registrations/res/"
SAS_PREFIX = "SharedAccessSignature "
SAS_KEY_NAME = "registration"
# DPS's own rule for registration ids: lowercase alphanumerics and - . _ :, at most 128.
_REGISTRATION_ID = re.compile(r"[a-z0-9\-._:]{1,128}")
_ID_SCOPE = re.compile(r"[A-Za-z0-9]{1,64}")
_RID = re.compile(r"[A-Za-z0-9\-._~%]{1,128}")
_OPERATION_ID = re.compile(r"[A-Za-z0-9\-._]{1,128}")


class DpsRefused(Exception):
    """Input that is not DPS's: ``status`` is the HTTP-like status DPS answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class UserName:
    id_scope: str
    registration_id: str
    api_version: str


@dataclass(frozen=True, slots=True)
class Sas:
    resource: str  # as sent (URL-encoded)
    signature: bytes
    expiry: int
    key_name: str | None


@dataclass(frozen=True, slots=True)
class Request:
    """A request topic: register, or poll an operation's status."""

    kind: str  # "register" or "status"
    rid: str
    operation_id: str | None = None


def check_registration_id(text: str) -> str:
    if _REGISTRATION_ID.fullmatch(text) is None:
        raise DpsRefused(
            "the registration id must be 1 to 128 lowercase letters, digits, '-', '.', '_' or ':'"
        )
    return text


def check_id_scope(text: str) -> str:
    if _ID_SCOPE.fullmatch(text) is None:
        raise DpsRefused("the id scope must be 1 to 64 letters or digits")
    return text


def parse_username(text: str) -> UserName:
    """``{idScope}/registrations/{registrationId}/api-version=…[&…]``."""
    parts = text.split("/")
    if len(parts) != 4 or parts[1] != "registrations":
        raise DpsRefused("the user name is not {idScope}/registrations/{registrationId}/…")
    params = _query(parts[3])
    version = params.get("api-version")
    if not version:
        raise DpsRefused("the user name carries no api-version")
    return UserName(check_id_scope(parts[0]), check_registration_id(parts[2]), version)


def _query(text: str) -> dict[str, str]:
    """``a=b&c=d`` as DPS's SDKs write it (not ``+`` as space: values are %-encoded)."""
    out: dict[str, str] = {}
    for pair in text.split("&") if text else []:
        key, _, value = pair.partition("=")
        out.setdefault(unquote(key), unquote(value))
    return out


def parse_sas(text: str) -> Sas:
    if not text.startswith(SAS_PREFIX):
        raise DpsRefused("the credential is not a SharedAccessSignature", 401)
    fields = _query(text[len(SAS_PREFIX) :].strip())
    raw = {k: v for k, _, v in (p.partition("=") for p in text[len(SAS_PREFIX) :].split("&"))}
    try:
        signature = base64.b64decode(fields["sig"], validate=True)
        expiry = int(fields["se"])
        resource = raw["sr"]
    except (KeyError, ValueError, binascii.Error):
        raise DpsRefused("the SharedAccessSignature needs sr, sig and se", 401) from None
    return Sas(resource, signature, expiry, fields.get("skn"))


def resource_of(id_scope: str, registration_id: str) -> str:
    return f"{id_scope}/registrations/{registration_id}"


def _message(resource: str, expiry: int) -> bytes:
    return f"{resource}\n{expiry}".encode()


def sign(key: bytes, resource: str, expiry: int) -> bytes:
    """The signature over an unencoded resource (``{idScope}/registrations/{id}``)."""
    return hmac.new(key, _message(quote(resource, safe=""), expiry), hashlib.sha256).digest()


def make_sas(key_b64: str, resource: str, expiry: int, *, key_name: str | None = None) -> str:
    """A token as the SDKs write it (tests, benchmarks, docs)."""
    signature = base64.b64encode(sign(base64.b64decode(key_b64), resource, expiry)).decode()
    token = f"{SAS_PREFIX}sr={quote(resource, safe='')}&sig={quote(signature, safe='')}&se={expiry}"
    return token + (f"&skn={key_name}" if key_name else "")


def sas_problem(sas: Sas, key_b64: str, resource: str, now: int) -> str | None:
    """Why the token does not prove ``key`` for ``resource`` at ``now`` (None: it does).
    The resource may be encoded either way (``%2F`` or ``%2f``)."""
    if sas.key_name not in (None, SAS_KEY_NAME):
        return f"skn must be {SAS_KEY_NAME!r} or absent"
    if unquote(sas.resource).lower() != resource.lower():
        return "the token is for another registration"
    if sas.expiry <= now:
        return "the token has expired"
    try:
        key = base64.b64decode(key_b64, validate=True)
    except binascii.Error:
        return "the enrollment key is not base64"
    for message in {sas.resource, quote(unquote(sas.resource), safe="")}:
        mac = hmac.new(key, _message(message, sas.expiry), hashlib.sha256).digest()
        if hmac.compare_digest(mac, sas.signature):
            return None
    return "the signature does not match the key"


def derive_device_key(group_key_b64: str, registration_id: str) -> str:
    """An enrollment group's key for one device, as DPS derives it."""
    key = base64.b64decode(group_key_b64)
    return base64.b64encode(
        hmac.new(key, registration_id.encode(), hashlib.sha256).digest()
    ).decode()


def parse_request_topic(topic: str) -> Request:
    """A device's PUBLISH topic: register, or an operation-status poll."""
    for prefix, kind in ((REGISTER_PREFIX, "register"), (STATUS_PREFIX, "status")):
        if topic.startswith(prefix):
            rest = topic[len(prefix) :]
            if not rest.startswith("?"):
                break
            params = _query(rest[1:])
            rid = params.get("$rid", "")
            if _RID.fullmatch(quote(rid, safe="-._~")) is None:
                raise DpsRefused("the topic's $rid is missing or too long")
            if kind == "register":
                return Request(kind, rid)
            operation_id = params.get("operationId", "")
            if _OPERATION_ID.fullmatch(operation_id) is None:
                raise DpsRefused("the topic's operationId is missing or not one")
            return Request(kind, rid, operation_id)
    raise DpsRefused("not a DPS request topic", 404)


def response_topic(status: int, rid: str, retry_after: int | None = None) -> str:
    """The answer's topic. Its values are %-encoded: the SDKs split the topic at ``$``, so
    it holds none but the two of ``$dps`` and ``$rid``."""
    topic = f"{RESPONSE_PREFIX}{status}/?$rid={quote(rid, safe='')}"
    return topic + (f"&retry-after={retry_after}" if retry_after is not None else "")
