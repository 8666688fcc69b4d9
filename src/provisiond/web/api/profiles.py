"""/api/v1/profiles: provisioning profiles."""

from __future__ import annotations

from fastapi import APIRouter

from provisiond.errors import (
    CaNotFound,
    GroupNotFound,
    ModelNotFound,
    ProfileExists,
    ProfileNotFound,
)
from provisiond.services import profiles as service
from provisiond.web.api.schemas import (
    ProfileCreate,
    ProfileJwtKey,
    ProfileRead,
    ProfileSecret,
    ProfileUpdate,
    ProfileWithSecret,
)
from provisiond.web.deps import ContainerDep, OperatorDep, actor
from provisiond.web.problems import responses

router = APIRouter(prefix="/api/v1", tags=["profiles"])


def _with_secret(made: service.ProfileWithSecret) -> ProfileWithSecret:
    return ProfileWithSecret(**ProfileRead.of(made.profile).model_dump(), secret=made.secret)


@router.post("/profiles", status_code=201, response_model=ProfileWithSecret,
             responses=responses(ProfileExists, GroupNotFound, ModelNotFound, CaNotFound))
async def create_profile(body: ProfileCreate, c: ContainerDep,
                         op: OperatorDep) -> ProfileWithSecret:
    """Create a provisioning profile. Its secret is in this answer only."""
    made = await service.create_profile(
        c.uow(), name=body.name, strategy=body.strategy, key=body.key, secret=body.secret,
        group=body.group, model=body.model, credentials=body.credentials,
        rate_per_minute=body.rate_per_minute,
        source_rate_per_minute=body.source_rate_per_minute, jwt_public_key=body.jwt_public_key,
        ca=body.ca, certificate_days=body.certificate_days, claim_proof=body.claim_proof,
        claim_window=body.claim_window, release_policy=body.release_policy,
        network=body.lorawan.model_dump() if body.lorawan else None,
        reprovision=body.reprovision, device_secret_min_length=body.device_secret_min_length,
        device_ca=body.device_ca, sealer=c.sealer, actor=actor(op), now=c.now())
    return _with_secret(made)


@router.get("/profiles", response_model=list[ProfileRead])
async def list_profiles(c: ContainerDep, _: OperatorDep) -> list[ProfileRead]:
    """Every profile (never a secret)."""
    return [ProfileRead.of(p) for p in await service.list_profiles(c.uow())]


@router.get("/profiles/{name}", response_model=ProfileRead, responses=responses(ProfileNotFound))
async def get_profile(name: str, c: ContainerDep, _: OperatorDep) -> ProfileRead:
    return ProfileRead.of(await service.get_profile(c.uow(), name=name))


@router.patch("/profiles/{name}", response_model=ProfileRead,
              responses=responses(ProfileNotFound, CaNotFound))
async def update_profile(name: str, body: ProfileUpdate, c: ContainerDep,
                         op: OperatorDep) -> ProfileRead:
    """Change the profile's identity rules (what is absent stays): its reprovisioning
    policy, the shortest token or password a device may choose, its device CA (null
    removes it)."""
    given = body.model_fields_set
    return ProfileRead.of(await service.update_profile(
        c.uow(), name=name, reprovision=body.reprovision,
        device_secret_min_length=body.device_secret_min_length, device_ca=body.device_ca,
        clear_device_ca="device_ca" in given and body.device_ca is None, actor=actor(op),
        now=c.now()))


@router.post("/profiles/{name}/disable", response_model=ProfileRead,
             responses=responses(ProfileNotFound))
async def disable_profile(name: str, c: ContainerDep, op: OperatorDep) -> ProfileRead:
    """Stop the profile: devices presenting its key and secret are refused. Idempotent."""
    return ProfileRead.of(await service.set_profile_enabled(
        c.uow(), name=name, enabled=False, actor=actor(op), now=c.now()))


@router.post("/profiles/{name}/enable", response_model=ProfileRead,
             responses=responses(ProfileNotFound))
async def enable_profile(name: str, c: ContainerDep, op: OperatorDep) -> ProfileRead:
    """Let the profile provision again. Idempotent."""
    return ProfileRead.of(await service.set_profile_enabled(
        c.uow(), name=name, enabled=True, actor=actor(op), now=c.now()))


@router.post("/profiles/{name}/rotate-secret", response_model=ProfileWithSecret,
             responses=responses(ProfileNotFound))
async def rotate_secret(name: str, c: ContainerDep, op: OperatorDep,
                        body: ProfileSecret | None = None) -> ProfileWithSecret:
    """A new secret (generated unless given), in this answer only; the old one stops
    working at once."""
    made = await service.rotate_profile_secret(
        c.uow(), name=name, secret=body.secret if body else None, sealer=c.sealer,
        actor=actor(op), now=c.now())
    return _with_secret(made)


@router.put("/profiles/{name}/jwt-key", response_model=ProfileRead,
            responses=responses(ProfileNotFound))
async def set_jwt_key(name: str, body: ProfileJwtKey, c: ContainerDep,
                      op: OperatorDep) -> ProfileRead:
    """Register, replace or (null) remove the ES256 public key of registration tokens."""
    return ProfileRead.of(await service.set_profile_jwt_key(
        c.uow(), name=name, public_key=body.public_key, actor=actor(op), now=c.now()))
