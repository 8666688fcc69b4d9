"""LoRaWAN devices on The Things Stack: the network settings a profile gives its devices (the
"advanced settings" of the reference: LoRaWAN version, regional parameters, frequency plan,
class B and C), the identifiers provisiond uses there, and how it knows its own end devices.

A device provisiond registers in The Things Stack is ``eui-<DevEUI in lower case>`` (the
Console's convention) in the profile's application (or the deployment's default one). A
swapped device (another DevEUI) is another end device there; provisiond's device, with its
serial and history, stays the same.

**Ownership.** Every end device provisiond creates (or an operator tells it to adopt) carries
the attribute ``provisiond-device-id`` = provisiond's device id in the Identity Server. That
mark, read from The Things Stack when it matters, decides what provisiond may change or
delete: its own database may have been restored from an old backup, and someone may have
replaced the end device since. An end device without the mark, or with another device's,
is someone else's and is never written to.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from provisiond.errors import InvalidInput, Problem

# The enumerations of lorawan-stack's api.swagger.json (v3MACVersion, v3PHYVersion).
MAC_VERSIONS = ("MAC_V1_0", "MAC_V1_0_1", "MAC_V1_0_2", "MAC_V1_0_3", "MAC_V1_0_4", "MAC_V1_1")
PHY_VERSIONS = (
    "TS001_V1_0",
    "TS001_V1_0_1",
    "RP001_V1_0_2",
    "RP001_V1_0_2_REV_B",
    "RP001_V1_1_REV_A",
    "RP001_V1_1_REV_B",
    "RP001_V1_0_3_REV_A",
    "RP002_V1_0_0",
    "RP002_V1_0_1",
    "RP002_V1_0_2",
    "RP002_V1_0_3",
    "RP002_V1_0_4",
)
# Identifiers in The Things Stack: lower-case letters, digits and single dashes, 3 to 36.
_ID = re.compile(r"^[a-z0-9](?:-?[a-z0-9]){2,35}$")
_PLAN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# The attributes provisiond sets on its end devices (end_device.proto: at most 10 pairs).
OWNER_ATTRIBUTE = "provisiond-device-id"
SERIAL_ATTRIBUTE = "provisiond-serial"
MAX_ATTRIBUTES = 10


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """What The Things Stack needs to know about a class of devices; on a profile every
    field is optional (unset: the deployment's ``tts__*`` setting)."""

    application_id: str | None = None
    frequency_plan_id: str | None = None
    lorawan_version: str | None = None
    lorawan_phy_version: str | None = None
    supports_class_b: bool | None = None
    supports_class_c: bool | None = None

    def over(self, defaults: NetworkSettings) -> NetworkSettings:
        """These settings, with the unset ones taken from ``defaults``."""
        return replace(
            defaults,
            **{
                f.name: getattr(self, f.name)
                for f in fields(self)
                if getattr(self, f.name) is not None
            },
        )

    def missing(self) -> list[str]:
        return [
            name
            for name in (
                "application_id",
                "frequency_plan_id",
                "lorawan_version",
                "lorawan_phy_version",
            )
            if getattr(self, name) is None
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> NetworkSettings:
        data = data or {}
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})

    @property
    def empty(self) -> bool:
        return not self.to_json()

    @property
    def needs_nwk_key(self) -> bool:
        """LoRaWAN 1.1 derives network session keys from a NwkKey of its own; 1.0.x from
        the AppKey alone."""
        return (self.lorawan_version or "").startswith("MAC_V1_1")


def _bad(field: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{field} {problem}", problems=[Problem(problem, field=field)])


def parse_network_settings(
    *,
    application_id: str | None = None,
    frequency_plan_id: str | None = None,
    lorawan_version: str | None = None,
    lorawan_phy_version: str | None = None,
    supports_class_b: bool | None = None,
    supports_class_c: bool | None = None,
) -> NetworkSettings:
    """Checked settings (every problem is named by its field)."""
    problems: list[Problem] = []
    if application_id is not None and not _ID.fullmatch(application_id):
        problems.append(
            Problem(
                "must be 3 to 36 lower-case letters, digits and single "
                "dashes (a The Things Stack application id)",
                "tts_application",
            )
        )
    if frequency_plan_id is not None and not _PLAN.fullmatch(frequency_plan_id):
        problems.append(
            Problem("must be a frequency plan id such as EU_863_870_TTN", "frequency_plan")
        )
    if lorawan_version is not None and lorawan_version not in MAC_VERSIONS:
        problems.append(Problem(f"must be one of {', '.join(MAC_VERSIONS)}", "lorawan_version"))
    if lorawan_phy_version is not None and lorawan_phy_version not in PHY_VERSIONS:
        problems.append(Problem(f"must be one of {', '.join(PHY_VERSIONS)}", "lorawan_phy_version"))
    if problems:
        raise InvalidInput("; ".join(str(p) for p in problems), problems=problems)
    return NetworkSettings(
        application_id,
        frequency_plan_id,
        lorawan_version,
        lorawan_phy_version,
        supports_class_b,
        supports_class_c,
    )


def end_device_id(dev_eui: str) -> str:
    return f"eui-{dev_eui.lower()}"


@dataclass(frozen=True, slots=True)
class EndDevice:
    """Everything needed to register one device in The Things Stack."""

    application_id: str
    device_id: str
    dev_eui: str
    join_eui: str
    app_key: str
    name: str
    serial: str
    network: NetworkSettings
    network_server_address: str
    application_server_address: str
    join_server_address: str
    owner: uuid.UUID  # provisiond's device id: the ownership mark
    nwk_key: str | None = None  # LoRaWAN 1.1 only

    def attributes(self, existing: Mapping[str, str] | None = None) -> dict[str, str]:
        """``existing`` attributes with provisiond's mark (and serial, while there is room
        for it): the Identity Server replaces the whole map, so others' keys are kept."""
        out = dict(existing or {})
        out[OWNER_ATTRIBUTE] = str(self.owner)
        if SERIAL_ATTRIBUTE in out or len(out) < MAX_ATTRIBUTES:
            out[SERIAL_ATTRIBUTE] = self.serial
        return out


def is_ours(
    attributes: Mapping[str, str],
    owner: uuid.UUID,
    *,
    legacy: bool = False,
    serial: str | None = None,
) -> bool:
    """Did provisiond create (or adopt) the end device with these attributes for ``owner``?

    ``legacy``: provisiond's record says it registered this end device before it marked
    them, when it set ``provisiond-serial`` only; that attribute (with the device's
    ``serial``, when the device still exists to tell it) is then accepted instead.
    """
    mark = attributes.get(OWNER_ATTRIBUTE)
    if mark is not None:
        return mark == str(owner)
    stamped = attributes.get(SERIAL_ATTRIBUTE)
    return legacy and stamped is not None and serial in (None, stamped)


def not_ours_because(attributes: Mapping[str, str]) -> str:
    """Why an end device is not provisiond's, for the reason shown to operators."""
    mark = attributes.get(OWNER_ATTRIBUTE)
    if mark is None:
        return f"it has no {OWNER_ATTRIBUTE} attribute"
    return f"its {OWNER_ATTRIBUTE} attribute names another device ({mark[:64]})"
