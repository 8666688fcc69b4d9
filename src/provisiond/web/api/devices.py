"""/api/v1/devices: create, list, show, delete; rotate and revoke credentials."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response

from provisiond.domain.credentials import CredentialType
from provisiond.errors import (
    DeviceExists,
    DeviceNotFound,
    Forbidden,
    GroupNotFound,
    InvalidInput,
    ModelNotFound,
    Problem,
    UserNotFound,
)
from provisiond.services import devices as device_service
from provisiond.services.credentials import revoke_credentials as revoke_credentials_service
from provisiond.services.credentials import rotate_credentials as rotate_credentials_service
from provisiond.web.api.paging import LIMIT, Cursor, Limit, link_next
from provisiond.web.api.schemas import (
    CredentialRead,
    DeviceCreate,
    DeviceCreated,
    DeviceDetail,
    DevicePage,
    DeviceRead,
    EventRead,
    IssuedCredentialRead,
    RevokedCredentials,
    RotatedCredentialRead,
)
from provisiond.web.deps import ContainerDep, OperatorDep, actor
from provisiond.web.problems import responses

router = APIRouter(prefix="/api/v1", tags=["devices"])


def parse_tags(values: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            problem = Problem(f"{value!r} is not KEY=VALUE", field="tag")
            raise InvalidInput(str(problem), problems=[problem])
        tags[key] = val
    return tags


@router.post(
    "/devices",
    status_code=201,
    response_model=DeviceCreated,
    responses=responses(DeviceExists, GroupNotFound, ModelNotFound, UserNotFound, Forbidden),
)
async def create_device(body: DeviceCreate, c: ContainerDep, op: OperatorDep) -> DeviceCreated:
    """Register one device; with `group` or `owner` it is claimed too. The access token is
    in this answer only. A scoped token (installer or admin) must name a group or owner in
    its subtree."""
    device, issued = await device_service.create_device(
        c.uow(),
        scope=op.scope,
        spec=body.spec(),
        actor=actor(op),
        now=c.now(),
        sealer=c.broker_sealer,
    )
    credential = IssuedCredentialRead(type=issued.credential.type.value, secret=issued.secret)
    return DeviceCreated(**DeviceRead.of(device).model_dump(), credential=credential)


@router.get(
    "/devices", response_model=DevicePage, responses=responses(GroupNotFound, ModelNotFound)
)
async def list_devices(
    request: Request,
    response: Response,
    c: ContainerDep,
    op: OperatorDep,
    group: str | None = Query(None, description="a group path: its whole subtree"),
    state: str | None = Query(None, description="registered, claimed or released"),
    model: str | None = Query(None, description="a model of the catalogue"),
    tag: list[str] = Query(default_factory=list, description="KEY=VALUE; repeat to AND"),  # noqa: B008
    serial_prefix: str | None = Query(None),
    cursor: Cursor = None,
    limit: Limit = LIMIT,
) -> DevicePage:
    """The devices of the token's subtree in serial order, one page at a time (keyset
    pagination)."""
    page = await device_service.list_devices(
        c.uow(),
        scope=op.scope,
        group=group,
        state=state,
        model=model,
        tags=parse_tags(tag),
        serial_prefix=serial_prefix,
        cursor=cursor,
        limit=limit,
    )
    link_next(request, response, page.next_cursor)
    return DevicePage(items=[DeviceRead.of(d) for d in page.items], next_cursor=page.next_cursor)


@router.get("/devices/{serial}", response_model=DeviceDetail, responses=responses(DeviceNotFound))
async def show_device(serial: str, c: ContainerDep, op: OperatorDep) -> DeviceDetail:
    """One device with its credentials (never their secrets) and its event timeline."""
    device, creds, events = await device_service.get_device_detail(
        c.uow(), scope=op.scope, serial=serial
    )
    return DeviceDetail(
        **DeviceRead.of(device).model_dump(),
        credentials=[CredentialRead.of(x) for x in creds],
        events=[EventRead.of(e) for e in events],
    )


@router.post(
    "/devices/{serial}/credentials/rotate",
    response_model=RotatedCredentialRead,
    responses=responses(DeviceNotFound, InvalidInput, Forbidden),
)
async def rotate_credentials(
    serial: str,
    c: ContainerDep,
    op: OperatorDep,
    wanted: str | None = Query(
        None,
        alias="type",
        description="access-token or mqtt-basic (default: the kind the device has)",
    ),
) -> RotatedCredentialRead:
    """Issue a new credential and revoke the one it replaces; the secret is in this answer
    only. The broker's account follows."""
    try:
        kind = CredentialType(wanted) if wanted else None
    except ValueError:
        raise InvalidInput(
            f"type {wanted!r}: access-token or mqtt-basic",
            problems=[Problem("access-token or mqtt-basic", "type")],
        ) from None
    done = await rotate_credentials_service(
        c.uow(),
        scope=op.scope,
        serial=serial,
        kind=kind,
        actor=actor(op),
        now=c.now(),
        sealer=c.broker_sealer,
    )
    return RotatedCredentialRead(**done.as_dict())


@router.post(
    "/devices/{serial}/credentials/revoke",
    response_model=RevokedCredentials,
    responses=responses(DeviceNotFound, Forbidden),
)
async def revoke_credentials(serial: str, c: ContainerDep, op: OperatorDep) -> RevokedCredentials:
    """Revoke every credential the device connects with (its broker accounts go too)."""
    revoked = await revoke_credentials_service(
        c.uow(), scope=op.scope, serial=serial, actor=actor(op), now=c.now()
    )
    return RevokedCredentials(revoked=[CredentialRead.of(cr) for cr in revoked])


@router.delete("/devices/{serial}", status_code=204, responses=responses(DeviceNotFound, Forbidden))
async def delete_device(serial: str, c: ContainerDep, op: OperatorDep) -> Response:
    """Delete a device with its tags and credentials; its history stays in the audit log."""
    await device_service.delete_device(
        c.uow(), scope=op.scope, serial=serial, actor=actor(op), now=c.now()
    )
    return Response(status_code=204)
