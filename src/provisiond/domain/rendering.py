"""The one JSON shape of a domain object that more than one adapter shows.

The admin API (``DeviceRead``) and the command line (``--json``) render a device from the
same dict. Ids and times stay Python values (``uuid.UUID``, ``datetime``): each adapter's
encoder writes them (pydantic for the API, orjson for the CLI), so the fields and what they
hold are defined once and neither output changes.
"""

from __future__ import annotations

from typing import Any

from provisiond.domain.device import Device


def device_fields(d: Device) -> dict[str, Any]:
    """A device as the API's device responses and the CLI's ``--json`` show it."""
    return {
        "id": d.id,
        "serial": d.serial,
        "name": d.name,
        "model": d.model,
        "state": d.state.value,
        "group": d.group_path,
        "owner_kind": d.owner_kind,
        "owner": d.owner_email if d.owner_user_id else d.group_path,
        "tags": d.tags,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "claimed_at": d.claimed_at,
    }
