"""The Things Stack's HTTP API v3 calls that register and remove an end device, sans-IO.

Registering is four calls, in order (lorawan-stack's api/ttn/lorawan/v3/api.swagger.json):

1. Identity Server, ``POST /api/v3/applications/{app}/devices`` (EndDeviceRegistry.Create;
   when the device exists and is provisiond's — ``GET …/devices/{id}?field_mask=attributes``
   tells — ``PUT …/devices/{id}`` with a field mask, EndDeviceRegistry.Update);
2. Join Server, ``PUT /api/v3/js/applications/{app}/devices/{id}`` — the root keys (the
   AppKey; for LoRaWAN 1.1 the NwkKey too);
3. Network Server, ``PUT /api/v3/ns/applications/{app}/devices/{id}`` — MAC and PHY
   versions, frequency plan, classes;
4. Application Server, ``PUT /api/v3/as/applications/{app}/devices/{id}``.

The Set calls create or replace, so every call can be repeated. Removal deletes from the
Application, Network and Join Servers, then the Identity Server (a 404 is success).

Errors come as ``{"code": <gRPC code>, "message": "error:<namespace>:<name> (…)",
"details": [{"namespace", "name", "attributes", …}]}`` (lorawan-stack's pkg/errors);
:func:`parse_error` reads them, :func:`parse_end_device` an Identity Server record. Both are
total: any answer gives a value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from provisiond.domain.tts import EndDevice

IDENTITY = "is"
JOIN = "js"
NETWORK = "ns"
APPLICATION = "as"
_IDS = ["ids.application_ids", "ids.dev_eui", "ids.device_id", "ids.join_eui"]


COMPONENT_NAMES = {
    IDENTITY: "Identity Server",
    JOIN: "Join Server",
    NETWORK: "Network Server",
    APPLICATION: "Application Server",
}
# The errors provisiond tells apart (409: AlreadyExists, gRPC code 6).
ID_TAKEN = "id_taken"  # pkg/identityserver/store: this ID is in use in the application
EUIS_TAKEN = "end_device_euis_taken"  # pkg/identityserver, pkg/internal/registry
_MESSAGE = re.compile(r"^error:(?P<namespace>[^:\s]*):(?P<name>[^\s(]+)")
_HOLDER = re.compile(
    r"registered as `(?P<device_id>[^`]*)` in application "
    r"`(?P<application_id>[^`]*)`"
)


@dataclass(frozen=True, slots=True)
class Call:
    component: str
    method: str
    path: str
    body: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back: the status (None: no answer), a short text, the JSON body if any."""

    status: int | None
    text: str
    body: Any = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class TtsError:
    namespace: str
    name: str
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredEndDevice:
    """An Identity Server record, as much of it as provisiond reads."""

    application_id: str
    device_id: str
    dev_eui: str | None
    join_eui: str | None
    attributes: Mapping[str, str]


def _ids(d: EndDevice) -> dict[str, Any]:
    return {
        "device_id": d.device_id,
        "application_ids": {"application_id": d.application_id},
        "dev_eui": d.dev_eui,
        "join_eui": d.join_eui,
    }


def _identity_fields(d: EndDevice, attributes: Mapping[str, str]) -> dict[str, Any]:
    return {
        "name": d.name,
        "attributes": dict(attributes),
        "network_server_address": d.network_server_address,
        "application_server_address": d.application_server_address,
        "join_server_address": d.join_server_address,
    }


def create_in_identity_server(d: EndDevice) -> Call:
    return Call(
        IDENTITY,
        "POST",
        f"/api/v3/applications/{d.application_id}/devices",
        {"end_device": {"ids": _ids(d), **_identity_fields(d, d.attributes())}},
    )


def get_from_identity_server(application_id: str, device_id: str) -> Call:
    """The Identity Server's record with its attributes (EndDeviceRegistry.Get)."""
    return Call(
        IDENTITY,
        "GET",
        f"/api/v3/applications/{application_id}/devices/{device_id}?field_mask=attributes",
    )


def update_in_identity_server(d: EndDevice, existing: Mapping[str, str]) -> Call:
    """The Identity Server's record of a device that exists already and is provisiond's (or
    is being adopted): its ``existing`` attributes are kept, provisiond's mark added."""
    fields = _identity_fields(d, d.attributes(existing))
    return Call(
        IDENTITY,
        "PUT",
        f"/api/v3/applications/{d.application_id}/devices/{d.device_id}",
        {"end_device": {"ids": _ids(d), **fields}, "field_mask": {"paths": sorted(fields)}},
    )


def mark_in_identity_server(d: EndDevice, existing: Mapping[str, str]) -> Call:
    """Adoption: only provisiond's mark is added to the end device's attributes."""
    return Call(
        IDENTITY,
        "PUT",
        f"/api/v3/applications/{d.application_id}/devices/{d.device_id}",
        {
            "end_device": {"ids": _ids(d), "attributes": d.attributes(existing)},
            "field_mask": {"paths": ["attributes"]},
        },
    )


def register(d: EndDevice) -> list[Call]:
    """The calls after the Identity Server's: Join, Network and Application Servers."""
    base = f"/applications/{d.application_id}/devices/{d.device_id}"
    n = d.network
    ns_fields: dict[str, Any] = {
        "frequency_plan_id": n.frequency_plan_id,
        "lorawan_version": n.lorawan_version,
        "lorawan_phy_version": n.lorawan_phy_version,
        "supports_join": True,
        "supports_class_b": bool(n.supports_class_b),
        "supports_class_c": bool(n.supports_class_c),
    }
    root_keys: dict[str, Any] = {"app_key": {"key": d.app_key}}
    if d.nwk_key is not None:
        root_keys["nwk_key"] = {"key": d.nwk_key}
    js_fields: dict[str, Any] = {
        "network_server_address": d.network_server_address,
        "application_server_address": d.application_server_address,
        "root_keys": root_keys,
    }
    return [
        Call(
            JOIN,
            "PUT",
            f"/api/v3/js{base}",
            {
                "end_device": {"ids": _ids(d), **js_fields},
                "field_mask": {
                    "paths": sorted(
                        [
                            *_IDS,
                            "network_server_address",
                            "application_server_address",
                            *(f"root_keys.{k}.key" for k in root_keys),
                        ]
                    )
                },
            },
        ),
        Call(
            NETWORK,
            "PUT",
            f"/api/v3/ns{base}",
            {
                "end_device": {"ids": _ids(d), **ns_fields},
                "field_mask": {"paths": sorted([*_IDS, *ns_fields])},
            },
        ),
        Call(
            APPLICATION,
            "PUT",
            f"/api/v3/as{base}",
            {"end_device": {"ids": _ids(d)}, "field_mask": {"paths": sorted(_IDS)}},
        ),
    ]


def remove(application_id: str, device_id: str) -> list[Call]:
    """Delete from every component, the Identity Server last."""
    base = f"/applications/{application_id}/devices/{device_id}"
    return [
        Call(APPLICATION, "DELETE", f"/api/v3/as{base}"),
        Call(NETWORK, "DELETE", f"/api/v3/ns{base}"),
        Call(JOIN, "DELETE", f"/api/v3/js{base}"),
        Call(IDENTITY, "DELETE", f"/api/v3{base}"),
    ]


def transient(status: int | None) -> bool:
    """Worth retrying: no answer, rate limited, or a server-side failure."""
    return status is None or status == 429 or status >= 500


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items() if v is not None}


def parse_error(body: Any) -> TtsError:
    """The error an answer carries (an empty name when it carries none). Its attributes come
    from the details; without them, the holder of taken EUIs is read from the message."""
    if not isinstance(body, dict):
        return TtsError("", "")
    raw = body.get("message")
    message = raw if isinstance(raw, str) else ""
    details = body.get("details")
    first = details[0] if isinstance(details, list) and details else None
    if isinstance(first, dict) and isinstance(first.get("name"), str):
        error = TtsError(
            str(first.get("namespace") or ""), first["name"], _strings(first.get("attributes"))
        )
    else:
        found = _MESSAGE.match(message)
        error = TtsError(found["namespace"], found["name"]) if found else TtsError("", "")
    holder = _HOLDER.search(message)
    if error.name == EUIS_TAKEN and "device_id" not in error.attributes and holder:
        error = TtsError(error.namespace, error.name, {**error.attributes, **holder.groupdict()})
    return error


def parse_end_device(body: Any) -> StoredEndDevice | None:
    """An Identity Server record from a Get answer; None when it is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("ids"), dict):
        return None
    ids = body["ids"]
    app = ids.get("application_ids")
    device_id = ids.get("device_id")
    if not isinstance(app, dict) or not isinstance(device_id, str):
        return None
    dev_eui, join_eui = ids.get("dev_eui"), ids.get("join_eui")
    return StoredEndDevice(
        str(app.get("application_id") or ""),
        device_id,
        dev_eui.upper() if isinstance(dev_eui, str) else None,
        join_eui.upper() if isinstance(join_eui, str) else None,
        _strings(body.get("attributes")),
    )
