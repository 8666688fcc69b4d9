"""Request and response bodies of the admin API (pydantic), and their mapping from domain."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from provisiond.domain.catalog import DeviceModel
from provisiond.domain.credentials import Credential
from provisiond.domain.device import Device, DeviceSpec
from provisiond.domain.events import Event
from provisiond.domain.groups import Group
from provisiond.domain.invitations import InviteSpec, IssuedLink, Link
from provisiond.domain.limits import DEVICE_SECRET_MIN_LENGTH_DEFAULT
from provisiond.domain.profiles import (
    DEFAULT_RATE_PER_MINUTE,
    DEFAULT_SOURCE_RATE_PER_MINUTE,
    Profile,
    ProfileChanges,
    ProfileSpec,
)
from provisiond.domain.rendering import device_fields, profile_fields, token_fields, user_fields
from provisiond.domain.tokens import ApiToken, TokenSpec
from provisiond.domain.users import User, UserSpec
from provisiond.domain.webhooks import Delivery, Webhook, WebhookSpec
from provisiond.errors import InvalidInput, Problem


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GroupCreate(Body):
    path: str = Field(description="e.g. `Sadler-Isberg/West/Anaheim`; missing parents are created")


class GroupRead(BaseModel):
    id: uuid.UUID
    path: str
    name: str
    parent: str | None
    depth: int
    devices: int | None = None
    created_at: datetime

    @classmethod
    def of(cls, g: Group, devices: int | None = None) -> GroupRead:
        return cls(
            id=g.id,
            path=g.path,
            name=g.name,
            parent=g.parent_path,
            depth=g.depth,
            devices=devices,
            created_at=g.created_at,
        )


class GroupCreated(GroupRead):
    created: list[str] = Field(description="the groups this request created, parents first")


class GroupRename(Body):
    name: str = Field(description="the group's new name, in the same parent (no `/`)")


class GroupMove(Body):
    parent: str | None = Field(
        description="the path of the group to move it under (with its subtree and all in "
        "it); `null`: to the top (operator-wide admin tokens only)"
    )


class InvitationCreate(Body):
    email: str
    role: str = Field(description="admin, installer or viewer: no higher than the token's")
    group: str = Field(description="the path of the group the user will belong to")

    def spec(self) -> InviteSpec:
        return InviteSpec(self.email, self.role, self.group)


class InvitationRead(BaseModel):
    id: uuid.UUID
    email: str
    role: str
    group: str
    created_at: datetime
    expires_at: datetime
    created_by: str = Field(description="who invited (`user:…`, `token:…`, `cli:…`)")

    @classmethod
    def of(cls, link: Link) -> InvitationRead:
        return cls(
            id=link.id,
            email=link.email,
            role=link.role.value if link.role else "",
            group=link.group_path or "",
            created_at=link.created_at,
            expires_at=link.expires_at,
            created_by=link.created_by,
        )


class LinkIssued(BaseModel):
    """A single-use link just made: e-mailed when a mail server is configured, else to be
    passed on by the caller. Its URL is in this answer only."""

    id: uuid.UUID
    email: str
    url: str = Field(description="the link (works once, until `expires_at`); shown once")
    mailed: bool = Field(description="whether it was e-mailed to `email`")
    mail_problem: str | None = Field(
        None, description="why it could not be mailed (a mail server is set but refused it)"
    )
    expires_at: datetime

    @classmethod
    def of(cls, issued: IssuedLink) -> LinkIssued:
        return cls(
            id=issued.link.id,
            email=issued.link.email,
            url=issued.url,
            mailed=issued.mailed,
            mail_problem=issued.mail_problem,
            expires_at=issued.link.expires_at,
        )


class InvitationIssued(LinkIssued):
    role: str
    group: str


class UserCreate(Body):
    email: str
    password: str = Field(min_length=1)
    role: str = Field(description="admin, installer or viewer")
    group: str | None = Field(
        None, description="path of the user's group; required unless operator_wide"
    )
    operator_wide: bool = Field(
        False,
        description="an admin of no group, who sees every group and the devices of none "
        "(only an operator-wide token may create one); instead of group",
    )

    def spec(self) -> UserSpec:
        """InvalidInput (field ``group``) unless exactly one of group and operator_wide."""
        if (self.group is None) != self.operator_wide:
            problem = (
                "give group or operator_wide, not both"
                if self.group is not None
                else "give group (or operator_wide: true for an admin of every group)"
            )
            raise InvalidInput(problem, problems=[Problem(problem, field="group")])
        return UserSpec(self.email, self.password, self.role, self.group)


class UserRead(BaseModel):
    id: uuid.UUID
    email: str
    role: str
    group: str | None = Field(description="path of the user's group; null: operator-wide")
    created_at: datetime
    disabled_at: datetime | None = Field(
        None, description="when an operator disabled the user (sign-in refused); null: active"
    )

    @classmethod
    def of(cls, u: User) -> UserRead:
        return cls(**user_fields(u))


class UserDisabled(UserRead):
    sessions_ended: int = Field(description="sessions ended by this request")


class ModelCreate(Body):
    name: str
    description: str = ""


class ModelRead(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    created_at: datetime

    @classmethod
    def of(cls, m: DeviceModel) -> ModelRead:
        return cls(id=m.id, name=m.name, description=m.description, created_at=m.created_at)


class TokenCreate(Body):
    name: str
    role: str = Field(
        "admin", description="admin, installer or viewer: no higher than the caller's"
    )
    group: str | None = Field(
        None,
        description=(
            "the group whose subtree the token may reach (a path); absent: operator-wide, "
            "which only an operator-wide caller may make"
        ),
    )
    expires: str | None = Field(
        None,
        description=(
            "a span from now (`12h`, `30d`, `8w`) or an ISO date or date-time; absent: never, "
            "or the caller's own expiry when it has one"
        ),
    )

    def spec(self) -> TokenSpec:
        return TokenSpec(**self.model_dump())


class TokenRead(BaseModel):
    id: uuid.UUID
    name: str
    role: str
    group: str | None = Field(description="the subtree it reaches; null: operator-wide")
    expires_at: datetime | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, t: ApiToken) -> TokenRead:
        return cls(**token_fields(t))


class TokenCreated(TokenRead):
    secret: str = Field(description="the bearer token: shown in this answer only")


class LorawanNetwork(Body):
    application_id: str | None = Field(None, description="The Things Stack application")
    frequency_plan_id: str | None = Field(None, description="e.g. `EU_863_870_TTN`")
    lorawan_version: str | None = Field(None, description="e.g. `MAC_V1_0_3`")
    lorawan_phy_version: str | None = Field(None, description="e.g. `RP001_V1_0_3_REV_A`")
    supports_class_b: bool | None = None
    supports_class_c: bool | None = None


class ProfileCreate(Body):
    name: str
    strategy: str = Field("allow-create", description="`allow-create` or `pre-provisioned`")
    key: str | None = Field(None, description="the provision key; generated when absent")
    secret: str | None = Field(None, description="the provision secret; generated when absent")
    group: str | None = Field(
        None, description="devices this profile creates are claimed for this group (a path)"
    )
    model: str | None = Field(None, description="the model of devices this profile creates")
    credentials: list[str] = Field(
        default_factory=list,
        description=(
            "credential types handed out (`access-token`, `mqtt-basic`, `x509`); the first is "
            "the default; empty: `access-token`"
        ),
    )
    rate_per_minute: int = DEFAULT_RATE_PER_MINUTE
    source_rate_per_minute: int = DEFAULT_SOURCE_RATE_PER_MINUTE
    jwt_public_key: str | None = Field(
        None,
        description=(
            "PEM of the ES256 (P-256) public key that signs registration tokens; without it "
            "they are HS256, keyed with the SHA-256 of the secret"
        ),
    )
    ca: str | None = Field(None, description="the certificate authority that signs CSRs")
    reprovision: str = Field(
        "never",
        description=(
            "whether a device already provisioned may provision again: `never` (ThingsBoard's "
            "contract), `with-proof` (a repeat that proves it is the first requester), "
            "`factory-reset` (also new credentials for a device that proves itself)"
        ),
    )
    device_secret_min_length: int = Field(
        DEVICE_SECRET_MIN_LENGTH_DEFAULT,
        description="the shortest token or MQTT password a device may choose (1 to 128)",
    )
    device_ca: str | None = Field(
        None,
        description=(
            "a CA (e.g. the manufacturer's, registered by its certificate) whose certificates "
            "devices may bring without a signature proof"
        ),
    )
    certificate_days: int = Field(365, description="lifetime of the certificates it signs")
    claim_proof: str | None = Field(
        None,
        description=(
            "how people prove they hold a device to claim it: `none`, `button`, `code` or "
            "`device-secret`; absent: the instance's `claim_proof` setting"
        ),
    )
    claim_window: int | None = Field(
        None,
        description=("seconds a claim stays open; absent: the instance's `claim_window_seconds`"),
    )
    release_policy: str = Field(
        "keep", description="`keep` or `reset`: what a release keeps of tags and history"
    )
    lorawan: LorawanNetwork | None = Field(
        None,
        description=(
            "The Things Stack settings of its LoRaWAN devices (unset fields: the instance's "
            "`tts__*` settings)"
        ),
    )

    def spec(self) -> ProfileSpec:
        return ProfileSpec(**self.model_dump())


class ProfileUpdate(Body):
    reprovision: str | None = Field(None, description="`never`, `with-proof` or `factory-reset`")
    device_secret_min_length: int | None = Field(None, description="1 to 128")
    device_ca: str | None = Field(None, description="a CA's name; null removes it")
    ca: str | None = Field(None, description="the CA that signs CSRs; null removes it")
    certificate_days: int | None = Field(None, description="lifetime of the certificates it signs")
    claim_proof: str | None = Field(
        None, description="`none`, `button`, `code` or `device-secret`; null: the instance default"
    )
    claim_window: int | None = Field(None, description="seconds; null: the instance default")
    release_policy: str | None = Field(None, description="`keep` or `reset`")

    def changes(self) -> ProfileChanges:
        nulled = {f for f in self.model_fields_set if getattr(self, f) is None}
        return ProfileChanges(
            **self.model_dump(),
            clear_device_ca="device_ca" in nulled,
            clear_ca="ca" in nulled,
            clear_claim_proof="claim_proof" in nulled,
            clear_claim_window="claim_window" in nulled,
        )


class ProfileJwtKey(Body):
    public_key: str | None = Field(description="PEM of the ES256 public key; null removes it")


class ProfileSecret(Body):
    secret: str | None = Field(None, description="the new secret; generated when absent")


class ProfileRead(BaseModel):
    id: uuid.UUID
    name: str
    key: str
    strategy: str
    group: str | None
    model: str | None
    credentials: list[str]
    rate_per_minute: int
    source_rate_per_minute: int
    enabled: bool
    created_at: datetime
    updated_at: datetime
    secret_rotated_at: datetime
    registration_algorithm: str = Field(description="`ES256` or `HS256`")
    ca: str | None
    certificate_days: int
    claim_proof: str | None = Field(description="null: the instance default")
    claim_window: int | None = Field(description="seconds; null: the instance default")
    release_policy: str
    lorawan: dict[str, Any] = Field(description="The Things Stack settings it sets")
    reprovision: str = Field(description="`never`, `with-proof` or `factory-reset`")
    device_secret_min_length: int
    device_ca: str | None = Field(description="the CA vouching for certificates devices bring")

    @classmethod
    def of(cls, p: Profile) -> ProfileRead:
        return cls(**profile_fields(p))


class ProfileWithSecret(ProfileRead):
    secret: str = Field(description="the provision secret: shown in this answer only")


class DeviceCreate(Body):
    serial: str
    name: str | None = None
    model: str | None = None
    group: str | None = Field(None, description="claim the device for this group")
    owner: str | None = Field(None, description="claim the device for this user (e-mail)")
    tags: dict[str, str] = Field(default_factory=dict)

    def spec(self) -> DeviceSpec:
        return DeviceSpec(**self.model_dump())


class DeviceRead(BaseModel):
    id: uuid.UUID
    serial: str
    name: str
    model: str | None
    state: str
    group: str | None
    owner_kind: str | None = Field(description="user, group, or null when unclaimed")
    owner: str | None = Field(description="the owner's e-mail or group path")
    tags: dict[str, str]
    created_at: datetime
    updated_at: datetime
    claimed_at: datetime | None

    @classmethod
    def of(cls, d: Device) -> DeviceRead:
        return cls(**device_fields(d))


class CredentialRead(BaseModel):
    id: uuid.UUID
    type: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, c: Credential) -> CredentialRead:
        return cls(id=c.id, type=c.type.value, created_at=c.created_at, revoked_at=c.revoked_at)


class IssuedCredentialRead(BaseModel):
    type: str
    secret: str = Field(
        description="shown in this answer only; stored as a SHA-256 (and, while a broker "
        "integration must be given it, also sealed with device_key_passphrase)"
    )


class DeviceCreated(DeviceRead):
    credential: IssuedCredentialRead


class EventRead(BaseModel):
    id: int
    type: str
    at: datetime
    actor: str
    serial: str | None
    data: dict[str, Any]
    device_id: uuid.UUID | None = None
    group: str | None = Field(
        None,
        description="the subtree it belongs to, as it was then; null: operator-wide readers only",
    )

    @classmethod
    def of(cls, e: Event) -> EventRead:
        return cls(
            id=e.id,
            type=e.type.value,
            at=e.at,
            actor=e.actor,
            serial=e.serial,
            data=e.data,
            device_id=e.device_id,
            group=e.group_path,
        )


class EventPage(BaseModel):
    items: list[EventRead] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next (older) page")


class DeviceDetail(DeviceRead):
    credentials: list[CredentialRead]
    events: list[EventRead]


NEXT_CURSOR = "pass as `cursor` for the next page; null: this is the last one"


class DevicePage(BaseModel):
    items: list[DeviceRead]
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class GroupPage(BaseModel):
    items: list[GroupRead]
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class UserPage(BaseModel):
    items: list[UserRead]
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class TokenPage(BaseModel):
    items: list[TokenRead]
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class ProfilePage(BaseModel):
    items: list[ProfileRead]
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class ImportSummary(BaseModel):
    imported: int
    claimed: int
    skipped: int
    event_id: int
    credentials: list[dict[str, str]] = Field(
        description="serial, device_id, credential_type, secret — shown in this answer only"
    )


class RotatedCredentialRead(BaseModel):
    type: str
    credential_id: uuid.UUID
    secret: str | None = Field(None, description="the access token: shown in this answer only")
    client_id: str | None = Field(None, description="MQTT basic: the client id")
    username: str | None = Field(None, description="MQTT basic: the user name")
    password: str | None = Field(None, description="MQTT basic: shown in this answer only")


class RevokedCredentials(BaseModel):
    revoked: list[CredentialRead]


class WebhookCreate(Body):
    group: str | None = Field(
        description="the group whose events (its subtree) it receives; `null`: "
        "operator-wide (every event, those of no group too), for an "
        "operator-wide token only"
    )
    url: str = Field(description="http:// or https://; deliveries are POSTed here")
    events: list[str] | None = Field(
        None,
        description="event types (default: all of device.registered, "
        "device.provisioned, claim.started, claim.proven, device.claimed, "
        "device.released, credentials.issued, credentials.revoked, "
        "device.deleted)",
    )

    def spec(self) -> WebhookSpec:
        return WebhookSpec(**self.model_dump())


class WebhookRead(BaseModel):
    id: uuid.UUID
    group: str | None = Field(description="null: operator-wide")
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int
    created_at: datetime
    deliveries: dict[str, int] | None = Field(
        None, description="deliveries in the log by status (one webhook's read only)"
    )

    @classmethod
    def of(cls, w: Webhook, counts: dict[str, int] | None = None) -> WebhookRead:
        return cls(
            id=w.id,
            group=w.group_path,
            url=w.url,
            events=[e.value for e in w.events],
            enabled=w.enabled,
            disabled_reason=w.disabled_reason,
            consecutive_failures=w.consecutive_failures,
            created_at=w.created_at,
            deliveries=counts,
        )


class WebhookPage(BaseModel):
    items: list[WebhookRead]
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class WebhookCreated(WebhookRead):
    secret: str = Field(description="the HMAC-SHA256 signing key: shown in this answer only")


class RedeliverFailed(Body):
    webhook_id: uuid.UUID | None = Field(
        None,
        description="only this webhook's failed deliveries; `null`: every webhook's "
        "in the token's subtree",
    )
    since: datetime | None = Field(
        None, description="only deliveries created at or after this time (ISO 8601)"
    )


class Redelivered(BaseModel):
    queued: int = Field(
        description="failed deliveries queued again (a delivery still pending is not "
        "queued twice: 0)"
    )


class DeliveryRead(BaseModel):
    id: int
    event_id: int
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, d: Delivery) -> DeliveryRead:
        return cls(
            id=d.id,
            event_id=d.event_id,
            event_type=d.event_type,
            status=d.status.value,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at,
            last_status_code=d.last_status_code,
            last_error=d.last_error,
            created_at=d.created_at,
            finished_at=d.finished_at,
        )
