"""A device's timeline in words a person reads: ``Claimed by tech@kanarra.example at
Anaheim`` rather than ``device.claimed`` by ``user:tech@kanarra.example``.

One pure function, :func:`sentence`, over an event's type, actor and data; the device page
shows it above the event's time. Every event type that concerns a device has its words here
(:data:`DEVICE_EVENTS`; tests/unit/test_timeline_words.py holds the table to it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from provisiond.domain.events import EventType

Data = Mapping[str, Any]


def actor_words(actor: str) -> str:
    """Who did it, as a person reads it: ``user:boss@x`` -> ``boss@x``, ``token:ci`` -> ``API
    token ci``, ``cli:root`` -> ``the command line (root)``, ``device:S1`` -> ``the device``."""
    kind, sep, who = actor.partition(":")
    if not sep:
        return actor
    return {
        "user": who,
        "token": f"API token {who}",
        "cli": f"the command line ({who})",
        "device": "the device",
        "profile": f"profile {who}",
    }.get(kind, actor)


def _site(path: Any) -> str:
    """The site a group path names: its last segment (``Kanarra/West/Anaheim`` -> Anaheim)."""
    return str(path).rsplit("/", 1)[-1] if path else ""


def _at(path: Any) -> str:
    return f" at {_site(path)}" if path else ""


def _credential(kind: Any) -> str:
    return {
        "access-token": "an access token",
        "mqtt-basic": "MQTT credentials",
        "x509": "a certificate",
        "lorawan": "LoRaWAN keys",
    }.get(str(kind), "credentials")


def _registered(by: str, d: Data) -> str:
    profile = d.get("profile")
    return f"Registered by {by}" + (f" with profile {profile}" if profile else "")


def _claimed(by: str, d: Data) -> str:
    owner = d.get("owner")
    where = _at(d.get("group"))
    if owner and owner != by:
        return f"Claimed by {by} for {owner}{where}"
    if d.get("target") == "group" and d.get("owner_group"):
        return f"Claimed by {by} for {_site(d['owner_group'])}{where}"
    return f"Claimed by {by}{where}"


def _released(by: str, d: Data) -> str:
    kept = " (its history cleared)" if d.get("policy") == "reset" else ""
    return f"Released by {by}{_at(d.get('group')).replace(' at ', ' from ')}{kept}"


def _issued(by: str, d: Data) -> str:
    what = _credential(d.get("type"))
    if d.get("rotated"):
        return f"Credentials rotated by {by}: {what}"
    if d.get("replaced") is not None:
        return f"LoRaWAN keys replaced by {by}"
    return f"Credentials issued by {by}: {what}"


def _revoked(by: str, d: Data) -> str:
    n = len(d.get("credential_ids") or ())
    count = "1 credential" if n == 1 else f"{n} credentials"
    reason = d.get("reason")
    if reason == "rotated":
        return f"{count} replaced by the rotation"
    return f"Credentials revoked by {by} ({count})"


def _provisioned(_by: str, d: Data) -> str:
    if d.get("factory_reset"):
        return "Provisioned again after a factory reset"
    profile = d.get("profile")
    via = f" over {d['transport']}" if d.get("transport") else ""
    return "Provisioned itself" + (f" with profile {profile}" if profile else "") + via


def _moved(by: str, d: Data) -> str:
    return f"Moved by {by} to {_site(d.get('group')) or 'another group'}"


def _renamed(by: str, d: Data) -> str:
    return f"Renamed “{d.get('name', '')}” by {by}"


def _proof(d: Data) -> str:
    return {
        "button": "a button press",
        "code": "its claim code",
        "device-secret": "its device secret",
        "none": "no proof needed",
    }.get(str(d.get("proof", "")), "a proof")


def _fixed(text: str) -> Callable[[str, Data], str]:
    return lambda by, _d: text.format(by=by)


#: The words of every event type that concerns a device: (who, data) -> sentence.
WORDS: dict[EventType, Callable[[str, Data], str]] = {
    EventType.DEVICE_REGISTERED: _registered,
    EventType.DEVICES_IMPORTED: _fixed("Registered by import, by {by}"),
    EventType.DEVICE_CLAIMED: _claimed,
    EventType.DEVICE_RELEASED: _released,
    EventType.DEVICE_DELETED: _fixed("Deleted by {by}"),
    EventType.DEVICE_RENAMED: _renamed,
    EventType.DEVICE_MOVED: _moved,
    EventType.CREDENTIALS_ISSUED: _issued,
    EventType.CREDENTIALS_REVOKED: _revoked,
    EventType.DEVICE_PROVISIONED: _provisioned,
    EventType.DEVICE_REPROVISION_REFUSED: _fixed(
        "Asked to provision again without a valid proof: refused"
    ),
    EventType.CLAIM_STARTED: lambda by, d: f"Claim started by {by} (proof: {_proof(d)})",
    EventType.CLAIM_PROVEN: lambda _by, d: f"Possession proven by {_proof(d)}",
    EventType.CLAIM_REJECTED: lambda by, _d: f"Wrong proof given by {by}",
    EventType.CLAIM_FAILED: lambda by, d: f"Claim by {by} failed: {d.get('reason', 'refused')}",
    EventType.CLAIM_EXPIRED: _fixed("Claim expired before it was finished"),
    EventType.CLAIM_CANCELLED: _fixed("Claim cancelled by {by}"),
    EventType.CLAIM_WINDOW_OPENED: _fixed("The device opened a claim window"),
    EventType.CLAIM_ASSOCIATION_ISSUED: lambda by, d: (
        f"Association token issued by {by} for {d.get('user', 'a user')}"
    ),
    EventType.LORAWAN_REGISTERED: _fixed("Registered in The Things Stack"),
    EventType.LORAWAN_REMOVED: _fixed("Removed from The Things Stack"),
    EventType.LORAWAN_FAILED: lambda _by, d: (
        f"The Things Stack refused it: {d.get('error', 'an error')}"
    ),
    EventType.LORAWAN_CONFLICT: _fixed(
        "The Things Stack holds another end device with its identity"
    ),
    EventType.LORAWAN_REMOVAL_SKIPPED: _fixed(
        "Left in The Things Stack (its end device is not provisiond's)"
    ),
    EventType.LORAWAN_ADOPTED: _fixed("Its end device in The Things Stack adopted by {by}"),
}

#: The event types that concern a device (and have words here).
DEVICE_EVENTS = frozenset(WORDS)


def sentence(kind: EventType, actor: str, data: Data) -> str:
    """The event in words: what happened, by whom, where."""
    words = WORDS.get(kind)
    by = actor_words(actor)
    if words is None:
        return f"{kind.value} by {by}"
    return words(by, data)
