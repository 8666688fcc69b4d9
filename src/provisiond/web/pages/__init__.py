"""The pages people use on a phone: sign in, scan a label, prove possession, claim; browse
devices; release. Server-rendered (Jinja2, Bootstrap), one module per flow; what they share,
the error pages included, is in rendering.py."""

from __future__ import annotations

from fastapi import APIRouter

from provisiond.web.pages import claim, console, devices, overview, people, sign_in
from provisiond.web.pages.rendering import STATIC_DIR

__all__ = ["STATIC_DIR", "router"]

router = APIRouter(include_in_schema=False)
for _flow in (sign_in, claim, devices, overview, console, people):
    router.include_router(_flow.router)
