"""Broker accounts: what a device's credential becomes on the user's MQTT broker.

An account is a user name, a password and (for MQTT basic) the client id it is bound to.
The user name is never a secret, so the broker's files, its account list and its log hold
nothing a device authenticates with; the secret is only the password, which the broker
keeps hashed:

- an **access token provisiond issued** (``<selector>.<verifier>``) is named by its public
  half, the selector: its credential id in base64url, random and unknown before the token
  exists. The device holds it (the part of its token before the dot), a rotation gives a new
  one with the new token, and nobody can take the name first;
- an **access token the device chose** has no public half: it is named by the device's
  serial;
- **MQTT basic** credentials are used as issued: user name, password, bound client id;
- X.509 and LoRaWAN credentials have no broker account.

The token is the password (Mosquitto's plugin refuses a connection without one).
ThingsBoard's convention — the token as the user name, for firmware that can send nothing
else — is an opt-in (``token_as_username``); the token then is both.

Two credentials can want one user name (a device chose an MQTT user name equal to another
device's serial, say). The broker never gets two accounts of one name: the credential issued
first holds it (:func:`name_holders`); the other device waits, with the reason.

Every device's account may publish and subscribe under its own topic prefix only
(``devices/{device_id}`` by default, the ``broker__topic_prefix`` setting).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from provisiond.domain.credentials import (
    BrokerLogin,
    CredentialType,
    kind_of,
    token_selector,
    types_where,
)

#: The credential types with an account on the broker (domain/credentials.py's table).
BROKER_TYPES = frozenset(types_where(lambda k: k.broker_account is not BrokerLogin.NONE))
DEVICE_GROUP = "provisiond-devices"  # every account provisiond manages is in this group
ROLE_PREFIX = "provisiond-device-"
NAMESPACE_MAX = 32
PREFIX_PLACEHOLDER = "{device_id}"


@dataclass(frozen=True, slots=True)
class BrokerAccount:
    username: str
    password: str | None  # None where only the name is needed (EMQX asks provisiond)
    device_id: uuid.UUID
    credential_id: uuid.UUID
    client_id: str | None = None
    issued_at: datetime | None = None  # orders credentials that want one name
    secret_name: bool = False  # the user name is the token (token_as_username)

    @property
    def digest(self) -> str:
        return username_digest(self.username)


def username_digest(username: str) -> str:
    """How provisiond's records name an account without keeping its user name in clear (with
    ``token_as_username`` a user name is a token)."""
    return hashlib.sha256(username.encode()).hexdigest()


def account_name(
    ctype: CredentialType,
    *,
    credential_id: uuid.UUID,
    lookup: str | None,
    serial: str,
    secret: str | None,
    token_as_username: bool,
) -> str | None:
    """The user name a credential connects with (None: it has no account, or its name is a
    token not known here)."""
    login = kind_of(ctype).broker_account
    if login is BrokerLogin.TOKEN:
        if token_as_username:
            return secret
        return serial if lookup is not None else token_selector(credential_id)
    if login is BrokerLogin.BASIC:
        return lookup or None
    return None


def account_for(  # noqa: PLR0913 - every input of the account is a plain value: pure, no object to group them in
    ctype: CredentialType,
    *,
    device_id: uuid.UUID,
    credential_id: uuid.UUID,
    lookup: str | None,
    client_id: str | None,
    serial: str,
    secret: str | None,
    token_as_username: bool = False,
    issued_at: datetime | None = None,
) -> BrokerAccount | None:
    """The broker account of a credential, given its secret (None: the type has none)."""
    name = account_name(
        ctype,
        credential_id=credential_id,
        lookup=lookup,
        serial=serial,
        secret=secret,
        token_as_username=token_as_username,
    )
    if name is None:
        return None
    basic = kind_of(ctype).broker_account is BrokerLogin.BASIC
    return BrokerAccount(
        name,
        secret,
        device_id,
        credential_id,
        (client_id or None) if basic else None,
        issued_at,
        secret_name=not basic and token_as_username,
    )


def _rank(a: BrokerAccount) -> tuple[bool, datetime | None, uuid.UUID]:
    return (a.issued_at is None, a.issued_at, a.credential_id)


def name_holders(accounts: Iterable[BrokerAccount]) -> dict[str, BrokerAccount]:
    """Which account holds each user name: of the credentials that want one name, the one
    issued first (then the smaller id). Later ones do not get it while the first is active:
    a name is never taken from a device that has it by one that came after."""
    holders: dict[str, BrokerAccount] = {}
    for a in accounts:
        held = holders.get(a.username)
        if held is None or (held.credential_id != a.credential_id and _rank(a) < _rank(held)):
            holders[a.username] = a
    return holders


NAME_TAKEN = "its MQTT user name is held by credential "  # how name_taken's reason begins


def name_taken(holder: BrokerAccount) -> str:
    """Why an account waits: its user name is held by another credential (the name itself
    is not said: with ``token_as_username`` it is a token)."""
    return (
        f"{NAME_TAKEN}{holder.credential_id} of device "
        f"{holder.device_id}, issued first; revoke one of the two, or give this device "
        "new credentials"
    )


def session_expiry(now: datetime, max_seconds: int, client_id: str) -> int:
    """When a session must authenticate again (Unix seconds): ``max_seconds`` from now, less
    up to a tenth of it chosen by the client id, so that a fleet that connected at once (a
    broker restart) does not have to reconnect at once."""
    spread = max_seconds // 10
    offset = int.from_bytes(hashlib.sha256(client_id.encode()).digest()[:4]) % (spread + 1)
    return int(now.timestamp()) + max_seconds - offset


def check_namespace(namespace: str) -> str:
    """The ``broker__namespace`` setting, or ValueError saying what is wrong with it: empty
    (today's names) or lower-case letters, digits and inner hyphens, at most 32."""
    if namespace and (
        len(namespace) > NAMESPACE_MAX
        or not all(c.isascii() and (c.islower() or c.isdigit() or c == "-") for c in namespace)
        or namespace.startswith("-")
        or namespace.endswith("-")
    ):
        raise ValueError(
            f"must be empty or lower-case letters, digits and inner hyphens "
            f"(at most {NAMESPACE_MAX}), e.g. plant-b"
        )
    return namespace


def device_group(namespace: str = "") -> str:
    """The broker group of every account a registry manages: ``provisiond-devices``, or
    ``provisiond-<namespace>-devices``. Its accounts and roles are all a registry ever lists
    as its own, so registries in different namespaces share a broker."""
    return f"provisiond-{namespace}-devices" if namespace else DEVICE_GROUP


def role_prefix(namespace: str = "") -> str:
    return f"provisiond-{namespace}-device-" if namespace else ROLE_PREFIX


def is_device_group(groupname: str) -> bool:
    """Whether a broker group is a provisiond registry's (:func:`device_group`, of any
    namespace)."""
    return groupname == DEVICE_GROUP or (
        groupname.startswith("provisiond-") and groupname.endswith("-devices")
    )


def is_device_role(rolename: str, device_id: uuid.UUID) -> bool:
    """Whether a broker role is provisiond's role of this device (:func:`role_name`, of any
    namespace)."""
    return rolename.startswith("provisiond-") and rolename.endswith(f"-device-{device_id}")


def role_name(device_id: uuid.UUID, namespace: str = "") -> str:
    return f"{role_prefix(namespace)}{device_id}"


def device_of_role(rolename: str, namespace: str = "") -> uuid.UUID | None:
    """The device of one of this namespace's roles (None: not one; another namespace's role
    never parses as one, as its rest is no UUID)."""
    prefix = role_prefix(namespace)
    if not rolename.startswith(prefix):
        return None
    try:
        return uuid.UUID(rolename[len(prefix) :])
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
    return [
        {"permission": "allow", "action": "all", "topic": f"{prefix}/#"},
        {"permission": "allow", "action": "all", "topic": prefix},
        {"permission": "deny", "action": "all", "topic": "#"},
    ]


def event_filter(template: str, suffix: str) -> str:
    """The subscription that hears every device's ``suffix`` topic under its prefix."""
    return f"{template.replace(PREFIX_PLACEHOLDER, '+')}/{suffix}"


def device_in_topic(template: str, suffix: str, topic: str) -> uuid.UUID | None:
    """The device id in a topic of :func:`event_filter`'s subscription, or None."""
    head, _, tail = template.partition(PREFIX_PLACEHOLDER)
    ending = f"{tail}/{suffix}"
    if not topic.startswith(head) or not topic.endswith(ending):
        return None
    middle = topic[len(head) : len(topic) - len(ending)]
    try:
        return uuid.UUID(middle) if "/" not in middle else None
    except ValueError:
        return None
