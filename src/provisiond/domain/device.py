"""Devices and their lifecycle.

The lifecycle is one table: ``(state, action) -> next state``. Anything not in the table is
refused with :class:`~provisiond.errors.InvalidTransition`. Services ask :data:`LIFECYCLE`
whether a device may be claimed or released; the store's guarded updates take the states
they move a device from (and to) from it.

    registered --claim--> claimed --release--> released --claim--> claimed

A device is *owned* when claimed: by a user (``owner_user_id``) or by a group (no owning
user). It sits in a group (``group_id``: its site); a group-owned device is owned by the group
it sits in, or by the group that claimed it for itself (``owning_group_path``: a claim for
"my group" places the device at a site below the claimer's group). Registered and released
devices have no owner and no group.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from provisiond.domain.limits import NAME_MAX, TAG_KEY_MAX, TAG_VALUE_MAX, TAGS_PER_DEVICE_MAX
from provisiond.domain.state_machine import StateMachine
from provisiond.domain.text import has_control_chars
from provisiond.errors import InvalidInput, InvalidTransition, Problem


class DeviceState(StrEnum):
    REGISTERED = "registered"
    CLAIMED = "claimed"
    RELEASED = "released"


class DeviceAction(StrEnum):
    CLAIM = "claim"
    RELEASE = "release"


TRANSITIONS: dict[tuple[DeviceState, DeviceAction], DeviceState] = {
    (DeviceState.REGISTERED, DeviceAction.CLAIM): DeviceState.CLAIMED,
    (DeviceState.CLAIMED, DeviceAction.RELEASE): DeviceState.RELEASED,
    (DeviceState.RELEASED, DeviceAction.CLAIM): DeviceState.CLAIMED,
}


def _refuse(state: DeviceState, action: DeviceAction) -> InvalidTransition:
    return InvalidTransition(
        f"a {state} device cannot be {action}ed", state=str(state), action=str(action)
    )


LIFECYCLE = StateMachine(TRANSITIONS, _refuse)


def next_state(state: DeviceState, action: DeviceAction) -> DeviceState:
    return LIFECYCLE.apply(state, action)


@dataclass(frozen=True, slots=True)
class Device:
    id: uuid.UUID
    serial: str
    name: str
    model: str | None
    state: DeviceState
    group_id: uuid.UUID | None
    group_path: str | None
    owner_user_id: uuid.UUID | None
    owner_email: str | None
    created_at: datetime
    updated_at: datetime
    claimed_at: datetime | None = None
    tags: dict[str, str] = field(default_factory=dict)
    owning_group_path: str | None = None  # the owning group, when not the one it sits in

    @property
    def owner_kind(self) -> str | None:
        if self.owner_user_id is not None:
            return "user"
        if self.group_id is not None:
            return "group"
        return None

    @property
    def owner_group(self) -> str | None:
        """The path of the group that owns the device (None: a user owns it, or nobody)."""
        if self.owner_kind != "group":
            return None
        return self.owning_group_path or self.group_path


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """What registering one device takes, as given (unchecked): the CLI's options and the
    API's body both build one; services.devices.create_device checks it. With a group (a
    path) or an owner (a user's e-mail) the device is claimed too."""

    serial: str
    name: str | None = None  # None or blank: the serial
    model: str | None = None
    group: str | None = None
    owner: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


# Columns of an import file (and fields of the create API) that are not tags.
RESERVED_FIELDS = frozenset({"serial", "name", "model", "group", "owner", "profile", "id"})

_TAG_KEY = re.compile(r"[A-Za-z0-9_.\-]+")


def name_problem(name: str) -> str | None:
    if len(name) > NAME_MAX:
        return f"is {len(name)} characters long; at most {NAME_MAX} are allowed"
    if has_control_chars(name):
        return "contains a control character"
    return None


def tag_key_problem(key: str) -> str | None:
    if not key:
        return "a tag name is empty"
    if len(key) > TAG_KEY_MAX:
        return f"tag name {key[:20]!r}... is longer than {TAG_KEY_MAX} characters"
    if _TAG_KEY.fullmatch(key) is None:
        return f"tag name {key!r} may hold only letters, digits, '_', '.' and '-'"
    if key.lower() in RESERVED_FIELDS:
        return f"{key!r} is a device field, not a tag"
    return None


def tag_value_problem(value: str) -> str | None:
    if len(value) > TAG_VALUE_MAX:
        return f"is {len(value)} characters long; at most {TAG_VALUE_MAX} are allowed"
    if has_control_chars(value):
        return "contains a control character"
    return None


def parse_name(text: str, *, field: str = "name") -> str:
    name = text.strip()
    problem = name_problem(name)
    if problem:
        raise InvalidInput(f"{field} {problem}", problems=[Problem(problem, field=field)])
    return name


def parse_tags(tags: dict[str, str], *, field: str = "tags") -> dict[str, str]:
    problems: list[Problem] = []
    if len(tags) > TAGS_PER_DEVICE_MAX:
        problems.append(Problem(f"a device has at most {TAGS_PER_DEVICE_MAX} tags", field=field))
    out: dict[str, str] = {}
    for key, value in tags.items():
        kp = tag_key_problem(key)
        if kp:
            problems.append(Problem(kp, field=field))
            continue
        vp = tag_value_problem(value)
        if vp:
            problems.append(Problem(vp, field=f"{field}.{key}"))
            continue
        out[key] = value
    if problems:
        raise InvalidInput("; ".join(str(p) for p in problems), problems=problems)
    return out
