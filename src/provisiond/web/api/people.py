"""/api/v1/invitations, password resets and renaming and moving groups: what the console's
users and groups pages do (services/invitations.py, services/people.py), for scripts.

Each route is one call of the service the console and the CLI use, scoped by the token: a
group, user or invitation outside its subtree is not found, as a missing one is.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, Response

from provisiond.domain.invitations import InviteSpec, Link
from provisiond.domain.tokens import ApiToken
from provisiond.errors import (
    Forbidden,
    GroupExists,
    GroupNotFound,
    LinkNotValid,
    UserExists,
    UserNotFound,
)
from provisiond.services import invitations, people
from provisiond.services.container import Container
from provisiond.services.mail import mailer_for
from provisiond.web.api.schemas import (
    GroupMove,
    GroupRead,
    GroupRename,
    InvitationCreate,
    InvitationIssued,
    InvitationRead,
    LinkIssued,
)
from provisiond.web.deps import ContainerDep, OperatorDep, actor
from provisiond.web.problems import responses

router = APIRouter(prefix="/api/v1")


def _links(c: Container, request: Request) -> invitations.LinkPolicy:
    """Links start with ``public_url``, else with the address the caller reached us at."""
    base = c.settings.public_url or str(request.base_url)
    return invitations.LinkPolicy(timedelta(hours=c.settings.invitations.hours), base)


async def _invite(
    c: Container, request: Request, op: ApiToken, spec: InviteSpec
) -> InvitationIssued:
    issued = await invitations.invite_user(
        c.uow(),
        mailer_for(c.settings.smtp),
        _links(c, request),
        scope=op.scope,
        spec=spec,
        actor=actor(op),
        now=c.now(),
    )
    return InvitationIssued(
        **LinkIssued.of(issued).model_dump(),
        role=issued.link.role.value if issued.link.role else spec.role,
        group=issued.link.group_path or spec.group,
    )


@router.post(
    "/invitations",
    status_code=201,
    response_model=InvitationIssued,
    tags=["users"],
    responses=responses(GroupNotFound, UserExists, Forbidden),
)
async def invite_user(
    body: InvitationCreate, request: Request, c: ContainerDep, op: OperatorDep
) -> InvitationIssued:
    """Invite a person to a group of the token's subtree, with no higher role than the
    token's: a single-use link to choose a password, e-mailed when `smtp.host` is set (else
    in this answer only, for the caller to pass on). An earlier unused invitation of the
    same e-mail stops working."""
    return await _invite(c, request, op, body.spec())


@router.get(
    "/invitations",
    response_model=list[InvitationRead],
    tags=["users"],
    responses=responses(Forbidden),
)
async def list_invitations(c: ContainerDep, op: OperatorDep) -> list[InvitationRead]:
    """The invitations into the token's subtree that still work (not used, revoked or
    expired), newest first."""
    pending = await invitations.pending_invitations(c.uow(), scope=op.scope, now=c.now())
    return [InvitationRead.of(link) for link in pending]


async def _pending(c: Container, op: ApiToken, invitation_id: str) -> Link:
    """A pending invitation of the token's subtree, or LinkNotValid (as a missing one)."""
    pending = await invitations.pending_invitations(c.uow(), scope=op.scope, now=c.now())
    for link in pending:
        if str(link.id) == invitation_id.lower():
            return link
    raise LinkNotValid("no such invitation, or it was used, revoked or has expired")


@router.post(
    "/invitations/{invitation_id}/resend",
    status_code=201,
    response_model=InvitationIssued,
    tags=["users"],
    responses=responses(LinkNotValid, GroupNotFound, UserExists, Forbidden),
)
async def resend_invitation(
    invitation_id: str, request: Request, c: ContainerDep, op: OperatorDep
) -> InvitationIssued:
    """A new link for a pending invitation (same e-mail, role and group), mailed again or
    answered; the previous link stops working. An invitation that expired is invited
    again with `POST /invitations`."""
    link = await _pending(c, op, invitation_id)
    role = link.role.value if link.role else ""
    return await _invite(c, request, op, InviteSpec(link.email, role, link.group_path or ""))


@router.delete(
    "/invitations/{invitation_id}",
    status_code=204,
    tags=["users"],
    responses=responses(LinkNotValid, Forbidden),
)
async def revoke_invitation(invitation_id: str, c: ContainerDep, op: OperatorDep) -> Response:
    """Take back an invitation into the token's subtree that was not used yet: its link
    stops working."""
    await invitations.revoke_invitation(
        c.uow(), scope=op.scope, link_id=invitation_id, actor=actor(op), now=c.now()
    )
    return Response(status_code=204)


@router.post(
    "/users/{email}/password-reset",
    status_code=201,
    response_model=LinkIssued,
    tags=["users"],
    responses=responses(UserNotFound, Forbidden),
)
async def reset_password(
    email: str, request: Request, c: ContainerDep, op: OperatorDep
) -> LinkIssued:
    """A single-use link for a user of the token's subtree to set a new password (their
    sessions end when it is used; the old password works until then), e-mailed or
    answered as an invitation's. A disabled user is refused (enable them first)."""
    issued = await invitations.issue_password_reset(
        c.uow(),
        mailer_for(c.settings.smtp),
        _links(c, request),
        scope=op.scope,
        email=email,
        actor=actor(op),
        now=c.now(),
    )
    return LinkIssued.of(issued)


@router.post(
    "/groups/{path:path}/rename",
    response_model=GroupRead,
    tags=["groups"],
    responses=responses(GroupNotFound, GroupExists, Forbidden),
)
async def rename_group(path: str, body: GroupRename, c: ContainerDep, op: OperatorDep) -> GroupRead:
    """Give a group of the token's subtree another name in the same parent; the paths of
    its subtree follow (devices, users, profiles and tokens stay in it). The root of a
    scoped token's subtree stays as it is."""
    group = await people.rename_group(
        c.uow(), scope=op.scope, path=path, name=body.name, actor=actor(op), now=c.now()
    )
    return GroupRead.of(group)


@router.post(
    "/groups/{path:path}/move",
    response_model=GroupRead,
    tags=["groups"],
    responses=responses(GroupNotFound, GroupExists, Forbidden),
)
async def move_group(path: str, body: GroupMove, c: ContainerDep, op: OperatorDep) -> GroupRead:
    """Move a group, with its subtree and all in it, under another group of the token's
    subtree (`parent` null: to the top, operator-wide admin tokens only)."""
    group = await people.move_group(
        c.uow(), scope=op.scope, path=path, parent=body.parent, actor=actor(op), now=c.now()
    )
    return GroupRead.of(group)
