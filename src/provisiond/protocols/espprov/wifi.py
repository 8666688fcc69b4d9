"""The Wi-Fi provisioning endpoints' messages, both sides, sans-IO: ``proto-ver`` (JSON, in
clear), then, encrypted by the session, ``prov-config`` (set, apply, status), ``prov-scan``
(start, status, results by page), ``prov-ctrl`` (reset, re-provision) and RainMaker's
user-node association (``cloud_user_assoc``).

Every parser is total: malformed bytes or a refusal raise :class:`ProtocolError` with what
was wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from google.protobuf.message import DecodeError, Message

from provisiond.protocols.espprov.messages import espprov_constants_pb2 as constants
from provisiond.protocols.espprov.messages import espprov_user_mapping_pb2 as user_mapping
from provisiond.protocols.espprov.messages import espprov_wifi_config_pb2 as config
from provisiond.protocols.espprov.messages import espprov_wifi_constants_pb2 as wifi
from provisiond.protocols.espprov.messages import espprov_wifi_ctrl_pb2 as ctrl
from provisiond.protocols.espprov.messages import espprov_wifi_scan_pb2 as scan

# The endpoint names ESP firmware registers (and the HTTP paths, with a leading /).
VERSION = "proto-ver"
SESSION = "prov-session"
CONFIG = "prov-config"
SCAN = "prov-scan"
CTRL = "prov-ctrl"
USER_MAPPING = "cloud_user_assoc"

SSID_MAX = 32
PASSPHRASE_MAX = 64
AUTH_MODES: dict[int, str] = {
    wifi.Open: "open",
    wifi.WEP: "WEP",
    wifi.WPA_PSK: "WPA",
    wifi.WPA2_PSK: "WPA2",
    wifi.WPA_WPA2_PSK: "WPA/WPA2",
    wifi.WPA2_ENTERPRISE: "WPA2 Enterprise",
    wifi.WPA3_PSK: "WPA3",
    wifi.WPA2_WPA3_PSK: "WPA2/WPA3",
}


class ProtocolError(ValueError):
    """A message that is not what the protocol allows, or a refusal."""


class StationState(StrEnum):
    CONNECTED = "connected"
    CONNECTING = "connecting"
    DISCONNECTED = "disconnected"
    FAILED = "failed"


class FailReason(StrEnum):
    AUTH_ERROR = "auth-error"  # wrong passphrase
    NOT_FOUND = "network-not-found"


@dataclass(frozen=True, slots=True)
class Network:
    ssid: str
    channel: int
    rssi: int
    bssid: bytes
    auth: int

    @property
    def auth_name(self) -> str:
        return AUTH_MODES.get(self.auth, f"auth {self.auth}")


@dataclass(frozen=True, slots=True)
class StationStatus:
    state: StationState
    reason: FailReason | None = None
    ip4: str | None = None
    ssid: str | None = None
    attempts_remaining: int | None = None  # while connecting, after a failed attempt


@dataclass(frozen=True, slots=True)
class Version:
    """What ``proto-ver`` says: the provisioning version, security, capabilities."""

    version: str
    security: int | None
    patch_level: int
    capabilities: tuple[str, ...]
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. RainMaker's own section

    @property
    def needs_pop(self) -> bool:
        return "no_pop" not in self.capabilities

    @property
    def can_scan(self) -> bool:
        return "wifi_scan" in self.capabilities


def _parse(message: Message, data: bytes, what: str) -> Any:
    try:
        message.ParseFromString(data)
    except DecodeError as err:
        raise ProtocolError(f"the {what} message is not protobuf: {err}") from None
    return message


def _ok(status: int, what: str) -> None:
    if status != constants.Success:
        name = constants.Status.Name(status) if status in constants.Status.values() else str(status)
        raise ProtocolError(f"the device refused {what} ({name})")


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise ProtocolError(f"{what} is not UTF-8") from None


# ---------------------------------------------------------------------------- proto-ver


def parse_version(data: bytes) -> Version:
    """The device's ``proto-ver`` answer (JSON; a bare version string from old firmware)."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        text = data.decode(errors="replace").strip()
        if text.startswith("v") and len(text) < 16:
            return Version(text, None, 0, ())
        raise ProtocolError("the proto-ver answer is not JSON") from None
    prov = document.get("prov") if isinstance(document, dict) else None
    if not isinstance(prov, dict):
        raise ProtocolError('the proto-ver answer has no "prov" section')
    caps = prov.get("cap", [])
    security = prov.get("sec_ver")
    patch = prov.get("sec_patch_ver", 0)
    return Version(
        str(prov.get("ver", "")),
        security if isinstance(security, int) else None,
        patch if isinstance(patch, int) else 0,
        tuple(c for c in caps if isinstance(c, str)) if isinstance(caps, list) else (),
        {k: v for k, v in document.items() if k != "prov"},
    )


def render_version(version: Version) -> bytes:
    prov: dict[str, Any] = {"ver": version.version, "cap": list(version.capabilities)}
    if version.security is not None:
        prov["sec_ver"] = version.security
        if version.security == 2:
            prov["sec_patch_ver"] = version.patch_level
    return json.dumps({"prov": prov, **version.extra}).encode()


# ------------------------------------------------------------------------------ config


def _config(msg: Any) -> Any:
    return config.WiFiConfigPayload(msg=msg)


def set_config(ssid: str, passphrase: str) -> bytes:
    raw_ssid, raw_pass = ssid.encode(), passphrase.encode()
    if not 1 <= len(raw_ssid) <= SSID_MAX:
        raise ProtocolError(f"the network name must be 1 to {SSID_MAX} bytes")
    if len(raw_pass) > PASSPHRASE_MAX:
        raise ProtocolError(f"the passphrase must be at most {PASSPHRASE_MAX} bytes")
    m = _config(config.TypeCmdSetConfig)
    m.cmd_set_config.ssid = raw_ssid
    m.cmd_set_config.passphrase = raw_pass
    return bytes(m.SerializeToString())


def apply_config() -> bytes:
    m = _config(config.TypeCmdApplyConfig)
    m.cmd_apply_config.SetInParent()
    return bytes(m.SerializeToString())


def get_status() -> bytes:
    m = _config(config.TypeCmdGetStatus)
    m.cmd_get_status.SetInParent()
    return bytes(m.SerializeToString())


def parse_config_answer(data: bytes, expected: int) -> Any:
    m = _parse(config.WiFiConfigPayload(), data, "prov-config")
    if m.msg != expected:
        raise ProtocolError(f"expected prov-config message {expected}, got {m.msg}")
    return m


def check_set_config(data: bytes) -> None:
    _ok(
        parse_config_answer(data, config.TypeRespSetConfig).resp_set_config.status,
        "the network settings",
    )


def check_apply_config(data: bytes) -> None:
    _ok(
        parse_config_answer(data, config.TypeRespApplyConfig).resp_apply_config.status,
        "to apply the settings",
    )


def parse_status(data: bytes) -> StationStatus:
    r = parse_config_answer(data, config.TypeRespGetStatus).resp_get_status
    _ok(r.status, "its status")
    if r.sta_state == wifi.Connected:
        c = r.connected
        return StationStatus(
            StationState.CONNECTED,
            ip4=c.ip4_addr or None,
            ssid=c.ssid.decode(errors="replace") or None,
        )
    if r.sta_state == wifi.Connecting:
        left = (
            r.attempt_failed.attempts_remaining
            if r.WhichOneof("state") == "attempt_failed"
            else None
        )
        return StationStatus(StationState.CONNECTING, attempts_remaining=left)
    if r.sta_state == wifi.ConnectionFailed:
        reason = FailReason.AUTH_ERROR if r.fail_reason == wifi.AuthError else FailReason.NOT_FOUND
        return StationStatus(StationState.FAILED, reason=reason)
    if r.sta_state == wifi.Disconnected:
        return StationStatus(StationState.DISCONNECTED)
    raise ProtocolError(f"unknown station state {r.sta_state}")


# Device side


def parse_config_request(data: bytes) -> Any:
    m = _parse(config.WiFiConfigPayload(), data, "prov-config")
    if m.msg not in (config.TypeCmdGetStatus, config.TypeCmdSetConfig, config.TypeCmdApplyConfig):
        raise ProtocolError(f"prov-config message {m.msg} is not a command")
    return m


def config_answer(kind: int, status: int = constants.Success) -> bytes:
    m = _config(kind)
    if kind == config.TypeRespSetConfig:
        m.resp_set_config.status = status
    elif kind == config.TypeRespApplyConfig:
        m.resp_apply_config.status = status
    return bytes(m.SerializeToString())


def status_answer(status: StationStatus, *, channel: int = 0, bssid: bytes = b"") -> bytes:
    m = _config(config.TypeRespGetStatus)
    r = m.resp_get_status
    r.status = constants.Success
    if status.state is StationState.CONNECTED:
        r.sta_state = wifi.Connected
        r.connected.ip4_addr = status.ip4 or ""
        r.connected.auth_mode = wifi.WPA2_PSK
        r.connected.ssid = (status.ssid or "").encode()
        r.connected.bssid = bssid
        r.connected.channel = channel
    elif status.state is StationState.CONNECTING:
        r.sta_state = wifi.Connecting
        if status.attempts_remaining is not None:
            r.attempt_failed.attempts_remaining = status.attempts_remaining
    elif status.state is StationState.FAILED:
        r.sta_state = wifi.ConnectionFailed
        r.fail_reason = (
            wifi.AuthError if status.reason is FailReason.AUTH_ERROR else wifi.NetworkNotFound
        )
    else:
        r.sta_state = wifi.Disconnected
    return bytes(m.SerializeToString())


# -------------------------------------------------------------------------------- scan


def _scan(msg: Any) -> Any:
    return scan.WiFiScanPayload(msg=msg)


def scan_start(
    *, blocking: bool = True, passive: bool = False, group_channels: int = 5, period_ms: int = 120
) -> bytes:
    m = _scan(scan.TypeCmdScanStart)
    m.cmd_scan_start.blocking = blocking
    m.cmd_scan_start.passive = passive
    m.cmd_scan_start.group_channels = group_channels
    m.cmd_scan_start.period_ms = period_ms
    return bytes(m.SerializeToString())


def scan_status() -> bytes:
    m = _scan(scan.TypeCmdScanStatus)
    m.cmd_scan_status.SetInParent()
    return bytes(m.SerializeToString())


def scan_results(start: int, count: int) -> bytes:
    m = _scan(scan.TypeCmdScanResult)
    m.cmd_scan_result.start_index = start
    m.cmd_scan_result.count = count
    return bytes(m.SerializeToString())


def parse_scan_answer(data: bytes, expected: int) -> Any:
    m = _parse(scan.WiFiScanPayload(), data, "prov-scan")
    if m.msg != expected:
        raise ProtocolError(f"expected prov-scan message {expected}, got {m.msg}")
    _ok(m.status, "to scan")
    return m


def parse_scan_status(data: bytes) -> tuple[bool, int]:
    r = parse_scan_answer(data, scan.TypeRespScanStatus).resp_scan_status
    return bool(r.scan_finished), int(r.result_count)


def parse_scan_results(data: bytes) -> list[Network]:
    entries = parse_scan_answer(data, scan.TypeRespScanResult).resp_scan_result.entries
    return [
        Network(
            e.ssid.decode(errors="replace"),
            int(e.channel),
            int(e.rssi),
            bytes(e.bssid),
            int(e.auth),
        )
        for e in entries
    ]


def parse_scan_request(data: bytes) -> Any:
    m = _parse(scan.WiFiScanPayload(), data, "prov-scan")
    if m.msg not in (scan.TypeCmdScanStart, scan.TypeCmdScanStatus, scan.TypeCmdScanResult):
        raise ProtocolError(f"prov-scan message {m.msg} is not a command")
    return m


def scan_answer(
    kind: int,
    *,
    finished: bool = False,
    count: int = 0,
    networks: list[Network] | None = None,
    status: int = constants.Success,
) -> bytes:
    m = _scan(kind)
    m.status = status
    if kind == scan.TypeRespScanStart:
        m.resp_scan_start.SetInParent()
    elif kind == scan.TypeRespScanStatus:
        m.resp_scan_status.scan_finished = finished
        m.resp_scan_status.result_count = count
    elif kind == scan.TypeRespScanResult:
        m.resp_scan_result.SetInParent()
        for n in networks or []:
            e = m.resp_scan_result.entries.add()
            e.ssid, e.channel, e.rssi, e.bssid, e.auth = (
                n.ssid.encode(),
                n.channel,
                n.rssi,
                n.bssid,
                n.auth,
            )
    return bytes(m.SerializeToString())


# -------------------------------------------------------------------------------- ctrl


def ctrl_reset() -> bytes:
    m = ctrl.WiFiCtrlPayload(msg=ctrl.TypeCmdCtrlReset)
    m.cmd_ctrl_reset.SetInParent()
    return bytes(m.SerializeToString())


def ctrl_reprovision() -> bytes:
    m = ctrl.WiFiCtrlPayload(msg=ctrl.TypeCmdCtrlReprov)
    m.cmd_ctrl_reprov.SetInParent()
    return bytes(m.SerializeToString())


def parse_ctrl_answer(data: bytes) -> None:
    m = _parse(ctrl.WiFiCtrlPayload(), data, "prov-ctrl")
    if m.msg not in (ctrl.TypeRespCtrlReset, ctrl.TypeRespCtrlReprov):
        raise ProtocolError(f"prov-ctrl message {m.msg} is not an answer")
    _ok(m.status, "the control command")


def parse_ctrl_request(data: bytes) -> int:
    m = _parse(ctrl.WiFiCtrlPayload(), data, "prov-ctrl")
    if m.msg not in (ctrl.TypeCmdCtrlReset, ctrl.TypeCmdCtrlReprov):
        raise ProtocolError(f"prov-ctrl message {m.msg} is not a command")
    return int(m.msg)


def ctrl_answer(request_kind: int, status: Any = constants.Success) -> bytes:
    kind = (
        ctrl.TypeRespCtrlReset if request_kind == ctrl.TypeCmdCtrlReset else ctrl.TypeRespCtrlReprov
    )
    m = ctrl.WiFiCtrlPayload(msg=kind, status=status)
    if kind == ctrl.TypeRespCtrlReset:
        m.resp_ctrl_reset.SetInParent()
    else:
        m.resp_ctrl_reprov.SetInParent()
    return bytes(m.SerializeToString())


# ------------------------------------------------------------------------ user mapping


def set_user_mapping(user_id: str, secret_key: str) -> bytes:
    m = user_mapping.RMakerConfigPayload(msg=user_mapping.TypeCmdSetUserMapping)
    m.cmd_set_user_mapping.UserID = user_id
    m.cmd_set_user_mapping.SecretKey = secret_key
    return bytes(m.SerializeToString())


def parse_user_mapping_answer(data: bytes) -> str:
    """The device's node id, once it accepted the association."""
    m = _parse(user_mapping.RMakerConfigPayload(), data, "user association")
    if m.msg != user_mapping.TypeRespSetUserMapping:
        raise ProtocolError(f"user association message {m.msg} is not an answer")
    r = m.resp_set_user_mapping
    if r.Status != user_mapping.Success:
        raise ProtocolError(f"the device refused the user association (status {r.Status})")
    return str(r.NodeId)


def parse_user_mapping_request(data: bytes) -> tuple[str, str]:
    m = _parse(user_mapping.RMakerConfigPayload(), data, "user association")
    if m.msg != user_mapping.TypeCmdSetUserMapping:
        raise ProtocolError(f"user association message {m.msg} is not a command")
    return str(m.cmd_set_user_mapping.UserID), str(m.cmd_set_user_mapping.SecretKey)


def user_mapping_answer(node_id: str, ok: bool = True) -> bytes:
    m = user_mapping.RMakerConfigPayload(msg=user_mapping.TypeRespSetUserMapping)
    m.resp_set_user_mapping.Status = user_mapping.Success if ok else user_mapping.InvalidParam
    m.resp_set_user_mapping.NodeId = node_id
    return bytes(m.SerializeToString())
