"""The overview of a group's devices: registered, provisioned and claimed, day by day."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from provisiond.services.claims import overview
from provisiond.web.pages.rendering import PageDep, PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)


@router.get("/overview")
async def overview_page(page: PageDep) -> Response:
    c = page.container
    view = await overview.overview(c.uow(), user=page.user, now=c.now())
    return page.render("overview.html", view=view, chart=_funnel_chart(view))


def _funnel_chart(view: overview.Overview) -> dict[str, Any]:
    """Polylines of the three cumulative series, in a 300x120 SVG viewBox."""
    top = max([*view.registered, *view.provisioned, *view.claimed, 1])
    n = len(view.days)

    def points(series: list[int]) -> str:
        return " ".join(
            f"{i * 300 / max(n - 1, 1):.1f},{118 - v * 110 / top:.1f}" for i, v in enumerate(series)
        )

    return {
        "top": top,
        "registered": points(view.registered),
        "provisioned": points(view.provisioned),
        "claimed": points(view.claimed),
    }
