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
from provisiond.domain.rendering import profile_fields
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


def model_dict(m: DeviceModel) -> dict[str, Any]:
    return {
        "id": str(m.id),
        "name": m.name,
        "description": m.description,
        "created_at": m.created_at.isoformat(),
    }


def profile_dict(p: Profile) -> dict[str, Any]:
    """The profile as the API answers it (domain.rendering), but for one key the CLI has
    always named differently: ``claim_window_seconds`` for the API's ``claim_window``."""
    return {
        ("claim_window_seconds" if k == "claim_window" else k): v
        for k, v in profile_fields(p).items()
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
