"""An ESP32 in provisioning mode, over HTTP, as its firmware answers (soft AP transport).

Endpoints are POSTs to ``/proto-ver``, ``/prov-session``, ``/prov-config``, ``/prov-scan``,
``/prov-ctrl`` and ``/cloud_user_assoc``; bodies are the raw protobuf messages. The first
answer of a session sets ``Set-Cookie: session=<id>``; later requests carry the cookie. A
request the session cannot take (no session, a failed handshake, a message that does not
decrypt) gets ``500`` and the session is closed, like ESP-IDF's protocomm_httpd.

The radio is simulated: a list of networks (name, channel, signal, security, passphrase,
and what happens when the device joins it), scans and connections take realistic time,
scaled by ``delay_scale``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from provisiond.protocols.espprov import security, srp, wifi
from provisiond.protocols.espprov.messages import espprov_wifi_config_pb2 as config_pb2
from provisiond.protocols.espprov.messages import espprov_wifi_ctrl_pb2 as ctrl_pb2
from provisiond.protocols.espprov.messages import espprov_wifi_scan_pb2 as scan_pb2

log = logging.getLogger(__name__)
VERSION = "v1.1"
SCAN_SECONDS = 1.5  # a blocking scan of every channel
CONNECT_SECONDS = 2.0  # association, WPA handshake and DHCP


@dataclass(frozen=True, slots=True)
class SimulatedNetwork:
    ssid: str
    passphrase: str = ""
    channel: int = 6
    rssi: int = -55
    auth: int = 3  # WPA2_PSK
    bssid: bytes = b"\x24\x0a\xc4\x00\x00\x01"
    reachable: bool = True  # False: in the scan list, but the device cannot join it


DEFAULT_NETWORKS = (
    SimulatedNetwork("Kanarra Ops", "correct horse battery", 6, -48),
    SimulatedNetwork("Kanarra Guest", "", 11, -67, auth=0, bssid=b"\x24\x0a\xc4\x00\x00\x02"),
    SimulatedNetwork(
        "Warehouse 5GHz-only", "staple", 36, -71, reachable=False, bssid=b"\x24\x0a\xc4\x00\x00\x03"
    ),
)


def load_networks(path: Path) -> tuple[SimulatedNetwork, ...]:
    """Networks from a JSON file: [{"ssid": …, "passphrase": …, "channel": …, "rssi": …,
    "auth": 0-7, "reachable": true}, …]."""
    items = json.loads(path.read_text())
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a JSON list of networks")
    out = []
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("ssid"), str):
            raise ValueError(f"{path}: network {n + 1} has no ssid")
        out.append(
            SimulatedNetwork(
                item["ssid"],
                str(item.get("passphrase", "")),
                int(item.get("channel", 6)),
                int(item.get("rssi", -60)),
                int(item.get("auth", 3 if item.get("passphrase") else 0)),
                bytes([0x24, 0x0A, 0xC4, 0, 0, n + 1]),
                bool(item.get("reachable", True)),
            )
        )
    return tuple(out)


@dataclass
class DeviceConfig:
    security: int = 1
    pop: str | None = "abcd1234"  # security 1; None: the no_pop capability
    username: str = "wifiprov"  # security 2
    password: str = "abcd1234"  # noqa: S105 (ESP's example default, for demos)
    patch_level: int = 1
    networks: tuple[SimulatedNetwork, ...] = DEFAULT_NETWORKS
    delay_scale: float = 1.0
    # "auto": what the settings deserve (the network's passphrase, whether it is in reach);
    # or force "connected", "auth-error" or "network-not-found" whatever is sent
    outcome: str = "auto"
    node_id: str = field(default_factory=lambda: secrets.token_hex(6).upper())
    rainmaker: bool = True  # answers cloud_user_assoc and says so in proto-ver
    # Once on Wi-Fi with a user mapping, report it here (provisiond's device API) with
    # this access token, as a RainMaker node reports it to its cloud.
    report_to: str | None = None
    device_token: str | None = None


@dataclass
class _Session:
    handshake: security.DeviceSession
    established: bool = False


class EmulatedDevice:
    """The device's state: sessions, the Wi-Fi settings it was given, its station."""

    def __init__(self, cfg: DeviceConfig) -> None:
        self.cfg = cfg
        self.sessions: dict[str, _Session] = {}
        self.ssid: str | None = None
        self.passphrase: str | None = None
        self.applied_at: float | None = None
        self.scan_started_at: float | None = None
        self.user_mapping: tuple[str, str] | None = None
        self.reported: dict[str, Any] | None = None
        self.salt = srp.new_salt()
        self.verifier = srp.verifier(self.salt, cfg.username, cfg.password)
        self.log: list[str] = []  # what happened, for tests and the console

    # ---------------------------------------------------------------- session

    def new_handshake(self) -> security.DeviceSession:
        c = self.cfg
        if c.security == 0:
            return security.Sec0Device()
        if c.security == 1:
            return security.Sec1Device(c.pop)
        return security.Sec2Device(c.username, self.salt, self.verifier, patch_level=c.patch_level)

    def version(self) -> bytes:
        caps = ["wifi_scan"]
        if self.cfg.security == 0:
            caps.append("no_sec")
        if self.cfg.security == 1 and not self.cfg.pop:
            caps.append("no_pop")
        extra = {"rmaker": {"ver": "v1.1", "cap": ["wifi_scan"]}} if self.cfg.rainmaker else {}
        return wifi.render_version(
            wifi.Version(VERSION, self.cfg.security, self.cfg.patch_level, tuple(caps), extra)
        )

    # ------------------------------------------------------------------ radio

    def _scaled(self, seconds: float) -> float:
        return seconds * self.cfg.delay_scale

    def station(self) -> wifi.StationStatus:
        if self.applied_at is None or self.ssid is None:
            return wifi.StationStatus(wifi.StationState.DISCONNECTED)
        if time.monotonic() - self.applied_at < self._scaled(CONNECT_SECONDS):
            return wifi.StationStatus(wifi.StationState.CONNECTING)
        forced = self.cfg.outcome
        if forced == "auth-error":
            return wifi.StationStatus(wifi.StationState.FAILED, reason=wifi.FailReason.AUTH_ERROR)
        if forced == "network-not-found":
            return wifi.StationStatus(wifi.StationState.FAILED, reason=wifi.FailReason.NOT_FOUND)
        if forced == "connected":
            return wifi.StationStatus(
                wifi.StationState.CONNECTED, ip4="192.168.1.42", ssid=self.ssid
            )
        network = next((n for n in self.cfg.networks if n.ssid == self.ssid), None)
        if network is None or not network.reachable:
            return wifi.StationStatus(wifi.StationState.FAILED, reason=wifi.FailReason.NOT_FOUND)
        if network.auth != 0 and network.passphrase != self.passphrase:
            return wifi.StationStatus(wifi.StationState.FAILED, reason=wifi.FailReason.AUTH_ERROR)
        return wifi.StationStatus(
            wifi.StationState.CONNECTED, ip4="192.168.1.42", ssid=network.ssid
        )

    def scan_finished(self) -> bool:
        return (
            self.scan_started_at is not None
            and time.monotonic() - self.scan_started_at >= self._scaled(SCAN_SECONDS)
        )

    def visible(self) -> list[wifi.Network]:
        return [
            wifi.Network(n.ssid, n.channel, n.rssi, n.bssid, n.auth)
            for n in sorted(self.cfg.networks, key=lambda n: n.rssi, reverse=True)
        ]

    # ------------------------------------------------------------- endpoints

    async def config(self, request: bytes) -> bytes:
        m = wifi.parse_config_request(request)
        if m.msg == config_pb2.TypeCmdSetConfig:
            ssid = m.cmd_set_config.ssid.decode(errors="replace")
            self.ssid, self.passphrase = ssid, m.cmd_set_config.passphrase.decode(errors="replace")
            self.applied_at = None
            self.log.append(f"config {ssid}")
            return wifi.config_answer(config_pb2.TypeRespSetConfig)
        if m.msg == config_pb2.TypeCmdApplyConfig:
            code = 0 if self.ssid else 4  # InvalidArgument: nothing to apply
            if self.ssid:
                self.applied_at = time.monotonic()
                self.log.append("apply")
            return wifi.config_answer(config_pb2.TypeRespApplyConfig, code)
        station = self.station()
        if station.state is wifi.StationState.CONNECTED:
            await self.report_mapping()
        return wifi.status_answer(station)

    async def report_mapping(self) -> None:
        """Tell provisiond who the device now belongs to (once)."""
        c = self.cfg
        if (
            self.reported is not None
            or self.user_mapping is None
            or not c.report_to
            or not c.device_token
        ):
            return
        import aiohttp

        user_id, secret = self.user_mapping
        url = f"{c.report_to.rstrip('/')}/api/v1/{c.device_token}/association"
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.post(url, json={"user_id": user_id, "secret_key": secret}) as answer,
            ):
                self.reported = {"status": answer.status, "body": await answer.json()}
        except (aiohttp.ClientError, ValueError) as err:
            self.reported = {"status": None, "body": str(err)}
        self.log.append(f"reported user mapping: {self.reported['status']}")

    async def scan(self, request: bytes) -> bytes:
        m = wifi.parse_scan_request(request)
        if m.msg == scan_pb2.TypeCmdScanStart:
            self.scan_started_at = time.monotonic()
            if m.cmd_scan_start.blocking:
                await asyncio.sleep(self._scaled(SCAN_SECONDS))
            return wifi.scan_answer(scan_pb2.TypeRespScanStart)
        if m.msg == scan_pb2.TypeCmdScanStatus:
            done = self.scan_finished()
            return wifi.scan_answer(
                scan_pb2.TypeRespScanStatus,
                finished=done,
                count=len(self.cfg.networks) if done else 0,
            )
        start, count = m.cmd_scan_result.start_index, m.cmd_scan_result.count
        found = self.visible()
        if not self.scan_finished() or start + count > len(found):
            return wifi.scan_answer(scan_pb2.TypeRespScanResult, status=4)
        return wifi.scan_answer(scan_pb2.TypeRespScanResult, networks=found[start : start + count])

    async def ctrl(self, request: bytes) -> bytes:
        kind = wifi.parse_ctrl_request(request)
        if kind == ctrl_pb2.TypeCmdCtrlReset or kind == ctrl_pb2.TypeCmdCtrlReprov:
            self.ssid = self.passphrase = None
            self.applied_at = None
            self.log.append("reset" if kind == ctrl_pb2.TypeCmdCtrlReset else "reprovision")
        return wifi.ctrl_answer(kind)

    async def user_assoc(self, request: bytes) -> bytes:
        user_id, secret = wifi.parse_user_mapping_request(request)
        ok = bool(user_id and secret)
        if ok:
            self.user_mapping = (user_id, secret)
            self.log.append(f"user {user_id}")
        return wifi.user_mapping_answer(self.cfg.node_id, ok)


def build_app(device: EmulatedDevice) -> web.Application:  # noqa: C901 - the emulated device's protocomm endpoints, as closures over one device
    app = web.Application()

    def cookie_of(request: web.Request) -> str | None:
        return request.cookies.get("session")

    async def proto_ver(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=device.version(), content_type="text/plain")

    async def session(request: web.Request) -> web.Response:
        body = await request.read()
        key = cookie_of(request)
        current = device.sessions.get(key) if key else None
        new_cookie = None
        if current is None or current.established:
            key = secrets.token_hex(8)
            current = _Session(device.new_handshake())
            device.sessions[key] = current
            new_cookie = key
        try:
            answer = current.handshake.respond(body)
        except security.SessionError as err:
            device.sessions.pop(key or "", None)
            device.log.append(f"session refused: {err}")
            raise web.HTTPInternalServerError(text="Failed to execute handler") from None
        if current.handshake.cipher is not None:
            current.established = True
            device.log.append(f"session {current.handshake.version}")
        response = web.Response(body=answer, content_type="application/octet-stream")
        if new_cookie:
            response.headers["Set-Cookie"] = f"session={new_cookie}"
        return response

    def secured(handler: Any) -> Any:
        async def run(request: web.Request) -> web.Response:
            body = await request.read()
            key = cookie_of(request)
            current = device.sessions.get(key) if key else None
            cipher = current.handshake.cipher if current and current.established else None
            if cipher is None:
                raise web.HTTPInternalServerError(text="No session")
            try:
                answer = await handler(cipher.decrypt(body))
            except (security.SessionError, wifi.ProtocolError) as err:
                device.sessions.pop(key or "", None)
                device.log.append(f"request refused: {err}")
                raise web.HTTPInternalServerError(text="Failed to execute handler") from None
            return web.Response(
                body=cipher.encrypt(answer), content_type="application/octet-stream"
            )

        return run

    app.router.add_post("/proto-ver", proto_ver)
    app.router.add_post("/prov-session", session)
    app.router.add_post("/prov-config", secured(device.config))
    app.router.add_post("/prov-scan", secured(device.scan))
    app.router.add_post("/prov-ctrl", secured(device.ctrl))
    if device.cfg.rainmaker:
        app.router.add_post("/cloud_user_assoc", secured(device.user_assoc))
    return app


async def serve(device: EmulatedDevice, host: str, port: int) -> web.AppRunner:
    """Start serving; returns the runner (``await runner.cleanup()`` to stop)."""
    runner = web.AppRunner(build_app(device), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    raise RuntimeError("the emulator is not listening")
