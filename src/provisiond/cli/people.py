"""`provisiond users invite|reset-password|set-role|move` and `provisiond groups
rename|move`: the console's changes to the organisation, on the command line (operator-wide).
The commands join the `users` and `groups` apps of cli/directory.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from provisiond.cli import output
from provisiond.cli.common import OPERATOR, Common, actor, common_options, fail, guard, run
from provisiond.cli.directory import groups, users
from provisiond.domain.invitations import InviteSpec, IssuedLink
from provisiond.domain.rendering import user_fields
from provisiond.errors import PublicUrlNotConfigured
from provisiond.services import invitations, people
from provisiond.services.mail import mailer_for
from provisiond.settings import Settings

BaseUrl = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help="The address of this service the link starts with (default: the public_url setting).",
    ),
]


def _links(common: Common, settings: Settings, base_url: str | None) -> invitations.LinkPolicy:
    base = base_url or settings.public_url
    if not base:
        fail(
            common,
            PublicUrlNotConfigured(
                "a link needs the address of this service: set public_url or pass --base-url"
            ),
        )
    return invitations.LinkPolicy(timedelta(hours=settings.invitations.hours), base)


def _print_link(common: Common, issued: IssuedLink, what: str) -> None:
    if common.json:
        output.print_json(
            {
                "email": issued.link.email,
                "url": issued.url,
                "mailed": issued.mailed,
                "mail_problem": issued.mail_problem,
                "expires_at": issued.link.expires_at.isoformat(),
            }
        )
    elif issued.mailed:
        output.success(f"{what} e-mailed to {issued.link.email}")
    else:
        why = issued.mail_problem or "no e-mail server is configured (smtp__host)"
        output.success(f"{why}: send {issued.link.email} this link (it works once):")
        typer.echo(issued.url)


@users.command("invite")
@common_options()
def users_invite(
    common: Common,
    email: Annotated[str, typer.Argument()],
    group: Annotated[str, typer.Option("--group", help="The group the user will belong to.")],
    role: Annotated[str, typer.Option("--role", help="admin, installer or viewer.")],
    base_url: BaseUrl = None,
) -> None:
    """Invite a person: a single-use link to choose a password, e-mailed when smtp__host is
    set, else printed."""
    settings = guard(common, lambda: common.settings())
    links = _links(common, settings, base_url)
    issued = run(
        common,
        lambda c: invitations.invite_user(
            c.uow(),
            mailer_for(c.settings.smtp),
            links,
            scope=OPERATOR,
            spec=InviteSpec(email, role, group),
            actor=actor(),
            now=c.now(),
        ),
    )
    _print_link(common, issued, "invitation")


@users.command("reset-password")
@common_options()
def users_reset_password(
    common: Common,
    email: Annotated[str, typer.Argument()],
    base_url: BaseUrl = None,
) -> None:
    """A single-use link to set a new password (the user's sessions end when it is used)."""
    settings = guard(common, lambda: common.settings())
    links = _links(common, settings, base_url)
    issued = run(
        common,
        lambda c: invitations.issue_password_reset(
            c.uow(),
            mailer_for(c.settings.smtp),
            links,
            scope=OPERATOR,
            email=email,
            actor=actor(),
            now=c.now(),
        ),
    )
    _print_link(common, issued, "password-reset link")


@users.command("set-role")
@common_options()
def users_set_role(
    common: Common,
    email: Annotated[str, typer.Argument()],
    role: Annotated[str, typer.Argument(help="admin, installer or viewer.")],
) -> None:
    """Give a user another role."""
    user = run(
        common,
        lambda c: people.change_role(
            c.uow(), scope=OPERATOR, email=email, role=role, me=None, actor=actor(), now=c.now()
        ),
    )
    if common.json:
        output.print_json(user_fields(user))
    else:
        output.success(f"{user.email} is now {user.role}")


@users.command("move")
@common_options()
def users_move(
    common: Common,
    email: Annotated[str, typer.Argument()],
    group: Annotated[str, typer.Option("--group", help="The user's new group.")],
) -> None:
    """Put a user in another group."""
    user = run(
        common,
        lambda c: people.change_user_group(
            c.uow(), scope=OPERATOR, email=email, group=group, me=None, actor=actor(), now=c.now()
        ),
    )
    if common.json:
        output.print_json(user_fields(user))
    else:
        output.success(f"{user.email} is now in {user.group_path}")


@groups.command("rename")
@common_options()
def groups_rename(
    common: Common,
    path: Annotated[str, typer.Argument(help="e.g. Sadler-Isberg/West")],
    name: Annotated[str, typer.Argument(help="Its new name (no '/').")],
) -> None:
    """Rename a group; its subtree, devices and users follow."""
    group = run(
        common,
        lambda c: people.rename_group(
            c.uow(), scope=OPERATOR, path=path, name=name, actor=actor(), now=c.now()
        ),
    )
    if common.json:
        output.print_json(output.group_dict(group))
    else:
        output.success(f"renamed {path} to {group.path}")


@groups.command("move")
@common_options()
def groups_move(
    common: Common,
    path: Annotated[str, typer.Argument(help="e.g. Sadler-Isberg/West")],
    parent: Annotated[
        str | None,
        typer.Option("--parent", help="The group to move it under (none: to the top)."),
    ] = None,
) -> None:
    """Move a group, with its subtree and everything in it, under another group."""
    group = run(
        common,
        lambda c: people.move_group(
            c.uow(), scope=OPERATOR, path=path, parent=parent, actor=actor(), now=c.now()
        ),
    )
    if common.json:
        output.print_json(output.group_dict(group))
    else:
        output.success(f"moved {path} to {group.path}")
