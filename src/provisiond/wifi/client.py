"""The host side of ESP Wi-Fi provisioning over the device's soft access point (HTTP).

One HTTP/1.1 connection; the session cookie the device sets is sent back. Every failure is
a :class:`WifiError` whose ``hint`` says what to try (the reference's troubleshooting).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from provisiond.errors import WifiProvisioningFailed
from provisiond.protocols.espprov import security, wifi
from provisiond.wifi.ble import BleTransport

DEFAULT_DEVICE = "192.168.4.1:80"
HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/plain"}


WifiError = WifiProvisioningFailed  # what failed; its ``hint``: what to try


NOT_ANSWERING = (
    "is it in provisioning mode (its soft access point, PROV_…, is up)? Is "
    "this computer joined to that access point? Reset the device and try again"
)
HINTS = {
    wifi.FailReason.AUTH_ERROR: "check the passphrase (it is case-sensitive)",
    wifi.FailReason.NOT_FOUND: "is it a 2.4 GHz network (ESP32s do not see 5 GHz)? Is the "
    "device in range of it? Check the network name",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    status: wifi.StationStatus
    seconds: float


class ProvisioningClient:
    """Over the device's soft access point (HTTP), or over BLE with ``ble_name``."""

    def __init__(
        self, device: str = DEFAULT_DEVICE, *, timeout: float = 10.0, ble_name: str | None = None
    ) -> None:
        self.device = ble_name or device
        self._http = httpx.AsyncClient(
            base_url=f"http://{device}", timeout=timeout, headers=HEADERS
        )
        self._ble: BleTransport | None = (
            BleTransport(ble_name, timeout=timeout) if ble_name else None
        )
        self._session: security.ClientSession | None = None
        self.version: wifi.Version | None = None

    async def __aenter__(self) -> ProvisioningClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._http.aclose()
        if self._ble is not None:
            await self._ble.close()

    async def _post(self, endpoint: str, body: bytes, refused: WifiError | None = None) -> bytes:
        """The device's answer; ``refused`` is raised for an answer other than 200."""
        if self._ble is not None:
            return await self._ble.post(endpoint, body)
        try:
            response = await self._http.post(f"/{endpoint}", content=body)
        except httpx.TimeoutException:
            raise WifiError(
                f"the device at {self.device} did not answer in time", NOT_ANSWERING
            ) from None
        except httpx.HTTPError as err:
            raise WifiError(
                f"cannot reach the device at {self.device}: {err}", NOT_ANSWERING
            ) from None
        cookie = response.headers.get("set-cookie")
        if cookie:
            name, _, value = cookie.split(";", 1)[0].partition("=")
            self._http.cookies.set(name.strip(), value.strip())
        if response.status_code != 200:
            raise refused or WifiError(
                f"the device answered {response.status_code} to {endpoint}",
                "the session was closed by the device: run the command again",
            )
        return bytes(response.content)

    async def read_version(self) -> wifi.Version:
        try:
            self.version = wifi.parse_version(await self._post(wifi.VERSION, b"---"))
        except wifi.ProtocolError as err:
            raise WifiError(
                f"this does not look like an ESP device in provisioning mode: {err}", NOT_ANSWERING
            ) from None
        return self.version

    def choose_security(
        self, level: int | None, pop: str | None, username: str | None, password: str | None
    ) -> security.ClientSession:
        """The session the device asks for (or ``level``), with the secrets it needs."""
        v = self.version
        if level is None:
            level = (
                v.security
                if v and v.security is not None
                else 0
                if v and "no_sec" in v.capabilities
                else 1
            )
        if level == 0:
            return security.Sec0Client()
        if level == 1:
            if v is not None and not v.needs_pop:
                return security.Sec1Client(None)
            if not pop:
                raise WifiError(
                    "this device needs its proof of possession (PoP)",
                    "it is on the device's label or in its QR code: pass it as "
                    "the POP argument or with --qr",
                )
            return security.Sec1Client(pop)
        if level == 2:
            if not username or not password:
                raise WifiError(
                    "security 2 needs the device's user name and password",
                    "pass --username and the PoP (the SRP password) as POP",
                )
            return security.Sec2Client(username, password, patch_level=v.patch_level if v else 1)
        raise WifiError(f"security {level} is not one ESP devices speak (0, 1 or 2)")

    async def open_session(self, session: security.ClientSession) -> None:
        request: bytes | None = session.start()
        refused = WifiError(
            "the device refused the session: a wrong proof of possession "
            "(or user name and password)",
            "check them on the device's label or QR code",
        )
        try:
            while request is not None:
                request = session.answer(await self._post(wifi.SESSION, request, refused))
        except security.SessionError as err:
            raise WifiError(
                f"no secure session: {err}", "check the proof of possession or the password"
            ) from None
        self._session = session

    async def _call(self, endpoint: str, body: bytes) -> bytes:
        if self._session is None or self._session.cipher is None:
            raise WifiError("no session with the device yet")
        cipher = self._session.cipher
        answer = await self._post(endpoint, cipher.encrypt(body))
        try:
            return cipher.decrypt(answer)
        except security.SessionError as err:
            raise WifiError(f"the device's answer failed its check: {err}") from None

    async def scan(self, *, poll: float = 0.5, limit: float = 30.0) -> list[wifi.Network]:
        try:
            wifi.parse_scan_answer(await self._call(wifi.SCAN, wifi.scan_start()), 1)
            deadline = time.monotonic() + limit
            while True:
                finished, count = wifi.parse_scan_status(
                    await self._call(wifi.SCAN, wifi.scan_status())
                )
                if finished:
                    break
                if time.monotonic() > deadline:
                    raise WifiError("the device's scan did not finish in time")
                await asyncio.sleep(poll)  # the device scans: nothing to wait on but it
            found: list[wifi.Network] = []
            while len(found) < count:
                page = wifi.parse_scan_results(
                    await self._call(
                        wifi.SCAN, wifi.scan_results(len(found), min(4, count - len(found)))
                    )
                )
                if not page:
                    break
                found += page
        except wifi.ProtocolError as err:
            raise WifiError(f"the scan failed: {err}") from None
        return found

    async def configure(self, ssid: str, passphrase: str) -> None:
        try:
            message = wifi.set_config(ssid, passphrase)
        except wifi.ProtocolError as err:
            raise WifiError(str(err)) from None
        try:
            wifi.check_set_config(await self._call(wifi.CONFIG, message))
            wifi.check_apply_config(await self._call(wifi.CONFIG, wifi.apply_config()))
        except wifi.ProtocolError as err:
            raise WifiError(f"the device did not take the settings: {err}") from None

    async def wait_connected(
        self,
        *,
        poll: float = 1.0,
        limit: float = 60.0,
        progress: Callable[[wifi.StationStatus, float], None] | None = None,
    ) -> Outcome:
        started = time.monotonic()
        while True:
            try:
                status = wifi.parse_status(await self._call(wifi.CONFIG, wifi.get_status()))
            except wifi.ProtocolError as err:
                raise WifiError(f"the device's status is unreadable: {err}") from None
            elapsed = time.monotonic() - started
            if progress is not None:
                progress(status, elapsed)
            if status.state is wifi.StationState.CONNECTED:
                return Outcome(status, elapsed)
            if status.state is wifi.StationState.FAILED:
                reason = status.reason or wifi.FailReason.NOT_FOUND
                what = (
                    "the passphrase was refused"
                    if reason is wifi.FailReason.AUTH_ERROR
                    else "the network was not found"
                )
                raise WifiError(f"the device could not join the network: {what}", HINTS[reason])
            if elapsed > limit:
                raise WifiError(
                    f"the device did not connect within {limit:g} s",
                    "is the network up and in range? Try again, or reset the device",
                )
            await asyncio.sleep(poll)  # the device connects: nothing to wait on but it

    async def associate_user(self, user_id: str, secret_key: str) -> str:
        """RainMaker's user-node association; the device's node id."""
        try:
            return wifi.parse_user_mapping_answer(
                await self._call(wifi.USER_MAPPING, wifi.set_user_mapping(user_id, secret_key))
            )
        except wifi.ProtocolError as err:
            raise WifiError(f"the user association failed: {err}") from None

    async def reset(self) -> None:
        try:
            wifi.parse_ctrl_answer(await self._call(wifi.CTRL, wifi.ctrl_reset()))
        except wifi.ProtocolError as err:
            raise WifiError(f"the reset failed: {err}") from None
