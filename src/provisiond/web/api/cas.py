"""/api/v1/cas: certificate authorities that sign devices' CSRs."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from provisiond.errors import CaExists, CaNotFound, Forbidden
from provisiond.services import certificates
from provisiond.services.certificates import CaInfo
from provisiond.web.deps import ContainerDep, OperatorDep, actor
from provisiond.web.problems import responses

router = APIRouter(prefix="/api/v1", tags=["certificate authorities"])


class CaCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    common_name: str | None = None
    days: int = Field(3650, description="how long the CA is valid")
    certificate: str | None = Field(
        None,
        description=(
            "PEM of an existing CA certificate to register without its key (a manufacturer's "
            "CA, to vouch for the certificates devices bring: a profile's `device_ca`); absent: "
            "a new CA is made"
        ),
    )


class CaRead(BaseModel):
    name: str
    subject: str
    not_after: datetime
    fingerprint_sha256: str
    key_encrypted: bool
    created_at: datetime
    certificate: str = Field(description="PEM: give it to brokers as their CA file")
    can_sign: bool = Field(
        description="false: known by its certificate only (it vouches "
        "for devices' certificates, it signs nothing here)"
    )

    @classmethod
    def of(cls, ca: CaInfo) -> CaRead:
        return cls(
            name=ca.name,
            subject=ca.subject,
            not_after=ca.not_after,
            fingerprint_sha256=ca.fingerprint,
            key_encrypted=ca.key_encrypted,
            created_at=ca.created_at,
            certificate=ca.certificate_pem,
            can_sign=ca.can_sign,
        )


@router.post(
    "/cas", status_code=201, response_model=CaRead, responses=responses(CaExists, Forbidden)
)
async def create_ca(body: CaCreate, c: ContainerDep, op: OperatorDep) -> CaRead:
    """A new CA (EC P-256, self-signed; its key never leaves the server), or with
    `certificate` a CA registered by its certificate only. Operator-wide admin tokens
    only: CAs are global."""
    if body.certificate is not None:
        return CaRead.of(
            await certificates.register_ca_certificate(
                c.uow(),
                scope=op.scope,
                name=body.name,
                certificate_pem=body.certificate,
                actor=actor(op),
                now=c.now(),
            )
        )
    return CaRead.of(
        await certificates.create_ca(
            c.uow(),
            scope=op.scope,
            name=body.name,
            common_name=body.common_name,
            days=body.days,
            passphrase=c.settings.ca_passphrase,
            production=c.settings.production,
            actor=actor(op),
            now=c.now(),
        )
    )


@router.get("/cas", response_model=list[CaRead])
async def list_cas(c: ContainerDep, _: OperatorDep) -> list[CaRead]:
    """Every CA (global: every token reads them; their certificates are public anyway)."""
    return [CaRead.of(ca) for ca in await certificates.list_cas(c.uow())]


@router.get("/cas/{name}", response_model=CaRead, responses=responses(CaNotFound))
async def get_ca(name: str, c: ContainerDep, _: OperatorDep) -> CaRead:
    return CaRead.of(await certificates.get_ca(c.uow(), name=name))
