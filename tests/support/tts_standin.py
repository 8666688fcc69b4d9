"""A local stand-in for The Things Stack's end device registries (no server of theirs runs
here). It implements the calls provisiond makes, as lorawan-stack's API definition states
them (tests/vectors/tts_end_device_api.json, extracted from api.swagger.json): paths,
bodies, field masks, the API key, 404 and 409. Every request is recorded so tests can assert
the exact bodies; faults can be injected per component."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

API = json.loads((Path(__file__).resolve().parents[1] / "vectors" /
                  "tts_end_device_api.json").read_text())
_PATH = re.compile(r"^/api/v3(?:/(?P<component>js|ns|as))?/applications/"
                   r"(?P<app>[a-z0-9-]+)/devices(?:/(?P<device>[a-z0-9-]+))?$")
_HEX16 = re.compile(r"^[0-9A-F]{16}$")
_HEX32 = re.compile(r"^[0-9A-F]{32}$")


@dataclass
class Request:
    method: str
    path: str
    component: str  # is, js, ns, as
    body: Any


@dataclass
class StandIn:
    url: str
    api_key: str
    applications: set[str]
    requests: list[Request] = field(default_factory=list)
    # component -> device id -> the stored end device (merged by field mask)
    stores: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {"is": {}, "js": {}, "ns": {}, "as": {}})
    # (component, method) -> the statuses of the next such requests
    faults: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, component: str, *statuses: int, method: str = "PUT") -> None:
        """Answer the next ``method`` requests to ``component`` with these statuses."""
        with self.lock:
            self.faults.setdefault((component, method), []).extend(statuses)

    def devices(self, component: str = "is") -> set[str]:
        with self.lock:
            return set(self.stores[component])

    def calls(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(r.method, r.path) for r in self.requests]


def _error(status: int, name: str, message: str) -> tuple[int, dict[str, Any]]:
    # The Things Stack's error shape: gRPC code, "error:<namespace>:<name>", details
    code = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6}.get(status, 13)
    return status, {"code": code, "message": f"error:pkg/standin:{name} ({message})",
                    "details": []}


def _check_end_device(body: Any, app: str, device: str | None, masked: bool
                      ) -> str | None:
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


def _check_component(component: str, end_device: dict[str, Any]) -> str | None:
    if component == "js":
        keys = end_device.get("root_keys")
        if keys is not None:
            if set(keys) - set(API["root_keys_fields"]):
                return "unknown root_keys fields"
            key = (keys.get("app_key") or {}).get("key")
            if key is not None and not _HEX32.fullmatch(str(key)):
                return "root_keys.app_key.key is not 32 upper-case hex digits"
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
    out["ids"] = end_device["ids"]
    return out


def handle(s: StandIn, method: str, path: str, headers: dict[str, str], raw: bytes
           ) -> tuple[int, dict[str, Any]]:
    found = _PATH.fullmatch(path)
    if found is None:
        return _error(404, "route_not_found", path)
    component = found["component"] or "is"
    app, device = found["app"], found["device"]
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        return _error(400, "invalid_json", "the body is not JSON")
    with s.lock:
        s.requests.append(Request(method, path, component, body))
        if s.faults.get((component, method)):
            status = s.faults[(component, method)].pop(0)
            return _error(status, "injected", f"fault injected for {component}")
    if headers.get("authorization") != f"Bearer {s.api_key}":
        return _error(401, "unauthenticated", "wrong or missing API key")
    if app not in s.applications:
        return _error(404, "application_not_found", app)
    store = s.stores[component]
    with s.lock:
        if method == "POST" and component == "is" and device is None:
            wrong = _check_end_device(body, app, None, masked=False)
            if wrong:
                return _error(400, "invalid_request", wrong)
            new_id = body["end_device"]["ids"]["device_id"]
            if new_id in store:
                return _error(409, "end_device_already_exists", new_id)
            store[new_id] = body["end_device"]
            return 201, body["end_device"]
        if device is None:
            return _error(405, "method_not_allowed", path)
        if method == "PUT":
            wrong = _check_end_device(body, app, device, masked=True) or \
                _check_component(component, body["end_device"])
            if wrong:
                return _error(400, "invalid_request", wrong)
            if component == "is" and device not in store:
                return _error(404, "end_device_not_found", device)
            store[device] = _merge(store.get(device, {}), body)
            return 200, store[device]
        if method == "DELETE":
            if device not in store:
                return _error(404, "end_device_not_found", device)
            if component == "is" and any(device in s.stores[c] for c in ("js", "ns", "as")):
                return _error(400, "end_device_in_use", "delete it from the servers first")
            del store[device]
            return 200, {}
    return _error(405, "method_not_allowed", method)


@contextlib.contextmanager
def tts_standin(applications: set[str] | None = None,
                api_key: str = "NNSXS.STANDIN.KEY") -> Iterator[StandIn]:
    state: dict[str, StandIn] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, answer = handle(state["s"], self.command, self.path,
                                    {k.lower(): v for k, v in self.headers.items()}, raw)
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
    state["s"] = StandIn(f"http://127.0.0.1:{server.server_address[1]}", api_key,
                         applications or {"kanarra-meters"})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["s"]
    finally:
        server.shutdown()
        server.server_close()
