"""The calls that register and remove one end device in The Things Stack, and the rule that
provisiond writes to, or deletes, only end devices that are its own.

An end device is provisiond's when its Identity Server record carries the attribute
``provisiond-device-id`` with provisiond's device id (domain/tts.py). The mark is read from
The Things Stack whenever it matters — on a 409 before updating, before every removal — not
taken from provisiond's own table, which may be a restored backup or out of date.

- **Register:** create in the Identity Server. A 409 names who holds the ID or the DevEUI
  (``id_taken``; ``end_device_euis_taken`` with the holder): its record is read, and only a
  holder marked as this device's is updated and registered further; any other is
  :class:`Foreign` and nothing is written to it. A Join, Network or Application Server that
  holds the EUIs under another ID (``end_device_euis_taken``) is :class:`Foreign` too.
- **Remove:** read the record first; delete (Application, Network, Join, then Identity
  Server) only when it is provisiond's; someone else's is left, with the reason.
- What this attempt created is deleted again when a later step is refused, so nothing is
  left half-registered.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Protocol

from provisiond.domain.tts import EndDevice, is_ours, not_ours_because
from provisiond.integrations.tts import protocol as api


class TtsClient(Protocol):
    async def call(self, call: api.Call) -> api.Answer:
        """The answer (status None: no answer)."""
        ...

    async def close(self) -> None: ...


class Permanent(Exception):
    """The Things Stack refused, and asking again will not help."""


class Transient(Exception):
    """No answer, or a failure The Things Stack may get over."""


class Foreign(Exception):
    """An end device provisiond did not create holds the ID or the DevEUI it needs."""

    def __init__(self, reason: str, application_id: str, end_device_id: str) -> None:
        super().__init__(reason)
        self.application_id = application_id
        self.end_device_id = end_device_id


def _adopt_hint(serial: str) -> str:
    return (
        f"delete it in The Things Stack, or take it over with `provisiond lorawan adopt {serial}`"
    )


class Registrar:
    def __init__(self, client: TtsClient) -> None:
        self._client = client

    async def send(
        self, call: api.Call, *, absent_ok: bool = False, conflict_ok: bool = False
    ) -> api.Answer:
        answer = await self._client.call(call)
        if (
            answer.ok
            or (absent_ok and answer.status == 404)
            or (conflict_ok and answer.status == 409)
        ):
            return answer
        path = call.path.split("?")[0]
        what = f"{call.method} {path}: " + (
            f"{answer.status} {answer.text}" if answer.status else answer.text or "no answer"
        )
        raise Transient(what) if api.transient(answer.status) else Permanent(what)

    async def read(self, application_id: str, device_id: str) -> api.StoredEndDevice | None:
        """The Identity Server's record with its attributes; None when there is none."""
        call = api.get_from_identity_server(application_id, device_id)
        answer = await self.send(call, absent_ok=True)
        if answer.status == 404:
            return None
        found = api.parse_end_device(answer.body)
        if found is None:
            raise Permanent(f"GET {call.path.split('?')[0]}: the answer is not an end device")
        return found

    async def register(self, device: EndDevice, *, legacy: bool = False) -> EndDevice:
        """Register everywhere, as ``device`` or — when an end device of its own holds its
        DevEUI under another ID (adopted before) — as that one; the end device registered.
        On a refusal, what this attempt created is removed again."""
        made = False
        try:
            created = await self.send(api.create_in_identity_server(device), conflict_ok=True)
            if created.status == 409:
                device = await self._take_own(device, created, legacy=legacy)
            else:
                made = True
            for call in api.register(device):
                answer = await self.send(call, conflict_ok=True)
                if answer.status == 409:
                    raise self._held_elsewhere(device, call.component, answer)
        except (Permanent, Foreign) as err:
            if made:
                await self._undo(device, err)
            raise
        return device

    async def _take_own(self, device: EndDevice, answer: api.Answer, *, legacy: bool) -> EndDevice:
        """After a 409 from the Identity Server: the holder, updated, if it is ours."""
        error = api.parse_error(answer.body)
        application_id, holder = device.application_id, device.device_id
        if error.name == api.EUIS_TAKEN:
            application_id = error.attributes.get("application_id", "")
            holder = error.attributes.get("device_id", "")
            if not holder:
                raise Foreign(
                    f"DevEUI {device.dev_eui} is registered as another end device "
                    "(The Things Stack did not say which): delete it there",
                    "",
                    "",
                )
            if application_id != device.application_id:
                raise Foreign(
                    f"DevEUI {device.dev_eui} is registered as {holder} in application "
                    f"{application_id}: delete it there, or give the device's profile that "
                    "application (provisiond registers end devices in the profile's "
                    "application only)",
                    application_id,
                    holder,
                )
        found = await self.read(application_id, holder)
        if found is None:
            raise Transient(
                f"end device {holder} in application {application_id} was there "
                "and is gone: tried again"
            )
        same_id = holder == device.device_id
        if not is_ours(
            found.attributes, device.owner, legacy=legacy and same_id, serial=device.serial
        ):
            because = not_ours_because(found.attributes)
            what = (
                f"end device {holder} in application {application_id} exists"
                if same_id
                else f"DevEUI {device.dev_eui} is registered as {holder} in application "
                f"{application_id}"
            )
            raise Foreign(
                f"{what} and provisiond did not create it ({because}): "
                + _adopt_hint(device.serial),
                application_id,
                holder,
            )
        device = replace(device, device_id=holder)
        await self.send(api.update_in_identity_server(device, found.attributes))
        return device

    @staticmethod
    def _held_elsewhere(device: EndDevice, component: str, answer: api.Answer) -> Exception:
        """A 409 from a Join, Network or Application Server's Set."""
        error = api.parse_error(answer.body)
        if error.name != api.EUIS_TAKEN:
            return Permanent(f"{api.COMPONENT_NAMES[component]}: 409 {answer.text}")
        holder = error.attributes.get("device_id", "")
        application_id = error.attributes.get("application_id", "")
        return Foreign(
            f"the {api.COMPONENT_NAMES[component]} holds DevEUI {device.dev_eui} as {holder} "
            f"in application {application_id}, and provisiond did not create it: delete it "
            f"from the {api.COMPONENT_NAMES[component]}",
            application_id,
            holder,
        )

    async def _undo(self, device: EndDevice, err: Exception) -> None:
        try:
            await self.remove(device.application_id, device.device_id)
        except (Permanent, Transient) as undo:
            raise Permanent(
                f"{err}; rolling back failed too ({undo}): the next sync removes or completes it"
            ) from err

    async def remove(self, application_id: str, device_id: str) -> None:
        """Delete from every component, the Identity Server last (404s are fine). Only for
        an end device this attempt created, or one :meth:`remove_own` found to be ours."""
        for call in api.remove(application_id, device_id):
            await self.send(call, absent_ok=True)

    async def remove_own(
        self,
        application_id: str,
        device_id: str,
        owner: uuid.UUID,
        *,
        legacy: bool = False,
        serial: str | None = None,
    ) -> str | None:
        """Delete the end device if it is provisiond's device ``owner``'s; otherwise leave
        it and say why (None: removed, or nothing there)."""
        found = await self.read(application_id, device_id)
        if found is None:
            return None
        if not is_ours(found.attributes, owner, legacy=legacy, serial=serial):
            return (
                f"end device {device_id} in application {application_id}: provisiond did "
                f"not create it ({not_ours_because(found.attributes)}); left as it is"
            )
        await self.remove(application_id, device_id)
        return None

    async def mark(self, device: EndDevice, found: api.StoredEndDevice) -> None:
        """Adoption: the end device ``found`` becomes provisiond's (its mark is added)."""
        await self.send(api.mark_in_identity_server(device, found.attributes))
