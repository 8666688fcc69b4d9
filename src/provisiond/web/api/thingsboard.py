"""ThingsBoard's admin profile request, so scripts written for ThingsBoard work unchanged.

``POST /api/device/provision`` creates a provisioning profile from ThingsBoard's body (all
of it optional) and answers in ThingsBoard's entity form, with the ids, ``createdTime`` and
the credentials (the secret in this answer only). Authenticated by an operator token, sent
as ``Authorization: Bearer …`` or, as ThingsBoard's clients do, ``X-Authorization: Bearer …``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from provisiond.domain.profiles import Strategy
from provisiond.errors import Forbidden, GroupNotFound, ProfileExists
from provisiond.services import profiles as service
from provisiond.web.deps import ContainerDep, OperatorDep, actor
from provisiond.web.problems import responses

router = APIRouter(tags=["thingsboard compatibility"])

#: ThingsBoard's "no entity" id, for the tenant (provisiond has one organisation tree).
NULL_UUID = "13814000-1dd2-11b2-8080-808080808080"
_TB_STRATEGY = {v: k for k, v in service.THINGSBOARD_STRATEGIES.items()}


# Field names are ThingsBoard's (camelCase), so its clients' JSON maps one to one.
class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")  # ids and times the server assigns are ignored


class EntityId(_Lenient):
    entityType: str | None = None
    id: str | None = None


class ProfileCredentials(_Lenient):
    provisionProfileKey: str | None = None
    provisionProfileSecret: str | None = None


class StrategyBody(_Lenient):
    validationStrategyType: str | None = None


class TbProfileRequest(_Lenient):
    credentials: ProfileCredentials | None = None
    customerId: EntityId | None = None
    strategy: StrategyBody | None = None
    groupName: str | None = None


class TbProfile(BaseModel):
    id: dict[str, str]
    createdTime: int
    tenantId: dict[str, str]
    customerId: dict[str, str]
    credentials: dict[str, str] = Field(description="the secret is in this answer only")
    strategy: dict[str, str]
    groupName: str | None
    name: str = Field(description="the provisiond profile this request created")


@router.post(
    "/api/device/provision",
    response_model=TbProfile,
    responses=responses(ProfileExists, GroupNotFound, Forbidden),
)
async def create_profile(
    c: ContainerDep, op: OperatorDep, body: TbProfileRequest | None = None
) -> Any:
    """ThingsBoard's provision profile request: a profile (key and secret generated when
    absent), `customerId` / `groupName` naming a provisiond group, the strategy
    `CHECK_NEW_DEVICE` (allow-create, the default) or `CHECK_PRE_PROVISIONED_DEVICE`."""
    body = body or TbProfileRequest()
    creds = body.credentials or ProfileCredentials()
    customer = body.customerId
    made = await service.create_thingsboard_profile(
        c.uow(),
        scope=op.scope,
        key=creds.provisionProfileKey,
        secret=creds.provisionProfileSecret,
        strategy=body.strategy.validationStrategyType if body.strategy else None,
        customer_id=customer.id if customer else None,
        customer_entity_type=customer.entityType if customer else None,
        group_name=body.groupName,
        sealer=c.sealer,
        actor=actor(op),
        now=c.now(),
    )
    p = made.profile
    return TbProfile(
        id={"entityType": "PROVISION_PROFILE", "id": str(p.id)},
        createdTime=int(p.created_at.timestamp() * 1000),
        tenantId={"entityType": "TENANT", "id": NULL_UUID},
        # the customer asked for, else the profile's group stands for it
        customerId={
            "entityType": "CUSTOMER",
            "id": (
                customer.id
                if customer and customer.id
                else str(p.group_id)
                if p.group_id
                else NULL_UUID
            ),
        },
        credentials={"provisionProfileKey": p.key, "provisionProfileSecret": made.secret},
        strategy={"validationStrategyType": _TB_STRATEGY[Strategy(p.strategy)]},
        groupName=p.group_path,
        name=p.name,
    )
