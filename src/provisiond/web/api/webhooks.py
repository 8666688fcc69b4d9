"""/api/v1/webhooks: a group's event subscriptions and their delivery logs."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response

from provisiond.errors import (
    DeliveryDelivered,
    DeliveryNotFound,
    Forbidden,
    GroupNotFound,
    InvalidInput,
    WebhookNotFound,
)
from provisiond.services import webhook_redelivery as redelivery
from provisiond.services import webhooks as service
from provisiond.web.api.paging import LIMIT, Cursor, Limit, link_next
from provisiond.web.api.schemas import (
    DeliveryRead,
    Redelivered,
    RedeliverFailed,
    WebhookCreate,
    WebhookCreated,
    WebhookPage,
    WebhookRead,
)
from provisiond.web.deps import ContainerDep, OperatorDep, actor
from provisiond.web.problems import responses

router = APIRouter(prefix="/api/v1", tags=["webhooks"])


@router.post(
    "/webhooks",
    status_code=201,
    response_model=WebhookCreated,
    responses=responses(GroupNotFound, InvalidInput, Forbidden),
)
async def create_webhook(body: WebhookCreate, c: ContainerDep, op: OperatorDep) -> WebhookCreated:
    """Subscribe a URL to a group's events (`group: null`: every event, operator-wide).
    The signing secret is in this answer only."""
    webhook, secret = await service.create_webhook(
        c.uow(),
        scope=op.scope,
        spec=body.spec(),
        actor=actor(op),
        now=c.now(),
        sealer=c.sealer,
        guard=c.webhook_guard,
    )
    return WebhookCreated(**WebhookRead.of(webhook).model_dump(), secret=secret)


@router.get(
    "/webhooks", response_model=WebhookPage, responses=responses(InvalidInput, GroupNotFound)
)
async def list_webhooks(
    request: Request,
    response: Response,
    c: ContainerDep,
    op: OperatorDep,
    under: str | None = Query(None, description="only this subtree"),
    cursor: Cursor = None,
    limit: Limit = LIMIT,
) -> WebhookPage:
    """The webhooks of the token's subtree, oldest first."""
    page = await service.list_webhooks(
        c.uow(), scope=op.scope, group=under, cursor=cursor, limit=limit
    )
    link_next(request, response, page.next_cursor)
    return WebhookPage(items=[WebhookRead.of(w) for w in page.items], next_cursor=page.next_cursor)


@router.get(
    "/webhooks/{webhook_id}", response_model=WebhookRead, responses=responses(WebhookNotFound)
)
async def get_webhook(webhook_id: str, c: ContainerDep, op: OperatorDep) -> WebhookRead:
    """One webhook, with its deliveries counted by status."""
    webhook, counts = await service.get_webhook(
        c.uow(), scope=op.scope, webhook_id=service.parse_webhook_id(webhook_id)
    )
    return WebhookRead.of(webhook, counts)


@router.post(
    "/webhooks/{webhook_id}/enable",
    response_model=WebhookRead,
    responses=responses(WebhookNotFound, Forbidden),
)
async def enable_webhook(webhook_id: str, c: ContainerDep, op: OperatorDep) -> WebhookRead:
    """Enable (again): its pending deliveries are retried at once."""
    return WebhookRead.of(
        await service.set_webhook_enabled(
            c.uow(),
            scope=op.scope,
            webhook_id=service.parse_webhook_id(webhook_id),
            enabled=True,
            actor=actor(op),
            now=c.now(),
        )
    )


@router.post(
    "/webhooks/{webhook_id}/disable",
    response_model=WebhookRead,
    responses=responses(WebhookNotFound, Forbidden),
)
async def disable_webhook(webhook_id: str, c: ContainerDep, op: OperatorDep) -> WebhookRead:
    """Stop delivering; events keep being queued for it."""
    return WebhookRead.of(
        await service.set_webhook_enabled(
            c.uow(),
            scope=op.scope,
            webhook_id=service.parse_webhook_id(webhook_id),
            enabled=False,
            actor=actor(op),
            now=c.now(),
        )
    )


@router.delete(
    "/webhooks/{webhook_id}", status_code=204, responses=responses(WebhookNotFound, Forbidden)
)
async def delete_webhook(webhook_id: str, c: ContainerDep, op: OperatorDep) -> Response:
    """Delete the webhook and its delivery log."""
    await service.delete_webhook(
        c.uow(),
        scope=op.scope,
        webhook_id=service.parse_webhook_id(webhook_id),
        actor=actor(op),
        now=c.now(),
    )
    return Response(status_code=204)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=list[DeliveryRead],
    responses=responses(WebhookNotFound, InvalidInput),
)
async def list_deliveries(
    webhook_id: str,
    c: ContainerDep,
    op: OperatorDep,
    status: str | None = Query(None, description="pending, delivered or failed"),
    before: int | None = Query(None, description="deliveries older than this id (paging)"),
    limit: int = Query(50, ge=1, le=500),
) -> list[DeliveryRead]:
    """The delivery log, newest first."""
    rows = await service.list_deliveries(
        c.uow(),
        scope=op.scope,
        webhook_id=service.parse_webhook_id(webhook_id),
        status=status,
        before=before,
        limit=limit,
    )
    return [DeliveryRead.of(d) for d in rows]


@router.post(
    "/webhooks/deliveries/{delivery_id}/redeliver",
    response_model=Redelivered,
    responses=responses(DeliveryNotFound, DeliveryDelivered, Forbidden, InvalidInput),
)
async def redeliver_delivery(delivery_id: str, c: ContainerDep, op: OperatorDep) -> Redelivered:
    """Send a failed delivery again (queued at once, every attempt ahead of it); one still
    pending is not queued twice (`queued: 0`)."""
    queued = await redelivery.redeliver_delivery(
        c.uow(),
        scope=op.scope,
        delivery_id=redelivery.parse_delivery_id(delivery_id),
        actor=actor(op),
        now=c.now(),
    )
    return Redelivered(queued=queued)


@router.post(
    "/webhooks/redeliver",
    response_model=Redelivered,
    responses=responses(WebhookNotFound, Forbidden, InvalidInput),
)
async def redeliver_failed(body: RedeliverFailed, c: ContainerDep, op: OperatorDep) -> Redelivered:
    """Send again every failed delivery of a webhook (or of every webhook of the token's
    subtree), optionally only those created since a time."""
    queued = await redelivery.redeliver_failed(
        c.uow(),
        scope=op.scope,
        webhook_id=body.webhook_id,
        since=body.since,
        actor=actor(op),
        now=c.now(),
    )
    return Redelivered(queued=queued)
