"""/api/v1/devices: create, list, show, delete."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response

from provisiond.domain.limits import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX
from provisiond.errors import (
    DeviceExists,
    DeviceNotFound,
    GroupNotFound,
    InvalidInput,
    ModelNotFound,
    Problem,
    UserNotFound,
)
from provisiond.services import devices as device_service
from provisiond.web.api.schemas import (
    CredentialRead,
    DeviceCreate,
    DeviceCreated,
    DeviceDetail,
    DevicePage,
    DeviceRead,
    EventRead,
    IssuedCredentialRead,
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


@router.post("/devices", status_code=201, response_model=DeviceCreated,
             responses=responses(DeviceExists, GroupNotFound, ModelNotFound, UserNotFound))
async def create_device(body: DeviceCreate, c: ContainerDep, op: OperatorDep) -> DeviceCreated:
    """Register one device; with `group` or `owner` it is claimed too. The access token is
    in this answer only."""
    device, issued = await device_service.create_device(
        c.uow(), serial=body.serial, name=body.name, model=body.model, group=body.group,
        owner=body.owner, tags=body.tags, actor=actor(op), now=c.now())
    credential = IssuedCredentialRead(type=issued.credential.type.value, secret=issued.secret)
    return DeviceCreated(**DeviceRead.of(device).model_dump(), credential=credential)


@router.get("/devices", response_model=DevicePage,
            responses=responses(GroupNotFound, ModelNotFound))
async def list_devices(
    request: Request, response: Response, c: ContainerDep, _: OperatorDep,
    group: str | None = Query(None, description="a group path: its whole subtree"),
    state: str | None = Query(None, description="registered, claimed or released"),
    model: str | None = Query(None, description="a model of the catalogue"),
    tag: list[str] = Query(default_factory=list, description="KEY=VALUE; repeat to AND"),  # noqa: B008
    serial_prefix: str | None = Query(None),
    cursor: str | None = Query(None, description="`next_cursor` of the previous page"),
    limit: int = Query(PAGE_SIZE_DEFAULT, ge=1, le=PAGE_SIZE_MAX),
) -> DevicePage:
    """Devices in serial order, one page at a time (keyset pagination)."""
    page = await device_service.list_devices(
        c.uow(), group=group, state=state, model=model, tags=parse_tags(tag),
        serial_prefix=serial_prefix, cursor=cursor, limit=limit)
    if page.next_cursor:
        url = request.url.include_query_params(cursor=page.next_cursor)
        response.headers["Link"] = f'<{url}>; rel="next"'
    return DevicePage(items=[DeviceRead.of(d) for d in page.items], next_cursor=page.next_cursor)


@router.get("/devices/{serial}", response_model=DeviceDetail,
            responses=responses(DeviceNotFound))
async def show_device(serial: str, c: ContainerDep, _: OperatorDep) -> DeviceDetail:
    """One device with its credentials (never their secrets) and its event timeline."""
    device, creds, events = await device_service.get_device_detail(c.uow(), serial=serial)
    return DeviceDetail(**DeviceRead.of(device).model_dump(),
                        credentials=[CredentialRead.of(x) for x in creds],
                        events=[EventRead.of(e) for e in events])


@router.delete("/devices/{serial}", status_code=204, responses=responses(DeviceNotFound))
async def delete_device(serial: str, c: ContainerDep, op: OperatorDep) -> Response:
    """Delete a device with its tags and credentials; its history stays in the audit log."""
    await device_service.delete_device(c.uow(), serial=serial, actor=actor(op), now=c.now())
    return Response(status_code=204)
