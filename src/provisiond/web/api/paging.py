"""What every paged listing of the API shares: the `cursor` and `limit` parameters, and
the `Link: <…>; rel="next"` header (the answer's `next_cursor` in a URL)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response

from provisiond.domain.limits import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX

Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page")]
Limit = Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX, description="items per page")]
LIMIT = PAGE_SIZE_DEFAULT


def link_next(request: Request, response: Response, next_cursor: str | None) -> None:
    if next_cursor:
        url = request.url.include_query_params(cursor=next_cursor)
        response.headers["Link"] = f'<{url}>; rel="next"'
