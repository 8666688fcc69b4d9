"""A device's timeline in words (domain/timeline.py): every event type that concerns a device
has a sentence a person reads, naming who did it without the actor's prefix."""

from __future__ import annotations

import pytest

from provisiond.domain.events import EventType
from provisiond.domain.timeline import DEVICE_EVENTS, actor_words, sentence

# The event types of a device's history: those about a device, its credentials, its claims
# and its LoRaWAN end device (the rest are about users, groups, profiles, tokens ...).
DEVICE_PREFIXES = ("device.", "devices.", "credentials.", "claim.", "lorawan.")


def test_every_event_type_of_a_device_has_words() -> None:
    concerning = {t for t in EventType if t.value.startswith(DEVICE_PREFIXES)}
    assert concerning == set(DEVICE_EVENTS)


@pytest.mark.parametrize(
    ("kind", "actor", "data", "words"),
    [
        (
            EventType.DEVICE_CLAIMED,
            "user:tech@kanarra.example",
            {"group": "Kanarra/Sadler-Isberg/West/Anaheim", "target": "me", "owner": None},
            "Claimed by tech@kanarra.example at Anaheim",
        ),
        (
            EventType.DEVICE_CLAIMED,
            "user:boss@kanarra.example",
            {"group": "Kanarra/West/Irvine", "target": "group", "owner_group": "Kanarra/West"},
            "Claimed by boss@kanarra.example for West at Irvine",
        ),
        (
            EventType.DEVICES_IMPORTED,
            "cli:root",
            {},
            "Registered by import, by the command line (root)",
        ),
        (EventType.DEVICE_REGISTERED, "token:factory", {}, "Registered by API token factory"),
        (
            EventType.DEVICE_REGISTERED,
            "device:S1",
            {"profile": "button"},
            "Registered by the device with profile button",
        ),
        (
            EventType.CREDENTIALS_ISSUED,
            "user:boss@kanarra.example",
            {"type": "access-token", "rotated": True},
            "Credentials rotated by boss@kanarra.example: an access token",
        ),
        (
            EventType.CREDENTIALS_REVOKED,
            "user:boss@kanarra.example",
            {"credential_ids": ["a", "b"], "reason": "revoked"},
            "Credentials revoked by boss@kanarra.example (2 credentials)",
        ),
        (
            EventType.CREDENTIALS_REVOKED,
            "user:boss@kanarra.example",
            {"credential_ids": ["a"], "reason": "rotated"},
            "1 credential replaced by the rotation",
        ),
        (
            EventType.DEVICE_RELEASED,
            "user:boss@kanarra.example",
            {"group": "Kanarra/West/Anaheim", "policy": "reset"},
            "Released by boss@kanarra.example from Anaheim (its history cleared)",
        ),
        (
            EventType.DEVICE_MOVED,
            "user:boss@kanarra.example",
            {"group": "Kanarra/East", "from": "Kanarra/West"},
            "Moved by boss@kanarra.example to East",
        ),
        (
            EventType.DEVICE_RENAMED,
            "user:boss@kanarra.example",
            {"name": "Lobby meter", "was": "KP001"},
            "Renamed “Lobby meter” by boss@kanarra.example",
        ),
        (
            EventType.CLAIM_PROVEN,
            "device:S1",
            {"proof": "button"},
            "Possession proven by a button press",
        ),
        (
            EventType.DEVICE_PROVISIONED,
            "device:S1",
            {"profile": "esp", "transport": "mqtt"},
            "Provisioned itself with profile esp over mqtt",
        ),
        (EventType.CLAIM_EXPIRED, "provisiond", {}, "Claim expired before it was finished"),
    ],
)
def test_sentences(kind: EventType, actor: str, data: dict[str, object], words: str) -> None:
    assert sentence(kind, actor, data) == words


@pytest.mark.parametrize("kind", sorted(DEVICE_EVENTS))
def test_no_sentence_shows_the_raw_actor_or_type(kind: EventType) -> None:
    """Whatever the data holds (nothing, here), no sentence falls back to the wire names."""
    words = sentence(kind, "user:boss@kanarra.example", {})
    assert words
    assert "user:" not in words
    assert kind.value not in words
    assert words[0].isupper() or words[0].isdigit()


def test_actor_words() -> None:
    assert actor_words("user:tech@kanarra.example") == "tech@kanarra.example"
    assert actor_words("cli:root") == "the command line (root)"
    assert actor_words("provisiond") == "provisiond"
    assert actor_words("odd:thing") == "odd:thing"
