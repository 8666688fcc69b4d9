"""Events: facts that happened, stored for audit in the transaction that made them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    DEVICE_REGISTERED = "device.registered"
    DEVICES_IMPORTED = "devices.imported"
    DEVICE_CLAIMED = "device.claimed"
    DEVICE_RELEASED = "device.released"
    DEVICE_DELETED = "device.deleted"
    DEVICE_RENAMED = "device.renamed"  # by an admin (the console)
    DEVICE_MOVED = "device.moved"  # to another group of the admin's subtree (the console)
    CREDENTIALS_ISSUED = "credentials.issued"
    CREDENTIALS_REVOKED = "credentials.revoked"
    DEVICE_PROVISIONED = "device.provisioned"
    # a device already provisioned asked again without a proof the profile accepts
    DEVICE_REPROVISION_REFUSED = "device.reprovision-refused"
    GROUP_CREATED = "group.created"
    GROUP_DELETED = "group.deleted"
    USER_CREATED = "user.created"
    MODEL_ADDED = "model.added"
    MODEL_DELETED = "model.deleted"
    TOKEN_CREATED = "token.created"
    TOKEN_REVOKED = "token.revoked"
    PROFILE_CREATED = "profile.created"
    PROFILE_ENABLED = "profile.enabled"
    PROFILE_DISABLED = "profile.disabled"
    PROFILE_SECRET_ROTATED = "profile.secret-rotated"
    PROFILE_JWT_KEY_SET = "profile.jwt-key-set"
    PROFILE_UPDATED = "profile.updated"
    CA_CREATED = "ca.created"
    CLAIM_STARTED = "claim.started"
    CLAIM_PROVEN = "claim.proven"
    CLAIM_REJECTED = "claim.rejected"  # a wrong claim code or device secret
    CLAIM_FAILED = "claim.failed"  # too many wrong proofs
    CLAIM_EXPIRED = "claim.expired"
    CLAIM_CANCELLED = "claim.cancelled"
    CLAIM_WINDOW_OPENED = "claim.window-opened"  # the device opened one (ThingsBoard)
    CLAIM_ASSOCIATION_ISSUED = "claim.association-issued"  # a one-time user-node token
    USER_SIGNED_IN = "user.signed-in"
    USER_SIGNED_OUT = "user.signed-out"
    USER_SIGN_IN_FAILED = "user.sign-in-failed"
    USER_LOCKED = "user.locked"
    USER_DISABLED = "user.disabled"
    USER_ENABLED = "user.enabled"
    USER_INVITED = "user.invited"  # an invitation link was made (and mailed, or shown)
    USER_INVITATION_REVOKED = "user.invitation-revoked"  # an admin took it back
    USER_ROLE_CHANGED = "user.role-changed"
    USER_MOVED = "user.moved"  # to another group
    USER_PASSWORD_RESET_ISSUED = "user.password-reset-issued"  # a reset link was made
    USER_PASSWORD_CHANGED = "user.password-changed"  # through a reset link
    GROUP_RENAMED = "group.renamed"
    GROUP_MOVED = "group.moved"  # under another parent (its subtree with it)
    LORAWAN_REGISTERED = "lorawan.registered"  # in The Things Stack
    LORAWAN_REMOVED = "lorawan.removed"
    LORAWAN_FAILED = "lorawan.failed"
    LORAWAN_CONFLICT = "lorawan.conflict"  # someone else's end device holds its ID or DevEUI
    LORAWAN_REMOVAL_SKIPPED = "lorawan.removal-skipped"  # not provisiond's: left as it is
    LORAWAN_ADOPTED = "lorawan.adopted"  # an operator made someone else's end device ours
    WEBHOOK_CREATED = "webhook.created"
    WEBHOOK_DELETED = "webhook.deleted"
    WEBHOOK_ENABLED = "webhook.enabled"
    WEBHOOK_DISABLED = "webhook.disabled"
    WEBHOOK_REDELIVERED = "webhook.redelivered"  # failed deliveries queued again
    DATABASE_RESTORED = "database.restored"  # `provisiond restore` put a backup in place


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be written (the store assigns its id)."""

    type: EventType
    at: datetime
    actor: str
    device_id: uuid.UUID | None = None
    serial: str | None = None
    group_id: uuid.UUID | None = None
    data: dict[str, Any] = field(default_factory=dict)
    # The subtree the event belongs to, kept with it so a later move or deletion of the
    # group does not change who may read it. None: the store takes the path of group_id
    # at the time of writing; with no group_id either, only operator-wide readers see it.
    group_path: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    type: EventType
    at: datetime
    actor: str
    device_id: uuid.UUID | None
    serial: str | None
    group_id: uuid.UUID | None
    data: dict[str, Any]
    group_path: str | None = None  # the subtree it belongs to (None: operator-wide only)
