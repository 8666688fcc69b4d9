"""`provisiond webhooks …`: a group's event subscriptions and their delivery logs."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from provisiond.bootstrap import Container
from provisiond.cli import output
from provisiond.cli.common import (
    OPERATOR,
    Common,
    actor,
    common_options,
    fail,
    run,
)
from provisiond.domain.webhooks import EVENTS, Delivery, Webhook, WebhookSpec
from provisiond.errors import InvalidInput, Problem
from provisiond.services import webhooks as service
from provisiond.services.events import parse_time
from provisiond.services.paging import every_page
from provisiond.services.webhook_redelivery import (
    parse_delivery_id,
    redeliver_delivery,
    redeliver_failed,
)

app = typer.Typer(
    help="Webhooks: POST a group's events to a URL, signed, retried, logged.", no_args_is_help=True
)
WebhookId = Annotated[str, typer.Argument(help="The webhook's id (`provisiond webhooks list`).")]


def webhook_dict(w: Webhook, counts: dict[str, int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(w.id),
        "group": w.group_path,
        "url": w.url,
        "events": [e.value for e in w.events],
        "enabled": w.enabled,
        "disabled_reason": w.disabled_reason,
        "consecutive_failures": w.consecutive_failures,
        "created_at": w.created_at.isoformat(),
    }
    if counts is not None:
        out["deliveries"] = counts
    return out


def delivery_dict(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "status": d.status.value,
        "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at.isoformat() if d.next_attempt_at else None,
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "created_at": d.created_at.isoformat(),
        "finished_at": d.finished_at.isoformat() if d.finished_at else None,
    }


@app.command("add")
@common_options()
def add(
    common: Common,
    url: Annotated[str, typer.Argument(help="http:// or https:// URL to POST events to.")],
    group: Annotated[
        str | None, typer.Option("--group", help="Whose events (the subtree).")
    ] = None,
    operator_wide: Annotated[
        bool,
        typer.Option(
            "--operator-wide", help="Every event, those of no group too (instead of --group)."
        ),
    ] = False,
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event",
            help=f"An event type; repeat for several (default: all: "
            f"{', '.join(e.value for e in EVENTS)}).",
        ),
    ] = None,
) -> None:
    """Subscribe a URL to a group's events; prints the signing secret (shown once)."""
    if (group is None) == (not operator_wide):
        raise typer.BadParameter(
            "give --group PATH or --operator-wide (one of them)", param_hint="--group"
        )
    webhook, secret = run(
        common,
        lambda c: service.create_webhook(
            c.uow(),
            scope=OPERATOR,
            spec=WebhookSpec(group=group, url=url, events=event),
            actor=actor(),
            now=c.now(),
            sealer=c.sealer,
            guard=c.webhook_guard,
        ),
    )
    if common.json:
        output.print_json({**webhook_dict(webhook), "secret": secret})
        return
    output.success(
        f"webhook {webhook.id}: {webhook.group_path or 'operator-wide'} -> {webhook.url}"
    )
    output.stdout.print(f"signing secret: {secret}", markup=False, highlight=False)
    output.success("shown once: verify X-Provisiond-Signature with it (docs/webhooks.md)")


@app.command("list")
@common_options()
def list_(
    common: Common,
    group: Annotated[str | None, typer.Option("--group", help="Only this subtree.")] = None,
) -> None:
    """Every webhook, with whether it is enabled."""
    hooks = run(
        common,
        lambda c: every_page(
            lambda cursor, limit: service.list_webhooks(
                c.uow(), scope=OPERATOR, group=group, cursor=cursor, limit=limit
            )
        ),
    )
    if common.json:
        output.print_json([webhook_dict(w) for w in hooks])
        return
    output.table(
        ["id", "group", "url", "events", "enabled"],
        [
            (
                str(w.id),
                w.group_path or "(operator-wide)",
                w.url,
                str(len(w.events)),
                "yes" if w.enabled else f"no: {w.disabled_reason}",
            )
            for w in hooks
        ],
    )


@app.command("show")
@common_options()
def show(
    common: Common,
    webhook_id: WebhookId,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="Deliveries to list.")] = 20,
    status: Annotated[
        str | None, typer.Option("--status", help="Only pending, delivered or failed deliveries.")
    ] = None,
) -> None:
    """One webhook and its latest deliveries (the delivery log)."""

    async def work(c: Any) -> Any:
        wid = service.parse_webhook_id(webhook_id)
        webhook, counts = await service.get_webhook(c.uow(), scope=OPERATOR, webhook_id=wid)
        log = await service.list_deliveries(
            c.uow(), scope=OPERATOR, webhook_id=wid, status=status, limit=limit
        )
        return webhook, counts, log

    webhook, counts, log = run(common, work)
    if common.json:
        output.print_json(
            {**webhook_dict(webhook, counts), "latest": [delivery_dict(d) for d in log]}
        )
        return
    output.table(
        ["field", "value"],
        [(k, str(v)) for k, v in webhook_dict(webhook, counts).items()],
        title=f"webhook {webhook.id}",
    )
    output.table(
        ["delivery", "event", "status", "attempts", "code", "error", "created"],
        [
            (
                str(d.id),
                d.event_type,
                d.status.value,
                str(d.attempts),
                str(d.last_status_code or ""),
                d.last_error or "",
                output.short_time(d.created_at),
            )
            for d in log
        ],
        title="deliveries",
    )


def _switch(webhook_id: str, enabled: bool, common: Common) -> None:
    webhook = run(
        common,
        lambda c: service.set_webhook_enabled(
            c.uow(),
            scope=OPERATOR,
            webhook_id=service.parse_webhook_id(webhook_id),
            enabled=enabled,
            actor=actor(),
            now=c.now(),
        ),
    )
    if common.json:
        output.print_json(webhook_dict(webhook))
    else:
        output.success(f"webhook {webhook.id} {'enabled' if enabled else 'disabled'}")


@app.command("enable")
@common_options()
def enable(
    common: Common,
    webhook_id: WebhookId,
) -> None:
    """Enable a webhook (again); its pending deliveries are retried at once."""
    _switch(webhook_id, True, common)


@app.command("disable")
@common_options()
def disable(
    common: Common,
    webhook_id: WebhookId,
) -> None:
    """Stop delivering; events keep being queued for it."""
    _switch(webhook_id, False, common)


@app.command("delete")
@common_options()
def delete(
    common: Common,
    webhook_id: WebhookId,
) -> None:
    """Delete a webhook and its delivery log."""
    webhook = run(
        common,
        lambda c: service.delete_webhook(
            c.uow(),
            scope=OPERATOR,
            webhook_id=service.parse_webhook_id(webhook_id),
            actor=actor(),
            now=c.now(),
        ),
    )
    if common.json:
        output.print_json(webhook_dict(webhook))
    else:
        output.success(f"deleted webhook {webhook.id}")


@app.command("redeliver")
@common_options()
def redeliver(
    common: Common,
    delivery_id: Annotated[
        str | None,
        typer.Argument(help="A failed delivery's id (`provisiond webhooks show`)."),
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Every failed delivery (of --webhook, else all).")
    ] = False,
    webhook: Annotated[
        str | None, typer.Option("--webhook", help="With --failed: only this webhook's.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="With --failed: only those created at or after: ISO 8601 (no zone: UTC) "
            "or an age: 15m, 2h, 7d.",
        ),
    ] = None,
) -> None:
    """Send failed deliveries again (ID, or --failed): queued at once with every attempt
    ahead; a delivery still pending is not queued twice."""
    if (delivery_id is None) == (not failed) or (delivery_id is not None and (webhook or since)):
        problem = Problem("give a delivery id, or --failed [--webhook ID] [--since TIME]", "ID")
        fail(common, InvalidInput(str(problem), problems=[problem]))

    async def work(c: Container) -> int:
        if delivery_id is not None:
            return await redeliver_delivery(
                c.uow(),
                scope=OPERATOR,
                delivery_id=parse_delivery_id(delivery_id),
                actor=actor(),
                now=c.now(),
            )
        return await redeliver_failed(
            c.uow(),
            scope=OPERATOR,
            webhook_id=service.parse_webhook_id(webhook) if webhook else None,
            since=parse_time(since, now=c.now(), field="--since") if since else None,
            actor=actor(),
            now=c.now(),
        )

    queued = run(common, work)
    if common.json:
        output.print_json({"queued": queued})
    elif delivery_id is not None and not queued:
        output.success(f"delivery {delivery_id} is still pending: not queued again")
    else:
        output.success(f"queued {queued:,} failed deliveries again")
