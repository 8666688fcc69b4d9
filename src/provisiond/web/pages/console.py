"""The admin console's index: its sections (the pages of each are in their own flow module:
devices, imports, labels, profiles, people, operations, overview)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from provisiond.web.pages.rendering import AdminDep, PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)


@router.get("/admin")
async def console_page(page: AdminDep) -> Response:
    return page.render("console.html")
