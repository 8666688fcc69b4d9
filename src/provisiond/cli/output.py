"""Rendering for the CLI: tables for people, JSON for scripts, errors on stderr. No logic."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from provisiond.domain.catalog import DeviceModel
from provisiond.domain.credentials import Credential
from provisiond.domain.events import Event
from provisiond.domain.groups import Group
from provisiond.domain.profiles import Profile
from provisiond.domain.tokens import ApiToken
from provisiond.domain.users import User
from provisiond.errors import ProvisiondError

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


def print_json(value: Any) -> None:
    sys.stdout.write(
        orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n"
    )
    sys.stdout.flush()


def print_json_line(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value).decode() + "\n")


def print_error(err: ProvisiondError) -> None:
    line = Text("error", style="bold red")
    line.append(f"[{err.code}]: {err.detail}")
    stderr.print(line, highlight=False)
    for problem in err.problems:
        if str(problem) != err.detail:
            stderr.print(f"  {problem}", markup=False, highlight=False)
    count = err.extra.get("problem_count")
    if isinstance(count, int) and count > len(err.problems):
        stderr.print(f"  … and {count - len(err.problems)} more", markup=False)


def success(message: str) -> None:
    stderr.print(message, markup=False, highlight=False)


def table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None
) -> None:
    t = Table(*columns, title=title, show_lines=False, header_style="bold")
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    stdout.print(t)


# ----------------------------------------------------------------------------- to dicts


def group_dict(g: Group, devices: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(g.id),
        "path": g.path,
        "name": g.name,
        "parent": g.parent_path,
        "depth": g.depth,
        "created_at": g.created_at.isoformat(),
    }
    if devices is not None:
        out["devices"] = devices
    return out


def user_dict(u: User) -> dict[str, Any]:
    return {
        "id": str(u.id),
        "email": u.email,
        "role": u.role.value,
        "group": u.group_path,
        "created_at": u.created_at.isoformat(),
        "disabled_at": u.disabled_at.isoformat() if u.disabled_at else None,
    }


def model_dict(m: DeviceModel) -> dict[str, Any]:
    return {
        "id": str(m.id),
        "name": m.name,
        "description": m.description,
        "created_at": m.created_at.isoformat(),
    }


def token_dict(t: ApiToken) -> dict[str, Any]:
    return {
        "id": str(t.id),
        "name": t.name,
        "role": t.role.value,
        "group": t.group_path,
        "expires_at": t.expires_at.isoformat() if t.expires_at else None,
        "created_at": t.created_at.isoformat(),
        "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
        "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
    }


def profile_dict(p: Profile) -> dict[str, Any]:
    return {
        "id": str(p.id),
        "name": p.name,
        "key": p.key,
        "strategy": p.strategy.value,
        "group": p.group_path,
        "model": p.model,
        "credentials": [t.value for t in p.credential_types],
        "rate_per_minute": p.rate_per_minute,
        "source_rate_per_minute": p.source_rate_per_minute,
        "enabled": p.enabled,
        "created_at": p.created_at.isoformat(),
        "updated_at": p.updated_at.isoformat(),
        "secret_rotated_at": p.secret_rotated_at.isoformat(),
        "registration_algorithm": "ES256" if p.jwt_public_key else "HS256",
        "ca": p.ca_name,
        "certificate_days": p.certificate_days,
        "claim_proof": p.claim_proof.value if p.claim_proof else None,
        "claim_window_seconds": p.claim_window_seconds,
        "release_policy": p.release_policy.value,
        "lorawan": p.network.to_json(),
        "reprovision": p.reprovision.value,
        "device_secret_min_length": p.device_secret_min_length,
        "device_ca": p.device_ca_name,
    }


def credential_dict(c: Credential) -> dict[str, Any]:
    return {
        "id": str(c.id),
        "type": c.type.value,
        "created_at": c.created_at.isoformat(),
        "revoked_at": c.revoked_at.isoformat() if c.revoked_at else None,
    }


def event_dict(e: Event) -> dict[str, Any]:
    return {
        "id": e.id,
        "type": e.type.value,
        "at": e.at.isoformat(),
        "actor": e.actor,
        "serial": e.serial,
        "device_id": str(e.device_id) if e.device_id else None,
        "group": e.group_path,
        "data": e.data,
    }


def short_time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""
