"""/api/v1/events: the audit log, filtered and paged, scoped to the caller's subtree."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Request, Response

from provisiond.domain.limits import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX
from provisiond.errors import InvalidInput
from provisiond.services import events as service
from provisiond.web.api.schemas import EventPage, EventRead
from provisiond.web.deps import ContainerDep, OperatorDep
from provisiond.web.problems import responses

router = APIRouter(prefix="/api/v1", tags=["events"])


@router.get("/events", response_model=EventPage, responses=responses(InvalidInput))
async def list_events(
    request: Request,
    response: Response,
    c: ContainerDep,
    op: OperatorDep,
    serial: str | None = Query(None, description="one device's (a deleted one's too)"),
    group: str | None = Query(None, description="a group path: its whole subtree"),
    actor: str | None = Query(None, description="e.g. `token:ci`, `user:ann@example.com`"),
    kind: list[str] = Query(  # noqa: B008
        default_factory=list,
        description="an event type, e.g. `device.claimed`; repeat for any of several",
    ),
    since: datetime | None = Query(  # noqa: B008
        None,
        description="at or after (ISO 8601; no zone: UTC)",
    ),
    until: datetime | None = Query(  # noqa: B008
        None,
        description="before (ISO 8601; no zone: UTC)",
    ),
    cursor: str | None = Query(None, description="`next_cursor` of the previous page"),
    limit: int = Query(PAGE_SIZE_DEFAULT, ge=1, le=PAGE_SIZE_MAX),
) -> EventPage:
    """The events the token's scope covers, newest first, one page at a time (keyset
    pagination). Events of no group are listed to operator-wide tokens only."""
    page = await service.list_events(
        c.uow(),
        scope=op.scope,
        serial=serial,
        group=group,
        actor=actor,
        kinds=kind,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )
    if page.next_cursor:
        url = request.url.include_query_params(cursor=page.next_cursor)
        response.headers["Link"] = f'<{url}>; rel="next"'
    return EventPage(items=[EventRead.of(e) for e in page.items], next_cursor=page.next_cursor)
