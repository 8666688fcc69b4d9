"""Broker accounts: what a device's credential becomes on the user's MQTT broker.

- An access token is the MQTT user name (ThingsBoard's convention). Mosquitto's dynamic
  security plugin refuses a connection without a password, so there the token is the
  password too; provisiond's EMQX hooks accept the token with any password.
- MQTT basic credentials are used as issued: user name, password, and the client id the
  account is bound to.
- X.509 and LoRaWAN credentials have no broker account.

Every device's account may publish and subscribe under its own topic prefix only
(``devices/{device_id}`` by default, the ``broker__topic_prefix`` setting).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from provisiond.domain.credentials import CredentialType

BROKER_TYPES = frozenset({CredentialType.ACCESS_TOKEN, CredentialType.MQTT_BASIC})
DEVICE_GROUP = "provisiond-devices"  # every account provisiond manages is in this group
ROLE_PREFIX = "provisiond-device-"
PREFIX_PLACEHOLDER = "{device_id}"


@dataclass(frozen=True, slots=True)
class BrokerAccount:
    username: str
    password: str
    device_id: uuid.UUID
    credential_id: uuid.UUID
    client_id: str | None = None

    @property
    def digest(self) -> str:
        return username_digest(self.username)


def username_digest(username: str) -> str:
    """How provisiond's records name an account without keeping its user name in clear (an
    access token's user name is the token)."""
    return hashlib.sha256(username.encode()).hexdigest()


def account_for(ctype: CredentialType, *, device_id: uuid.UUID, credential_id: uuid.UUID,
                lookup: str | None, client_id: str | None, secret: str
                ) -> BrokerAccount | None:
    """The broker account of a credential, given its secret (None: the type has none)."""
    if ctype is CredentialType.ACCESS_TOKEN:
        return BrokerAccount(secret, secret, device_id, credential_id)
    if ctype is CredentialType.MQTT_BASIC and lookup:
        return BrokerAccount(lookup, secret, device_id, credential_id, client_id or None)
    return None


def role_name(device_id: uuid.UUID) -> str:
    return f"{ROLE_PREFIX}{device_id}"


def device_of_role(rolename: str) -> uuid.UUID | None:
    if not rolename.startswith(ROLE_PREFIX):
        return None
    try:
        return uuid.UUID(rolename[len(ROLE_PREFIX):])
    except ValueError:
        return None


def check_prefix_template(template: str) -> str:
    """The topic prefix template, or ValueError saying what is wrong with it."""
    if PREFIX_PLACEHOLDER not in template:
        raise ValueError(f"must contain {PREFIX_PLACEHOLDER}, e.g. devices/{PREFIX_PLACEHOLDER}")
    if any(c in template for c in "#+\0") or template.startswith("$"):
        raise ValueError("must be a plain topic (no #, +, or leading $)")
    if template.startswith("/") or template.endswith("/"):
        raise ValueError("must not start or end with /")
    try:
        template.format(device_id="x")
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(f"only {PREFIX_PLACEHOLDER} may be in braces ({err})") from err
    return template


def topic_prefix(template: str, device_id: uuid.UUID) -> str:
    return template.format(device_id=device_id)


def topic_within(prefix: str, topic: str) -> bool:
    """Whether a topic (or a subscription's filter) lies under ``prefix``: the prefix itself
    or anything below it. A wildcard can only stand below the prefix, never in it."""
    if topic == prefix:
        return True
    return topic.startswith(prefix + "/") and "\0" not in topic


def device_acl(prefix: str) -> list[dict[str, str]]:
    """The rules EMQX (5.8 and later) applies when given them at authentication."""
    return [{"permission": "allow", "action": "all", "topic": f"{prefix}/#"},
            {"permission": "allow", "action": "all", "topic": prefix},
            {"permission": "deny", "action": "all", "topic": "#"}]


def event_filter(template: str, suffix: str) -> str:
    """The subscription that hears every device's ``suffix`` topic under its prefix."""
    return f"{template.replace(PREFIX_PLACEHOLDER, '+')}/{suffix}"


def device_in_topic(template: str, suffix: str, topic: str) -> uuid.UUID | None:
    """The device id in a topic of :func:`event_filter`'s subscription, or None."""
    head, _, tail = template.partition(PREFIX_PLACEHOLDER)
    ending = f"{tail}/{suffix}"
    if not topic.startswith(head) or not topic.endswith(ending):
        return None
    middle = topic[len(head):len(topic) - len(ending)]
    try:
        return uuid.UUID(middle) if "/" not in middle else None
    except ValueError:
        return None
