"""`provisiond groups|users|models|tokens …`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from provisiond.cli import output
from provisiond.cli.common import (
    OPERATOR,
    Common,
    actor,
    common_options,
    fail,
    guard,
    run,
)
from provisiond.domain.rendering import token_fields, user_fields
from provisiond.domain.tokens import ApiToken, TokenSpec
from provisiond.domain.users import UserSpec
from provisiond.errors import InvalidInput, Problem
from provisiond.services import directory
from provisiond.services.paging import every_page

groups = typer.Typer(help="The organisation tree: customers, regions, sites.", no_args_is_help=True)
users = typer.Typer(help="People who sign in (admin, installer, viewer).", no_args_is_help=True)
models = typer.Typer(help="The catalogue of device models.", no_args_is_help=True)
tokens = typer.Typer(help="Operator API tokens for the REST API.", no_args_is_help=True)

# ----------------------------------------------------------------------------- groups


@groups.command("create")
@common_options()
def groups_create(
    common: Common,
    path: Annotated[str, typer.Argument(help="e.g. Sadler-Isberg/West/Anaheim")],
) -> None:
    """Create a group and any missing parents (like mkdir -p)."""
    group, created = run(
        common,
        lambda c: directory.create_group(
            c.uow(), scope=OPERATOR, path=path, actor=actor(), now=c.now()
        ),
    )
    if common.json:
        output.print_json({**output.group_dict(group), "created": [g.path for g in created]})
    elif created:
        output.success("created " + ", ".join(g.path for g in created))
    else:
        output.success(f"{group.path} already exists")


@groups.command("list")
@common_options()
def groups_list(
    common: Common,
    under: Annotated[str | None, typer.Option("--under", help="Only this subtree.")] = None,
) -> None:
    """The group tree, with the number of devices directly in each group."""
    rows = run(
        common,
        lambda c: every_page(
            lambda cursor, limit: directory.list_groups(
                c.uow(), scope=OPERATOR, under=under, cursor=cursor, limit=limit
            )
        ),
    )
    if common.json:
        output.print_json([output.group_dict(g, n) for g, n in rows])
        return
    output.table(["group", "devices"], [("  " * g.depth + g.name, n) for g, n in rows])


@groups.command("delete")
@common_options()
def groups_delete(
    common: Common,
    path: Annotated[str, typer.Argument()],
) -> None:
    """Delete an empty group (no subgroups, users or devices)."""
    group = run(
        common,
        lambda c: directory.delete_group(
            c.uow(), scope=OPERATOR, path=path, actor=actor(), now=c.now()
        ),
    )
    if common.json:
        output.print_json(output.group_dict(group))
    else:
        output.success(f"deleted {group.path}")


# ----------------------------------------------------------------------------- users


def _read_password(common: Common, from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            err = InvalidInput(
                "no password on standard input", problems=[Problem("is empty", field="password")]
            )
            fail(common, err)
        return password
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


@users.command("create")
@common_options()
def users_create(
    common: Common,
    email: Annotated[str, typer.Argument()],
    role: Annotated[str, typer.Option("--role", help="admin, installer or viewer.")],
    group: Annotated[
        str | None, typer.Option("--group", help="The group the user belongs to.")
    ] = None,
    operator_wide: Annotated[
        bool,
        typer.Option(
            "--operator-wide",
            help="An admin of no group who sees every group and the devices of none "
            "(unclaimed stock, the model catalogue) in the console. Instead of --group.",
        ),
    ] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a user who signs in with e-mail and password: a user of a group (--group), or
    an operator-wide admin (--operator-wide --role admin)."""
    if (group is None) != operator_wide:
        guard(common, lambda: _group_or_operator_wide(group))
    password = _read_password(common, password_stdin)
    user = run(
        common,
        lambda c: directory.create_user(
            c.uow(),
            scope=OPERATOR,
            spec=UserSpec(email, password, role, group),
            actor=actor(),
            now=c.now(),
        ),
    )
    if common.json:
        output.print_json(user_fields(user))
    else:
        where = f"in {user.group_path}" if user.group_path else "operator-wide"
        output.success(f"created {user.role} {user.email} {where}")


def _group_or_operator_wide(group: str | None) -> None:
    """Refuses the options when they name both a group and none, or neither."""
    both = group is not None
    problem = "give --group or --operator-wide, not both" if both else "give --group PATH"
    hint = " (or --operator-wide for an admin of every group)" if not both else ""
    raise InvalidInput(f"{problem}{hint}", problems=[Problem(problem, field="--group")])


@users.command("list")
@common_options()
def users_list(
    common: Common,
    under: Annotated[str | None, typer.Option("--under", help="Only this subtree.")] = None,
) -> None:
    """Users, with their role and group."""
    rows = run(
        common,
        lambda c: every_page(
            lambda cursor, limit: directory.list_users(
                c.uow(), scope=OPERATOR, under=under, cursor=cursor, limit=limit
            )
        ),
    )
    if common.json:
        output.print_json([user_fields(u) for u in rows])
        return
    output.table(
        ["email", "role", "group", "status"],
        [
            (
                u.email,
                u.role,
                u.group_path or "(operator-wide)",
                "disabled" if u.disabled else "active",
            )
            for u in rows
        ],
    )


@users.command("disable")
@common_options()
def users_disable(
    common: Common,
    email: Annotated[str, typer.Argument()],
) -> None:
    """Disable a user: sign-in refused, every session ended at once. Their claims and
    devices stay in the audit log and stay theirs until released."""
    user, ended = run(
        common,
        lambda c: directory.set_user_disabled(
            c.uow(), scope=OPERATOR, email=email, disabled=True, actor=actor(), now=c.now()
        ),
    )
    if common.json:
        output.print_json({**user_fields(user), "sessions_ended": ended})
    else:
        output.success(f"disabled {user.email} ({ended} session(s) ended)")


@users.command("enable")
@common_options()
def users_enable(
    common: Common,
    email: Annotated[str, typer.Argument()],
) -> None:
    """Let a disabled user sign in again."""
    user, _ = run(
        common,
        lambda c: directory.set_user_disabled(
            c.uow(), scope=OPERATOR, email=email, disabled=False, actor=actor(), now=c.now()
        ),
    )
    if common.json:
        output.print_json(user_fields(user))
    else:
        output.success(f"enabled {user.email}")


# ----------------------------------------------------------------------------- models


@models.command("add")
@common_options()
def models_add(
    common: Common,
    name: Annotated[str, typer.Argument()],
    description: Annotated[str, typer.Option("--description")] = "",
) -> None:
    """Add a device model to the catalogue."""
    model = run(
        common,
        lambda c: directory.add_model(
            c.uow(), scope=OPERATOR, name=name, description=description, actor=actor(), now=c.now()
        ),
    )
    if common.json:
        output.print_json(output.model_dict(model))
    else:
        output.success(f"added model {model.name}")


@models.command("list")
@common_options()
def models_list(common: Common) -> None:
    """The model catalogue."""
    rows = run(common, lambda c: directory.list_models(c.uow()))
    if common.json:
        output.print_json([output.model_dict(m) for m in rows])
        return
    output.table(["model", "description"], [(m.name, m.description) for m in rows])


@models.command("delete")
@common_options()
def models_delete(
    common: Common,
    name: Annotated[str, typer.Argument()],
) -> None:
    """Remove a model no device uses."""
    model = run(
        common,
        lambda c: directory.delete_model(
            c.uow(), scope=OPERATOR, name=name, actor=actor(), now=c.now()
        ),
    )
    if common.json:
        output.print_json(output.model_dict(model))
    else:
        output.success(f"deleted model {model.name}")


# ----------------------------------------------------------------------------- tokens


@tokens.command("create")
@common_options()
def tokens_create(
    common: Common,
    name: Annotated[str, typer.Argument(help="What the token is for, e.g. factory-line-2.")],
    group: Annotated[
        str | None,
        typer.Option("--group", help="The group whose subtree it reaches. Default: operator-wide."),
    ] = None,
    role: Annotated[str, typer.Option("--role", help="admin, installer or viewer.")] = "admin",
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires",
            help="When it stops working: 12h, 30d, 8w, or an ISO date (UTC) or "
            "date-time. Default: never.",
        ),
    ] = None,
) -> None:
    """Create an operator API token and print it once."""
    token, secret = run(
        common,
        lambda c: directory.create_token(
            c.uow(),
            scope=OPERATOR,
            spec=TokenSpec(name, role, group, expires),
            actor=actor(),
            now=c.now(),
        ),
    )
    if common.json:
        output.print_json({**token_fields(token), "secret": secret})
        return
    output.stdout.print(secret, markup=False, highlight=False)
    output.success(
        f"token {token.name} ({_scope_text(token)}): shown once, stored only as a "
        "hash. Use it as 'Authorization: Bearer …'."
    )


def _scope_text(token: ApiToken) -> str:
    where = token.group_path if token.group_path is not None else "operator-wide"
    until = f", until {output.short_time(token.expires_at)}" if token.expires_at else ""
    return f"{token.role} of {where}{until}"


@tokens.command("list")
@common_options()
def tokens_list(common: Common) -> None:
    """API tokens (never their secrets)."""
    rows = run(
        common,
        lambda c: every_page(
            lambda cursor, limit: directory.list_tokens(
                c.uow(), scope=OPERATOR, cursor=cursor, limit=limit
            )
        ),
    )
    if common.json:
        output.print_json([token_fields(t) for t in rows])
        return
    output.table(
        ["name", "role", "group", "expires", "created", "last used", "revoked"],
        [
            (
                t.name,
                t.role,
                t.group_path or "(operator-wide)",
                output.short_time(t.expires_at),
                output.short_time(t.created_at),
                output.short_time(t.last_used_at),
                output.short_time(t.revoked_at),
            )
            for t in rows
        ],
    )


@tokens.command("revoke")
@common_options()
def tokens_revoke(
    common: Common,
    name: Annotated[str, typer.Argument()],
) -> None:
    """Revoke an API token at once."""
    token = run(
        common,
        lambda c: directory.revoke_token(
            c.uow(), scope=OPERATOR, name=name, actor=actor(), now=c.now()
        ),
    )
    if common.json:
        output.print_json(token_fields(token))
    else:
        output.success(f"revoked {token.name}")
