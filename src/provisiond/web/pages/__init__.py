"""The pages: the installer's on a phone (sign in, scan a label, prove possession, claim;
browse devices; release) and the admin console. Server-rendered (Jinja2, Bootstrap), one
module per flow; what they share, the error pages included, is in rendering.py."""

from __future__ import annotations

from fastapi import APIRouter

from provisiond.web.pages import (
    claim,
    console,
    devices,
    imports,
    labels,
    operations,
    overview,
    people,
    profiles,
    sign_in,
)
from provisiond.web.pages.rendering import STATIC_DIR

__all__ = ["STATIC_DIR", "router"]

FLOWS = (
    sign_in,
    claim,
    devices,
    overview,
    console,
    imports,
    labels,
    operations,
    profiles,
    people,
)
router = APIRouter(include_in_schema=False)
for _flow in FLOWS:
    router.include_router(_flow.router)
