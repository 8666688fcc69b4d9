"""The Things Stack's HTTP API v3 calls that register and remove an end device, sans-IO.

Registering is four calls, in order (lorawan-stack's api/ttn/lorawan/v3/api.swagger.json):

1. Identity Server, ``POST /api/v3/applications/{app}/devices`` (EndDeviceRegistry.Create;
   when the device exists: ``PUT …/devices/{id}`` with a field mask, EndDeviceRegistry.Update);
2. Join Server, ``PUT /api/v3/js/applications/{app}/devices/{id}`` — the root keys;
3. Network Server, ``PUT /api/v3/ns/applications/{app}/devices/{id}`` — MAC and PHY
   versions, frequency plan, classes;
4. Application Server, ``PUT /api/v3/as/applications/{app}/devices/{id}``.

The Set calls create or replace, so every call can be repeated. Removal deletes from the
Application, Network and Join Servers, then the Identity Server (a 404 is success).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provisiond.domain.tts import EndDevice

IDENTITY = "is"
JOIN = "js"
NETWORK = "ns"
APPLICATION = "as"
_IDS = ["ids.application_ids", "ids.dev_eui", "ids.device_id", "ids.join_eui"]


@dataclass(frozen=True, slots=True)
class Call:
    component: str
    method: str
    path: str
    body: dict[str, Any] | None = None


def _ids(d: EndDevice) -> dict[str, Any]:
    return {"device_id": d.device_id, "application_ids": {"application_id": d.application_id},
            "dev_eui": d.dev_eui, "join_eui": d.join_eui}


def _identity_fields(d: EndDevice) -> dict[str, Any]:
    return {"name": d.name, "attributes": {"provisiond-serial": d.serial},
            "network_server_address": d.network_server_address,
            "application_server_address": d.application_server_address,
            "join_server_address": d.join_server_address}


def create_in_identity_server(d: EndDevice) -> Call:
    return Call(IDENTITY, "POST", f"/api/v3/applications/{d.application_id}/devices",
                {"end_device": {"ids": _ids(d), **_identity_fields(d)}})


def update_in_identity_server(d: EndDevice) -> Call:
    """The Identity Server's record of a device that exists already."""
    fields = _identity_fields(d)
    return Call(IDENTITY, "PUT",
                f"/api/v3/applications/{d.application_id}/devices/{d.device_id}",
                {"end_device": {"ids": _ids(d), **fields},
                 "field_mask": {"paths": sorted(fields)}})


def register(d: EndDevice) -> list[Call]:
    """The calls after the Identity Server's: Join, Network and Application Servers."""
    base = f"/applications/{d.application_id}/devices/{d.device_id}"
    n = d.network
    ns_fields: dict[str, Any] = {
        "frequency_plan_id": n.frequency_plan_id, "lorawan_version": n.lorawan_version,
        "lorawan_phy_version": n.lorawan_phy_version, "supports_join": True,
        "supports_class_b": bool(n.supports_class_b),
        "supports_class_c": bool(n.supports_class_c)}
    js_fields: dict[str, Any] = {
        "network_server_address": d.network_server_address,
        "application_server_address": d.application_server_address,
        "root_keys": {"app_key": {"key": d.app_key}}}
    return [
        Call(JOIN, "PUT", f"/api/v3/js{base}",
             {"end_device": {"ids": _ids(d), **js_fields},
              "field_mask": {"paths": sorted([*_IDS, "network_server_address",
                                              "application_server_address",
                                              "root_keys.app_key.key"])}}),
        Call(NETWORK, "PUT", f"/api/v3/ns{base}",
             {"end_device": {"ids": _ids(d), **ns_fields},
              "field_mask": {"paths": sorted([*_IDS, *ns_fields])}}),
        Call(APPLICATION, "PUT", f"/api/v3/as{base}",
             {"end_device": {"ids": _ids(d)}, "field_mask": {"paths": sorted(_IDS)}}),
    ]


def remove(application_id: str, device_id: str) -> list[Call]:
    """Delete from every component, the Identity Server last."""
    base = f"/applications/{application_id}/devices/{device_id}"
    return [Call(APPLICATION, "DELETE", f"/api/v3/as{base}"),
            Call(NETWORK, "DELETE", f"/api/v3/ns{base}"),
            Call(JOIN, "DELETE", f"/api/v3/js{base}"),
            Call(IDENTITY, "DELETE", f"/api/v3{base}")]


def transient(status: int | None) -> bool:
    """Worth retrying: no answer, rate limited, or a server-side failure."""
    return status is None or status == 429 or status >= 500
