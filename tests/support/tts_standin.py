"""A local stand-in for The Things Stack's end device registries (no server of theirs runs
here). It implements the calls provisiond makes, as lorawan-stack's API definition and source
state them (tests/vectors/tts_end_device_api.json, from v3.32.1): paths, bodies, field masks,
the API key, attribute rules, and the errors by their real names, gRPC codes and HTTP statuses:

- the Identity Server refuses a second end device with the same ID in an application
  (``pkg/identityserver/store:id_taken``, 409) and a second one with the same JoinEUI and
  DevEUI in *any* application (``pkg/identityserver:end_device_euis_taken``, 409, naming the
  end device that holds them);
- the Join, Network and Application Servers refuse to create an end device whose EUIs another
  one holds (``pkg/internal/registry:end_device_euis_taken``, 409);
- an unknown end device is ``end_device_not_found`` / ``device_not_found`` (404).

End devices someone else registered (the Console, another tool) are planted with
:meth:`StandIn.plant`. Every request is recorded so tests can assert the exact bodies; faults
can be injected per component."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

API = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "tts_end_device_api.json").read_text()
)
_PATH = re.compile(
    r"^/api/v3(?:/(?P<component>js|ns|as))?/applications/"
    r"(?P<app>[a-z0-9-]+)/devices(?:/(?P<device>[a-z0-9-]+))?$"
)
_HEX16 = re.compile(r"^[0-9A-F]{16}$")
_HEX32 = re.compile(r"^[0-9A-F]{32}$")
_ATTRIBUTES = API["attributes_rules"]
_NOT_FOUND = {
    "is": ("end_device_not_found", "pkg/identityserver/store"),
    "js": ("device_not_found", "pkg/joinserver"),
    "ns": ("device_not_found", "pkg/networkserver"),
    "as": ("device_not_found", "pkg/applicationserver"),
}
COMPONENTS = ("is", "js", "ns", "as")
Key = tuple[str, str]  # (application id, device id)


@dataclass
class Request:
    method: str
    path: str
    component: str  # is, js, ns, as
    body: Any
    status: int = 0


@dataclass
class StandIn:
    url: str
    api_key: str
    applications: set[str]
    requests: list[Request] = field(default_factory=list)
    # component -> (application id, device id) -> the stored end device (merged by mask)
    stores: dict[str, dict[Key, dict[str, Any]]] = field(
        default_factory=lambda: {c: {} for c in COMPONENTS}
    )
    # (component, method) -> the statuses of the next such requests
    faults: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, component: str, *statuses: int, method: str = "PUT") -> None:
        """Answer the next ``method`` requests to ``component`` with these statuses."""
        with self.lock:
            self.faults.setdefault((component, method), []).extend(statuses)

    def devices(self, component: str = "is", application: str | None = None) -> set[str]:
        """The device ids ``component`` holds (in ``application``, or in any)."""
        with self.lock:
            return {d for a, d in self.stores[component] if application in (None, a)}

    def end_device(
        self, device_id: str, component: str = "is", application: str = "kanarra-meters"
    ) -> dict[str, Any] | None:
        with self.lock:
            found = self.stores[component].get((application, device_id))
            return json.loads(json.dumps(found)) if found is not None else None

    def plant(
        self,
        device_id: str,
        *,
        dev_eui: str,
        join_eui: str,
        application: str = "kanarra-meters",
        name: str = "",
        attributes: dict[str, str] | None = None,
        app_key: str = "FFEEDDCCBBAA99887766554433221100",
        components: Iterable[str] = COMPONENTS,
    ) -> None:
        """An end device someone else registered (the Console, another tool)."""
        ids = {
            "device_id": device_id,
            "application_ids": {"application_id": application},
            "dev_eui": dev_eui,
            "join_eui": join_eui,
        }
        records = {
            "is": {
                "ids": ids,
                "name": name,
                "attributes": dict(attributes or {}),
                "created_at": "2026-01-02T03:04:05Z",
            },
            "js": {"ids": ids, "root_keys": {"app_key": {"key": app_key}}},
            "ns": {
                "ids": ids,
                "frequency_plan_id": "EU_863_870_TTN",
                "lorawan_version": "MAC_V1_0_2",
                "lorawan_phy_version": "RP001_V1_0_2",
                "supports_join": True,
            },
            "as": {"ids": ids},
        }
        with self.lock:
            for component in components:
                self.stores[component][(application, device_id)] = records[component]

    def forget(self, device_id: str, application: str = "kanarra-meters") -> None:
        """Someone deleted the end device everywhere (in the Console, say)."""
        with self.lock:
            for store in self.stores.values():
                store.pop((application, device_id), None)

    def calls(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(r.method, r.path) for r in self.requests]

    def writes(self, device_id: str) -> list[tuple[str, str, int]]:
        """The changing requests (POST, PUT, DELETE) about ``device_id``: method, component
        and the status they were answered with."""
        with self.lock:
            return [
                (r.method, r.component, r.status)
                for r in self.requests
                if r.method != "GET"
                and (
                    r.path.endswith(f"/devices/{device_id}")
                    or (
                        isinstance(r.body, dict)
                        and r.body.get("end_device", {}).get("ids", {}).get("device_id")
                        == device_id
                    )
                )
            ]


def _error(status: int, name: str, message: str) -> tuple[int, dict[str, Any]]:
    """An error of the stand-in's own (a route or a request it does not model)."""
    code = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 409: 6}.get(status, 13)
    return status, {"code": code, "message": f"error:pkg/standin:{name} ({message})", "details": []}


def tts_error(key: str, **attributes: str) -> tuple[int, dict[str, Any]]:
    """One of The Things Stack's errors, as its HTTP gateway renders it (pkg/errors)."""
    definition = API["errors"][key]
    name = definition.get("name", key)
    message = definition["message_format"]
    for attr, value in attributes.items():
        message = message.replace("{" + attr + "}", value)
    code = definition["code"]
    return API["error_shape"]["http_status"][str(code)], {
        "code": code,
        "message": f"error:{definition['namespace']}:{name} ({message})",
        "details": [
            {
                "@type": API["error_shape"]["details_type"],
                "namespace": definition["namespace"],
                "name": name,
                "message_format": definition["message_format"],
                "attributes": attributes,
                "correlation_id": "5f1e0c6a4b2d4e8f",
                "code": code,
            }
        ],
    }


def _not_found(component: str, app: str, device: str) -> tuple[int, dict[str, Any]]:
    name, namespace = _NOT_FOUND[component]
    code = 5
    message = (
        f"end device with id `{device}` not found in application with id `{app}`"
        if component == "is"
        else "device not found"
    )
    return 404, {
        "code": code,
        "message": f"error:{namespace}:{name} ({message})",
        "details": [
            {
                "@type": API["error_shape"]["details_type"],
                "namespace": namespace,
                "name": name,
                "code": code,
                "attributes": {"device_id": device, "application_id": app},
            }
        ],
    }


def _invalid(field_name: str, reason: str) -> tuple[int, dict[str, Any]]:
    return tts_error("validation", field=field_name, reason=reason)


def _check_end_device(body: Any, app: str, device: str | None, masked: bool) -> str | None:
    """What is wrong with a Create/Set body, by the API definition; None: nothing."""
    if not isinstance(body, dict):
        return "the body is not an object"
    allowed = {"end_device", "field_mask"} if masked else {"end_device"}
    if set(body) - allowed:
        return f"unknown body fields {sorted(set(body) - allowed)}"
    end_device = body.get("end_device")
    if not isinstance(end_device, dict):
        return "no end_device"
    unknown = set(end_device) - set(API["end_device_fields"])
    if unknown:
        return f"unknown end_device fields {sorted(unknown)}"
    ids = end_device.get("ids")
    if not isinstance(ids, dict) or set(ids) - set(API["ids_fields"]):
        return "ids missing or with unknown fields"
    if ids.get("application_ids") != {"application_id": app}:
        return "ids.application_ids does not match the path"
    if device is not None and ids.get("device_id") != device:
        return "ids.device_id does not match the path"
    for eui in ("dev_eui", "join_eui"):
        if eui in ids and not _HEX16.fullmatch(str(ids[eui])):
            return f"ids.{eui} is not 16 upper-case hex digits"
    if masked:
        mask = body.get("field_mask")
        paths = mask.get("paths") if isinstance(mask, dict) else None
        if not isinstance(paths, list) or not paths:
            return "no field_mask.paths"
        for path in paths:
            value: Any = end_device
            for part in str(path).split("."):
                if not isinstance(value, dict) or part not in value:
                    return f"field_mask path {path!r} is not in end_device"
                value = value[part]
        for key in end_device:
            if key != "ids" and not any(p == key or p.startswith(key + ".") for p in paths):
                return f"end_device.{key} is set but not in the field mask"
    return None


def _check_attributes(end_device: dict[str, Any]) -> str | None:
    """end_device.proto's rules for ``attributes`` (keys, values, at most 10 pairs)."""
    attributes = end_device.get("attributes")
    if attributes is None:
        return None
    if not isinstance(attributes, dict):
        return "attributes is not a map"
    if len(attributes) > _ATTRIBUTES["max_pairs"]:
        return f"at most {_ATTRIBUTES['max_pairs']} attributes"
    for key, value in attributes.items():
        if len(key) > _ATTRIBUTES["key_max_len"] or not re.fullmatch(
            _ATTRIBUTES["key_pattern"], key
        ):
            return f"attribute key {key!r} does not match the pattern"
        if not isinstance(value, str) or len(value) > _ATTRIBUTES["value_max_len"]:
            return f"attribute {key!r} is not a string of at most 200 characters"
    return None


def _check_component(component: str, end_device: dict[str, Any]) -> str | None:
    if component == "js":
        keys = end_device.get("root_keys")
        if keys is not None:
            if set(keys) - set(API["root_keys_fields"]):
                return "unknown root_keys fields"
            for name in ("app_key", "nwk_key"):
                key = (keys.get(name) or {}).get("key")
                if key is not None and not _HEX32.fullmatch(str(key)):
                    return f"root_keys.{name}.key is not 32 upper-case hex digits"
    if component == "ns":
        if end_device.get("lorawan_version") not in API["mac_versions"]:
            return "lorawan_version is not a MAC version"
        if end_device.get("lorawan_phy_version") not in API["phy_versions"]:
            return "lorawan_phy_version is not a PHY version"
        if not end_device.get("frequency_plan_id"):
            return "no frequency_plan_id"
    return None


def _merge(stored: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(stored))
    end_device = body["end_device"]
    for path in body.get("field_mask", {}).get("paths") or list(end_device):
        source: Any = end_device
        target: Any = out
        parts = str(path).split(".")
        for part in parts[:-1]:
            source = source[part]
            target = target.setdefault(part, {})
        target[parts[-1]] = source[parts[-1]]
    out["ids"] = {**out.get("ids", {}), **end_device["ids"]}
    return out


def _holder(store: dict[Key, dict[str, Any]], ids: dict[str, Any]) -> Key | None:
    """Which end device holds these EUIs (JoinEUI and DevEUI), if any."""
    pair = (ids.get("join_eui"), ids.get("dev_eui"))
    if None in pair:
        return None
    for key, stored in store.items():
        if (stored["ids"].get("join_eui"), stored["ids"].get("dev_eui")) == pair:
            return key
    return None


def _euis_taken(error: str, ids: dict[str, Any], holder: Key) -> tuple[int, dict[str, Any]]:
    return tts_error(
        error,
        join_eui=str(ids["join_eui"]),
        dev_eui=str(ids["dev_eui"]),
        device_id=holder[1],
        application_id=holder[0],
    )


def _get(stored: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
    """The stored end device with only the fields the mask asks for (and its ids)."""
    paths = [p for value in query.get("field_mask", []) for p in value.split(",") if p]
    out = {"ids": stored["ids"]}
    for key in ("created_at", "updated_at"):
        if key in stored:
            out[key] = stored[key]
    for path in paths:
        top = path.split(".")[0]
        if top in stored:
            out[top] = stored[top]
    return out


def _create(s: StandIn, app: str, body: Any) -> tuple[int, dict[str, Any]]:
    wrong = _check_end_device(body, app, None, masked=False)
    if wrong:
        return _error(400, "invalid_request", wrong)
    end_device = body["end_device"]
    wrong = _check_attributes(end_device)
    if wrong:
        return _invalid("attributes", wrong)
    store = s.stores["is"]
    new_id = end_device["ids"]["device_id"]
    if (app, new_id) in store:  # end_device_id_index, checked first
        return tts_error("id_taken")
    holder = _holder(store, end_device["ids"])
    if holder is not None:  # end_device_eui_index: over every application
        return _euis_taken("end_device_euis_taken", end_device["ids"], holder)
    store[(app, new_id)] = {**end_device, "created_at": "2026-06-01T00:00:00Z"}
    return 201, store[(app, new_id)]


def _set(
    s: StandIn, component: str, app: str, device: str, body: Any
) -> tuple[int, dict[str, Any]]:
    wrong = _check_end_device(body, app, device, masked=True) or _check_component(
        component, body["end_device"]
    )
    if wrong:
        return _error(400, "invalid_request", wrong)
    if component == "is":
        wrong = _check_attributes(body["end_device"])
        if wrong:
            return _invalid("attributes", wrong)
    store = s.stores[component]
    key = (app, device)
    if component == "is" and key not in store:
        return _not_found("is", app, device)
    if key not in store:  # a new end device here: its EUIs must be free
        holder = _holder(store, body["end_device"]["ids"])
        if holder is not None:
            return _euis_taken("registry_end_device_euis_taken", body["end_device"]["ids"], holder)
    store[key] = _merge(store.get(key, {}), body)
    return 200, store[key]


def _answer(
    s: StandIn,
    component: str,
    method: str,
    app: str,
    device: str | None,
    query: dict[str, list[str]],
    body: Any,
) -> tuple[int, dict[str, Any]]:
    if method == "POST" and component == "is" and device is None:
        return _create(s, app, body)
    if device is None:
        return _error(405, "method_not_allowed", method)
    store = s.stores[component]
    if method == "GET":
        stored = store.get((app, device))
        return (200, _get(stored, query)) if stored else _not_found(component, app, device)
    if method == "PUT":
        return _set(s, component, app, device, body)
    if method == "DELETE":
        if (app, device) not in store:
            return _not_found(component, app, device)
        if component == "is" and any((app, device) in s.stores[c] for c in ("js", "ns", "as")):
            return _error(400, "end_device_in_use", "delete it from the servers first")
        del store[(app, device)]
        return 200, {}
    return _error(405, "method_not_allowed", method)


def handle(
    s: StandIn, method: str, target: str, headers: dict[str, str], raw: bytes
) -> tuple[int, dict[str, Any]]:
    split = urlsplit(target)
    found = _PATH.fullmatch(split.path)
    if found is None:
        return _error(404, "route_not_found", split.path)
    component = found["component"] or "is"
    app, device = found["app"], found["device"]
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        return _error(400, "invalid_json", "the body is not JSON")
    request = Request(method, split.path, component, body)
    with s.lock:
        s.requests.append(request)
        if s.faults.get((component, method)):
            request.status = s.faults[(component, method)].pop(0)
            return _error(request.status, "injected", f"fault injected for {component}")
    if headers.get("authorization") != f"Bearer {s.api_key}":
        request.status = 401
        return _error(401, "unauthenticated", "wrong or missing API key")
    if app not in s.applications:
        request.status = 404
        return _error(404, "application_not_found", app)
    with s.lock:
        status, answer = _answer(s, component, method, app, device, parse_qs(split.query), body)
        request.status = status
        return status, answer


@contextlib.contextmanager
def tts_standin(
    applications: set[str] | None = None, api_key: str = "NNSXS.STANDIN.KEY"
) -> Iterator[StandIn]:
    state: dict[str, StandIn] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, answer = handle(
                state["s"],
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                raw,
            )
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_PUT = do_DELETE = do_GET = _any

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    state["s"] = StandIn(
        f"http://127.0.0.1:{server.server_address[1]}", api_key, applications or {"kanarra-meters"}
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["s"]
    finally:
        server.shutdown()
        server.server_close()
