"""Webhooks: a group's subscription of a URL to events, and how deliveries are signed.

A webhook receives the events of its group's subtree, and nothing else: an event carries the
subtree it belongs to (domain/events.py), and an event that belongs to no group (unclaimed
stock, the catalogue, operator actions) goes only to operator-wide webhooks (no group),
which only an operator-wide caller may create.

A delivery is one event, POSTed as JSON with these headers:

    Content-Type: application/json
    X-Provisiond-Event: device.claimed
    X-Provisiond-Delivery: 4711            (retries of one delivery keep its number)
    X-Provisiond-Signature: t=1764075600,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

The receiver recomputes the HMAC over the timestamp, a dot and the raw body with the secret
it was shown when the webhook was made, compares in constant time, and refuses timestamps
far from its clock (replays). Deliveries are at least once: the event's ``id`` tells
duplicates apart and orders them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from provisiond.domain.destinations import BadHost, address_of, normal_host, numeric
from provisiond.domain.events import EventType
from provisiond.domain.scope import Scope
from provisiond.domain.users import Role
from provisiond.errors import InvalidInput, Problem

EVENTS = (
    EventType.DEVICE_REGISTERED,
    EventType.DEVICE_PROVISIONED,
    EventType.CLAIM_STARTED,
    EventType.CLAIM_PROVEN,
    EventType.DEVICE_CLAIMED,
    EventType.DEVICE_RELEASED,
    EventType.CREDENTIALS_ISSUED,
    EventType.CREDENTIALS_REVOKED,
    EventType.DEVICE_DELETED,
)
SIGNATURE_HEADER = "X-Provisiond-Signature"
EVENT_HEADER = "X-Provisiond-Event"
DELIVERY_HEADER = "X-Provisiond-Delivery"
URL_MAX = 2000
BACKOFF_FIRST = timedelta(seconds=1)
BACKOFF_MAX = timedelta(hours=1)
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # every attempt failed


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    """What creating a webhook takes, as given (unchecked): the CLI's options and the API's
    body both build one; services.webhooks.create_webhook checks it."""

    group: str | None  # a group path; None: operator-wide (every event, those of no group too)
    url: str
    events: Sequence[str] | None = None  # event type names; None or empty: all of EVENTS


@dataclass(frozen=True, slots=True)
class Webhook:
    id: uuid.UUID
    group_id: uuid.UUID | None  # None: operator-wide
    group_path: str | None
    url: str
    events: tuple[EventType, ...]
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int
    created_at: datetime

    @property
    def operator_wide(self) -> bool:
        return self.group_id is None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    webhook_id: uuid.UUID
    event_id: int
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


def parse_url(text: str) -> str:
    """A webhook URL, checked for its form (where it may send is checked by
    services/destinations.py: that needs the allow-list and a resolver)."""
    url = text.strip()
    problem = _url_problem(url)
    if problem:
        raise InvalidInput(f"url {problem}", problems=[Problem(problem, field="url")])
    return url


def _url_problem(url: str) -> str | None:
    if len(url) > URL_MAX:
        return f"is longer than {URL_MAX} characters"
    if _UNSAFE.search(url):
        return "must not contain spaces, control characters or backslashes"
    try:
        parts = urlsplit(url)
    except ValueError:  # a bracketed host that is not IPv6
        return "has a host that is not a valid IPv6 address"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user name or password (deliveries are signed)"
    try:
        if parts.port == 0:
            raise ValueError("port 0")
        host = normal_host(parts.hostname)
        if numeric(host):
            address_of(host)
    except BadHost as err:
        return f"has a host that {err}"
    except ValueError:
        return "has a port that is not a number from 1 to 65535"
    return None


def parse_events(names: Sequence[str] | None) -> tuple[EventType, ...]:
    """The event types asked for (all of them when none are named)."""
    if not names:
        return EVENTS
    known = {e.value: e for e in EVENTS}
    wrong = [n for n in names if n not in known]
    if wrong:
        message = f"unknown event(s) {', '.join(map(repr, wrong))}: choose from {', '.join(known)}"
        raise InvalidInput(message, problems=[Problem(message, field="events")])
    return tuple(known[n] for n in dict.fromkeys(names))


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, now: int, tolerance: int = 300) -> bool:
    """What a receiver does (and what the tests do): check the signature and its age."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: 1 s, 2 s, 4 s … at most 1 h."""
    wait: timedelta = BACKOFF_FIRST * (1 << max(0, min(attempts - 1, 20)))
    return min(wait, BACKOFF_MAX)


def receives(webhook_path: str | None, event_path: str | None) -> bool:
    """Whether a webhook of the group at ``webhook_path`` (None: operator-wide) receives an
    event that belongs to the subtree at ``event_path`` (None: to no group): the scope
    rule, as for a reader of that subtree."""
    return Scope(Role.VIEWER, webhook_path).covers(event_path)
