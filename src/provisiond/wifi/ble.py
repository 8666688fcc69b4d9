"""The BLE transport of ESP provisioning (bleak), for hosts with Bluetooth.

The device advertises its provisioning name (``PROV_…``); each endpoint is a GATT
characteristic whose user description (descriptor 0x2901) is the endpoint's name. A request
is written to the characteristic (with response) and the answer read back from it.

bleak is imported only when BLE is asked for: without it, or without a Bluetooth adapter,
the command says so and nothing else changes. This transport cannot be exercised on a host
without Bluetooth; the protocol above it is the one the HTTP transport's tests cover.
"""

from __future__ import annotations

from typing import Any

from provisiond.errors import WifiProvisioningFailed

USER_DESCRIPTION = "2901"
NO_BLE = (
    "install the bleak package and make sure this computer has a working Bluetooth "
    "adapter, or use the device's soft access point"
)


class BleTransport:
    def __init__(self, name: str, *, timeout: float = 10.0) -> None:
        self.name = name
        self._timeout = timeout
        self._client: Any = None
        self._endpoints: dict[str, str] = {}

    async def connect(self) -> None:
        try:
            from bleak import BleakClient, BleakScanner
        except ImportError:
            raise WifiProvisioningFailed("BLE is not available on this host", NO_BLE) from None
        try:
            device = await BleakScanner.find_device_by_name(self.name, timeout=self._timeout)
            if device is None:
                raise WifiProvisioningFailed(
                    f"no device named {self.name} is advertising",
                    "is it in provisioning mode, and near this computer?",
                )
            self._client = BleakClient(device, timeout=self._timeout)
            await self._client.connect()
            for service in self._client.services:
                for characteristic in service.characteristics:
                    for descriptor in characteristic.descriptors:
                        if USER_DESCRIPTION not in str(descriptor.uuid)[:9]:
                            continue
                        raw = await self._client.read_gatt_descriptor(descriptor.handle)
                        self._endpoints[bytes(raw).decode(errors="replace")] = characteristic.uuid
        except WifiProvisioningFailed:
            raise
        except Exception as err:  # bleak's backends (BlueZ/D-Bus, WinRT, CoreBluetooth) differ
            raise WifiProvisioningFailed(f"Bluetooth: {err}", NO_BLE) from None
        if not self._endpoints:
            raise WifiProvisioningFailed(
                f"{self.name} lists no provisioning endpoints",
                "is it an ESP device in provisioning mode?",
            )

    async def post(self, endpoint: str, body: bytes) -> bytes:
        if self._client is None:
            await self.connect()
        uuid = self._endpoints.get(endpoint)
        if uuid is None:
            raise WifiProvisioningFailed(f"the device has no {endpoint} endpoint over BLE")
        try:
            await self._client.write_gatt_char(uuid, body, response=True)
            return bytes(await self._client.read_gatt_char(uuid))
        except Exception as err:  # bleak's errors differ per platform backend
            raise WifiProvisioningFailed(f"Bluetooth: {err}", NO_BLE) from None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.disconnect()
            self._client = None
