"""The console's operations pages: the model catalogue, operator API tokens, webhooks and
their delivery logs, the integrations' status and the audit log.

Every route is an admin's (AdminDep); every read and change is one call of the service the
CLI and the API use, which checks the admin's scope again. A refused form is shown again
with each message on its field, nothing changed; a secret is shown on the page that made it
and never again.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.datastructures import FormData

from provisiond.domain.events import Event, EventType
from provisiond.domain.groups import Group
from provisiond.domain.limits import PAGE_SIZE_MAX
from provisiond.domain.timeline import sentence
from provisiond.domain.tokens import TokenSpec, parse_token_name
from provisiond.domain.webhooks import EVENTS, WebhookSpec
from provisiond.errors import (
    DeliveryDelivered,
    DeliveryNotFound,
    Forbidden,
    GroupNotFound,
    InvalidInput,
    ModelExists,
    ModelInUse,
    ModelNotFound,
    Problem,
    ProvisiondError,
    TokenExists,
    TokenNotFound,
    WebhookNotFound,
)
from provisiond.services import directory, integration_status, webhook_redelivery, webhooks
from provisiond.services import events as audit
from provisiond.services.claims.ownership import actor as actor_of
from provisiond.services.group_choices import list_group_choices
from provisiond.web.pages.rendering import (
    AdminDep,
    Page,
    PageRoute,
    Titles,
    error_titles,
    field_errors,
    redirect,
)

router = APIRouter(include_in_schema=False, route_class=PageRoute)

DELIVERIES_PAGE = 50
ID_DIGITS = 18  # any id of at most 18 digits fits a delivery id (a 64-bit integer)
AUDIT_PAGE = 50
_NOT_FOUND: Titles = {WebhookNotFound: "Not found", DeliveryNotFound: "Not found"}


def _text(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _confirmed(form: FormData) -> bool:
    return _text(form, "confirm") == "yes"


def _ask(
    page: Page, *, title: str, text: str, action: str, fields: dict[str, str], back: str
) -> Response:
    """The question before a change that cannot be undone (a page of its own: no script);
    ``back``: the page to go back to without changing anything."""
    return page.render(
        "ops_confirm.html", title=title, text=text, action=action, fields=fields, back=back
    )


async def _groups(page: Page) -> list[Group]:
    """The groups of the admin's subtree, to offer in a group field."""
    c = page.container
    return await list_group_choices(c.uow(), scope=page.user.scope, limit=PAGE_SIZE_MAX)


# ----------------------------------------------------------------------------- models


async def _models(page: Page, status: int = 200, **context: Any) -> Response:
    models = await directory.list_models(page.container.uow())
    may_change = page.user.scope.operator_wide
    return page.render("ops_models.html", status, models=models, may_change=may_change, **context)


@router.get("/models")
async def models_page(page: AdminDep) -> Response:
    return await _models(page)


@router.post("/models")
async def add_model(page: AdminDep) -> Response:
    form = await page.form()
    values = {"name": _text(form, "name"), "description": _text(form, "description")}
    c = page.container
    try:
        model = await directory.add_model(
            c.uow(), scope=page.user.scope, **values, actor=actor_of(page.user), now=c.now()
        )
    except (InvalidInput, ModelExists) as err:
        errors = field_errors(err) if isinstance(err, InvalidInput) else {"name": err.detail}
        return await _models(page, err.status, errors=errors, values=values)
    return await _models(page, added=model.name)


@router.post("/models/delete")
async def delete_model(page: AdminDep) -> Response:
    form = await page.form()
    name = _text(form, "name")
    c = page.container
    if not _confirmed(form):
        return _ask(
            page,
            title=f"Delete the model {name}?",
            text="It leaves the catalogue; a model that devices or profiles use is kept.",
            action="/models/delete",
            fields={"name": name},
            back="/models",
        )
    try:
        await directory.delete_model(
            c.uow(), scope=page.user.scope, name=name, actor=actor_of(page.user), now=c.now()
        )
    except (InvalidInput, ModelInUse, ModelNotFound) as err:
        return await _models(page, err.status, refused=err.detail)
    return await _models(page, deleted=name)


# ----------------------------------------------------------------------------- tokens


async def _tokens(
    page: Page, cursor: str | None = None, status: int = 200, **context: Any
) -> Response:
    c = page.container
    try:
        listed = await directory.list_tokens(c.uow(), scope=page.user.scope, cursor=cursor)
    except InvalidInput as err:  # a cursor not from a previous page: the first page
        listed = await directory.list_tokens(c.uow(), scope=page.user.scope)
        status, context["refused"] = err.status, err.detail
    return page.render(
        "ops_tokens.html",
        status,
        tokens=listed.items,
        next_cursor=listed.next_cursor,
        groups=await _groups(page),
        now=c.now(),
        **context,
    )


def _revoked(text: str) -> str | None:
    """The token a revoke redirect names, to say it happened (only a token name's shape)."""
    try:
        return parse_token_name(text) if text else None
    except InvalidInput:
        return None


@router.get("/tokens")
async def tokens_page(page: AdminDep, cursor: str | None = None, revoked: str = "") -> Response:
    return await _tokens(page, cursor, revoked=_revoked(revoked))


@router.post("/tokens")
async def create_token(page: AdminDep) -> Response:
    form = await page.form()
    values = {k: _text(form, k).strip() for k in ("name", "role", "group", "expires")}
    spec = TokenSpec(
        values["name"], values["role"], values["group"] or None, values["expires"] or None
    )
    c = page.container
    try:
        token, secret = await directory.create_token(
            c.uow(), scope=page.user.scope, spec=spec, actor=actor_of(page.user), now=c.now()
        )
    except (InvalidInput, TokenExists, GroupNotFound, Forbidden) as err:
        return await _tokens(page, status=err.status, errors=_token_errors(err), values=values)
    return await _tokens(page, status=201, created=token, secret=secret)


def _token_errors(err: ProvisiondError) -> dict[str, str]:
    if isinstance(err, TokenExists):
        return {"name": err.detail}
    if isinstance(err, GroupNotFound | Forbidden):  # outside the subtree, or operator-wide
        return {"group": err.detail}
    return field_errors(err)


@router.post("/tokens/revoke")
@error_titles({TokenNotFound: "Not found"})
async def revoke_token(page: AdminDep) -> Response:
    form = await page.form()
    name = _text(form, "name")
    try:
        name = parse_token_name(name)
    except InvalidInput:  # no token has such a name: as a missing one, in the same words
        raise TokenNotFound(f"no active token {name!r}", name=name) from None
    if not _confirmed(form):
        return _ask(
            page,
            title=f"Revoke the token {name}?",
            text="Scripts that use it are refused from the next request on. This cannot "
            "be undone: make a new token instead.",
            action="/tokens/revoke",
            fields={"name": name},
            back="/tokens",
        )
    c = page.container
    await directory.revoke_token(
        c.uow(), scope=page.user.scope, name=name, actor=actor_of(page.user), now=c.now()
    )
    return redirect(f"/tokens?revoked={quote(name)}")


# ----------------------------------------------------------------------------- webhooks


async def _webhooks(
    page: Page, cursor: str | None = None, status: int = 200, **context: Any
) -> Response:
    c = page.container
    try:
        listed = await webhooks.list_webhooks(c.uow(), scope=page.user.scope, cursor=cursor)
    except InvalidInput as err:  # a cursor not from a previous page: the first page
        listed = await webhooks.list_webhooks(c.uow(), scope=page.user.scope)
        status, context["refused"] = err.status, err.detail
    return page.render(
        "ops_webhooks.html",
        status,
        webhooks=listed.items,
        next_cursor=listed.next_cursor,
        groups=await _groups(page),
        event_types=[e.value for e in EVENTS],
        **context,
    )


@router.get("/webhooks")
async def webhooks_page(page: AdminDep, cursor: str | None = None, deleted: str = "") -> Response:
    return await _webhooks(page, cursor, deleted=deleted == "1")


@router.post("/webhooks")
async def create_webhook(page: AdminDep) -> Response:
    form = await page.form()
    chosen = [v for v in form.getlist("events") if isinstance(v, str)]
    values = {"url": _text(form, "url").strip(), "group": _text(form, "group").strip()}
    spec = WebhookSpec(values["group"], values["url"], chosen)
    c = page.container
    try:
        webhook, secret = await webhooks.create_webhook(
            c.uow(),
            scope=page.user.scope,
            spec=spec,
            actor=actor_of(page.user),
            now=c.now(),
            sealer=c.sealer,
            guard=c.webhook_guard,
        )
    except (InvalidInput, GroupNotFound) as err:
        errors = {"group": err.detail} if isinstance(err, GroupNotFound) else field_errors(err)
        return await _webhooks(page, status=err.status, errors=errors, values=values, chosen=chosen)
    return await _webhooks(page, status=201, created=webhook, secret=secret)


def _webhook_id(text: str) -> uuid.UUID:
    """A webhook's id from a URL: one that is not an id is not found, as a missing one."""
    try:
        return webhooks.parse_webhook_id(text)
    except InvalidInput:
        raise WebhookNotFound(f"no webhook {text}", id=text) from None


@router.get("/webhooks/{webhook_id}")
@error_titles(_NOT_FOUND)
async def webhook_page(
    page: AdminDep, webhook_id: str, status: str = "", before: str = "", queued: str = ""
) -> Response:
    c = page.container
    hook_id = _webhook_id(webhook_id)
    webhook, counts = await webhooks.get_webhook(c.uow(), scope=page.user.scope, webhook_id=hook_id)
    try:
        if before and not (before.isdigit() and len(before) <= ID_DIGITS):
            problem = Problem("is not a delivery id from the log's previous page", "before")
            raise InvalidInput(str(problem), problems=[problem])
        log = await webhooks.list_deliveries(
            c.uow(),
            scope=page.user.scope,
            webhook_id=hook_id,
            status=status or None,
            before=int(before) if before else None,
            limit=DELIVERIES_PAGE + 1,
        )
    except InvalidInput as err:
        log, errors = [], field_errors(err)
    else:
        errors = {}
    more = len(log) > DELIVERIES_PAGE
    log = log[:DELIVERIES_PAGE]
    return page.render(
        "ops_webhook.html",
        422 if errors else 200,
        webhook=webhook,
        counts=counts,
        deliveries=log,
        shown=status,
        older=log[-1].id if more and log else None,
        errors=errors,
        queued=int(queued) if queued.isdigit() else None,
    )


@router.post("/webhooks/{webhook_id}/redeliver")
@error_titles({**_NOT_FOUND, DeliveryDelivered: "Not sent again"})
async def redeliver(page: AdminDep, webhook_id: str) -> Response:
    """One failed delivery (the form's ``delivery``) or, without one, every failed one."""
    form = await page.form()
    hook_id = _webhook_id(webhook_id)
    c = page.container
    which = _text(form, "delivery")
    if which:
        try:
            if len(which) > ID_DIGITS:
                raise InvalidInput("no delivery has so long an id")
            delivery_id = webhook_redelivery.parse_delivery_id(which)
        except InvalidInput:
            raise DeliveryNotFound(f"no delivery {which}", id=which) from None
        queued = await webhook_redelivery.redeliver_delivery(
            c.uow(),
            scope=page.user.scope,
            delivery_id=delivery_id,
            actor=actor_of(page.user),
            now=c.now(),
        )
    else:
        queued = await webhook_redelivery.redeliver_failed(
            c.uow(),
            scope=page.user.scope,
            webhook_id=hook_id,
            since=None,
            actor=actor_of(page.user),
            now=c.now(),
        )
    return redirect(f"/webhooks/{hook_id}?queued={queued}")


@router.post("/webhooks/{webhook_id}/enabled")
@error_titles(_NOT_FOUND)
async def set_enabled(page: AdminDep, webhook_id: str) -> Response:
    form = await page.form()
    hook_id = _webhook_id(webhook_id)
    c = page.container
    await webhooks.set_webhook_enabled(
        c.uow(),
        scope=page.user.scope,
        webhook_id=hook_id,
        enabled=_text(form, "enabled") == "yes",
        actor=actor_of(page.user),
        now=c.now(),
    )
    return redirect(f"/webhooks/{hook_id}")


@router.post("/webhooks/{webhook_id}/delete")
@error_titles(_NOT_FOUND)
async def delete_webhook(page: AdminDep, webhook_id: str) -> Response:
    form = await page.form()
    hook_id = _webhook_id(webhook_id)
    c = page.container
    if not _confirmed(form):
        webhook, _ = await webhooks.get_webhook(c.uow(), scope=page.user.scope, webhook_id=hook_id)
        return _ask(
            page,
            title="Delete this webhook?",
            text=f"{webhook.url} receives no more events, and its delivery log is deleted.",
            action=f"/webhooks/{hook_id}/delete",
            fields={},
            back=f"/webhooks/{hook_id}",
        )
    await webhooks.delete_webhook(
        c.uow(), scope=page.user.scope, webhook_id=hook_id, actor=actor_of(page.user), now=c.now()
    )
    return redirect("/webhooks?deleted=1")


# ----------------------------------------------------------------------------- status


@router.get("/integrations")
async def integrations_page(page: AdminDep) -> Response:
    c = page.container
    found = await integration_status.integration_status(c.uow, scope=page.user.scope, now=c.now())
    return page.render("ops_integrations.html", found=found)


# ----------------------------------------------------------------------------- audit log

_SUBJECT_KEYS = ("name", "email", "path", "url")


def subject_of(event: Event) -> tuple[str, str | None]:
    """What an event is about, in a word, and its page when it has one: its device, its
    webhook, else what its data names."""
    if event.serial:
        return event.serial, f"/devices/{quote(event.serial)}"
    hook = event.data.get("webhook_id")
    if hook and event.type is not EventType.WEBHOOK_DELETED:
        name = str(event.data.get("url") or f"webhook {str(hook)[:8]}…")
        return name, f"/webhooks/{quote(str(hook))}"
    return next((str(event.data[k]) for k in _SUBJECT_KEYS if event.data.get(k)), ""), None


@router.get("/audit")
async def audit_page(
    page: AdminDep,
    kind: str = "",
    actor: str = "",
    serial: str = "",
    since: str = "",
    until: str = "",
    cursor: str | None = None,
) -> Response:
    c = page.container
    asked = {"kind": kind, "actor": actor, "serial": serial, "since": since, "until": until}
    now = c.now()
    try:
        listed = await audit.list_events(
            c.uow(),
            scope=page.user.scope,
            serial=serial.strip() or None,
            actor=actor.strip() or None,
            kinds=[kind] if kind.strip() else [],
            since=audit.parse_time(since, now=now, field="since") if since.strip() else None,
            until=audit.parse_time(until, now=now, field="until") if until.strip() else None,
            cursor=cursor or None,
            limit=AUDIT_PAGE,
        )
    except InvalidInput as err:
        return page.render(
            "ops_audit.html", 422, events=[], asked=asked, errors=field_errors(err), kinds=_KINDS
        )
    return page.render(
        "ops_audit.html",
        events=[(e, subject_of(e), sentence(e.type, e.actor, e.data)) for e in listed.items],
        next_cursor=listed.next_cursor,
        asked=asked,
        kinds=_KINDS,
    )


_KINDS = [t.value for t in EventType]
