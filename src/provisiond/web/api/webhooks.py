"""/api/v1/webhooks: a group's event subscriptions and their delivery logs."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from provisiond.errors import Forbidden, GroupNotFound, InvalidInput, WebhookNotFound
from provisiond.services import webhooks as service
from provisiond.web.api.schemas import DeliveryRead, WebhookCreate, WebhookCreated, WebhookRead
from provisiond.web.deps import ContainerDep, OperatorDep, actor
from provisiond.web.problems import responses

router = APIRouter(prefix="/api/v1", tags=["webhooks"])


@router.post("/webhooks", status_code=201, response_model=WebhookCreated,
             responses=responses(Forbidden, GroupNotFound, InvalidInput))
async def create_webhook(body: WebhookCreate, c: ContainerDep, op: OperatorDep
                         ) -> WebhookCreated:
    """Subscribe a URL to a group's events (`group: null`: every event, operator-wide).
    The signing secret is in this answer only."""
    webhook, secret = await service.create_webhook(
        c.uow(), group=body.group, url=body.url, events=body.events, actor=actor(op),
        now=c.now(), sealer=c.sealer, scope=op.scope)
    return WebhookCreated(**WebhookRead.of(webhook).model_dump(), secret=secret)


@router.get("/webhooks", response_model=list[WebhookRead], responses=responses(InvalidInput))
async def list_webhooks(c: ContainerDep, _: OperatorDep,
                        under: str | None = Query(None, description="only this subtree")
                        ) -> list[WebhookRead]:
    return [WebhookRead.of(w) for w in await service.list_webhooks(c.uow(), group=under)]


@router.get("/webhooks/{webhook_id}", response_model=WebhookRead,
            responses=responses(WebhookNotFound))
async def get_webhook(webhook_id: str, c: ContainerDep, _: OperatorDep) -> WebhookRead:
    """One webhook, with its deliveries counted by status."""
    webhook, counts = await service.get_webhook(
        c.uow(), webhook_id=service.parse_webhook_id(webhook_id))
    return WebhookRead.of(webhook, counts)


@router.post("/webhooks/{webhook_id}/enable", response_model=WebhookRead,
             responses=responses(WebhookNotFound))
async def enable_webhook(webhook_id: str, c: ContainerDep, op: OperatorDep) -> WebhookRead:
    """Enable (again): its pending deliveries are retried at once."""
    return WebhookRead.of(await service.set_webhook_enabled(
        c.uow(), webhook_id=service.parse_webhook_id(webhook_id), enabled=True,
        actor=actor(op), now=c.now()))


@router.post("/webhooks/{webhook_id}/disable", response_model=WebhookRead,
             responses=responses(WebhookNotFound))
async def disable_webhook(webhook_id: str, c: ContainerDep, op: OperatorDep) -> WebhookRead:
    """Stop delivering; events keep being queued for it."""
    return WebhookRead.of(await service.set_webhook_enabled(
        c.uow(), webhook_id=service.parse_webhook_id(webhook_id), enabled=False,
        actor=actor(op), now=c.now()))


@router.delete("/webhooks/{webhook_id}", status_code=204,
               responses=responses(WebhookNotFound))
async def delete_webhook(webhook_id: str, c: ContainerDep, op: OperatorDep) -> Response:
    """Delete the webhook and its delivery log."""
    await service.delete_webhook(c.uow(), webhook_id=service.parse_webhook_id(webhook_id),
                                 actor=actor(op), now=c.now())
    return Response(status_code=204)


@router.get("/webhooks/{webhook_id}/deliveries", response_model=list[DeliveryRead],
            responses=responses(WebhookNotFound, InvalidInput))
async def list_deliveries(
    webhook_id: str, c: ContainerDep, _: OperatorDep,
    status: str | None = Query(None, description="pending, delivered or failed"),
    before: int | None = Query(None, description="deliveries older than this id (paging)"),
    limit: int = Query(50, ge=1, le=500),
) -> list[DeliveryRead]:
    """The delivery log, newest first."""
    rows = await service.list_deliveries(c.uow(), webhook_id=service.parse_webhook_id(
        webhook_id), status=status, before=before, limit=limit)
    return [DeliveryRead.of(d) for d in rows]
