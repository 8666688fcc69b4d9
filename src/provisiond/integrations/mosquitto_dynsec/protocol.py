"""Mosquitto's dynamic security control API (``$CONTROL/dynamic-security/v1``), sans-IO.

An administrative client publishes ``{"commands": [...]}`` to :data:`TOPIC`; the broker
answers on :data:`RESPONSE_TOPIC` with ``{"responses": [...]}``, one per command, in order,
each echoing the command's ``correlationData``. Commands and their fields follow the plugin's
documentation (mosquitto's plugins/dynamic-security/README.md); only what provisiond uses is
here. Every change a command makes is saved by the broker at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = TOPIC + "/response"

# The broker's answers that mean "already as wanted" for an idempotent change.
ALREADY = frozenset(
    {
        "Client already exists",
        "Role already exists",
        "Group already exists",
        "Client is already in this group",
        "ACL with this topic already exists",
    }
)
GONE = frozenset({"Client not found", "Role not found", "Group not found"})

# ACL types (acltype) of a role.
PUBLISH_SEND = "publishClientSend"
PUBLISH_RECEIVE = "publishClientReceive"
SUBSCRIBE = "subscribePattern"
UNSUBSCRIBE = "unsubscribePattern"


class DynsecError(ValueError):
    """The broker's answer is not what the API defines."""


@dataclass(frozen=True, slots=True)
class Acl:
    acltype: str
    topic: str
    allow: bool = True
    priority: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "acltype": self.acltype,
            "topic": self.topic,
            "allow": self.allow,
            "priority": self.priority,
        }


@dataclass(frozen=True, slots=True)
class Response:
    command: str
    error: str | None = None
    correlation: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


def prefix_acls(prefix: str) -> list[Acl]:
    """A device's rights: publish, receive, subscribe and unsubscribe under ``prefix/#``."""
    topic = f"{prefix}/#"
    return [Acl(kind, topic) for kind in (PUBLISH_SEND, PUBLISH_RECEIVE, SUBSCRIBE, UNSUBSCRIBE)]


def _command(name: str, **fields: Any) -> dict[str, Any]:
    return {"command": name, **{k: v for k, v in fields.items() if v is not None}}


def create_role(rolename: str, acls: list[Acl], *, textname: str | None = None) -> dict[str, Any]:
    return _command(
        "createRole", rolename=rolename, textname=textname, acls=[a.to_json() for a in acls]
    )


def delete_role(rolename: str) -> dict[str, Any]:
    """Delete a role. Take it from its clients first: Mosquitto 2.0.11 keeps a dangling
    reference in a client that still holds a deleted role, and later crashes on it."""
    return _command("deleteRole", rolename=rolename)


def get_role(rolename: str) -> dict[str, Any]:
    return _command("getRole", rolename=rolename)


def add_role_acl(rolename: str, acl: Acl) -> dict[str, Any]:
    return _command("addRoleACL", rolename=rolename, **acl.to_json())


def remove_role_acl(rolename: str, acl: Acl) -> dict[str, Any]:
    return _command("removeRoleACL", rolename=rolename, acltype=acl.acltype, topic=acl.topic)


def create_client(
    username: str,
    password: str,
    *,
    clientid: str | None = None,
    roles: list[str] | None = None,
    groups: list[str] | None = None,
    textname: str | None = None,
) -> dict[str, Any]:
    return _command(
        "createClient",
        username=username,
        password=password,
        clientid=clientid,
        textname=textname,
        roles=[{"rolename": r} for r in roles or []],
        groups=[{"groupname": g} for g in groups or []],
    )


def modify_client(
    username: str, *, password: str, clientid: str | None, roles: list[str], groups: list[str]
) -> dict[str, Any]:
    """Set a client's password, client id (``""`` clears it), roles and groups at once."""
    return _command(
        "modifyClient",
        username=username,
        password=password,
        clientid=clientid if clientid is not None else "",
        roles=[{"rolename": r} for r in roles],
        groups=[{"groupname": g} for g in groups],
    )


def remove_client_role(username: str, rolename: str) -> dict[str, Any]:
    return _command("removeClientRole", username=username, rolename=rolename)


def get_client(username: str) -> dict[str, Any]:
    return _command("getClient", username=username)


def delete_client(username: str) -> dict[str, Any]:
    return _command("deleteClient", username=username)


def create_group(groupname: str, *, textname: str | None = None) -> dict[str, Any]:
    return _command("createGroup", groupname=groupname, textname=textname)


def list_clients(*, offset: int = 0, count: int = 1000) -> dict[str, Any]:
    return _command("listClients", verbose=True, offset=offset, count=count)


def list_roles(*, offset: int = 0, count: int = 1000) -> dict[str, Any]:
    return _command("listRoles", verbose=True, offset=offset, count=count)


def encode(commands: list[dict[str, Any]]) -> bytes:
    return json.dumps({"commands": commands}, separators=(",", ":")).encode()


def decode(payload: bytes) -> list[Response]:
    """The responses of one answer, or :class:`DynsecError` if it is not one."""
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DynsecError(f"the broker's answer is not JSON: {err}") from err
    responses = document.get("responses") if isinstance(document, dict) else None
    if not isinstance(responses, list):
        raise DynsecError("the broker's answer has no responses list")
    out = []
    for item in responses:
        if not isinstance(item, dict) or not isinstance(item.get("command"), str):
            raise DynsecError("a response has no command")
        error = item.get("error")
        correlation = item.get("correlationData")
        data = item.get("data")
        out.append(
            Response(
                item["command"],
                error if isinstance(error, str) else None,
                correlation if isinstance(correlation, str) else None,
                data if isinstance(data, dict) else {},
            )
        )
    return out


def names(items: object, key: str) -> list[str]:
    """The ``key`` values of a list of objects (a client's roles or groups)."""
    if not isinstance(items, list):
        return []
    return [i[key] for i in items if isinstance(i, dict) and isinstance(i.get(key), str)]
