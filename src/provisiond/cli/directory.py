"""`provisiond groups|users|models|tokens …`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from provisiond.cli import output
from provisiond.cli.common import (
    OPERATOR,
    Common,
    ConfigOpt,
    DatabaseOpt,
    DebugOpt,
    JsonOpt,
    actor,
    fail,
    run,
)
from provisiond.domain.tokens import ApiToken
from provisiond.errors import InvalidInput, Problem
from provisiond.services import directory
from provisiond.services.paging import every_page

groups = typer.Typer(help="The organisation tree: customers, regions, sites.", no_args_is_help=True)
users = typer.Typer(help="People who sign in (admin, installer, viewer).", no_args_is_help=True)
models = typer.Typer(help="The catalogue of device models.", no_args_is_help=True)
tokens = typer.Typer(help="Operator API tokens for the REST API.", no_args_is_help=True)

# ----------------------------------------------------------------------------- groups


@groups.command("create")
def groups_create(
    path: Annotated[str, typer.Argument(help="e.g. Sadler-Isberg/West/Anaheim")],
    database: DatabaseOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Create a group and any missing parents (like mkdir -p)."""
    common = Common(database, config, json, debug)
    group, created = run(
        common,
        lambda c: directory.create_group(
            c.uow(), scope=OPERATOR, path=path, actor=actor(), now=c.now()
        ),
    )
    if json:
        output.print_json({**output.group_dict(group), "created": [g.path for g in created]})
    elif created:
        output.success("created " + ", ".join(g.path for g in created))
    else:
        output.success(f"{group.path} already exists")


@groups.command("list")
def groups_list(
    under: Annotated[str | None, typer.Option("--under", help="Only this subtree.")] = None,
    database: DatabaseOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """The group tree, with the number of devices directly in each group."""
    common = Common(database, config, json, debug)
    rows = run(
        common,
        lambda c: every_page(
            lambda cursor, limit: directory.list_groups(
                c.uow(), scope=OPERATOR, under=under, cursor=cursor, limit=limit
            )
        ),
    )
    if json:
        output.print_json([output.group_dict(g, n) for g, n in rows])
        return
    output.table(["group", "devices"], [("  " * g.depth + g.name, n) for g, n in rows])


@groups.command("delete")
def groups_delete(
    path: Annotated[str, typer.Argument()],
    database: DatabaseOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Delete an empty group (no subgroups, users or devices)."""
    common = Common(database, config, json, debug)
    group = run(
        common,
        lambda c: directory.delete_group(
            c.uow(), scope=OPERATOR, path=path, actor=actor(), now=c.now()
        ),
    )
    if json:
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
def users_create(
    email: Annotated[str, typer.Argument()],
    group: Annotated[str, typer.Option("--group", help="The group the user belongs to.")],
    role: Annotated[str, typer.Option("--role", help="admin, installer or viewer.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    database: DatabaseOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Create a user who signs in with e-mail and password."""
    common = Common(database, config, json, debug)
    password = _read_password(common, password_stdin)
    user = run(
        common,
        lambda c: directory.create_user(
            c.uow(),
            scope=OPERATOR,
            email=email,
            password=password,
            role=role,
            group=group,
            actor=actor(),
            now=c.now(),
        ),
    )
    if json:
        output.print_json(output.user_dict(user))
    else:
        output.success(f"created {user.role} {user.email} in {user.group_path}")


@users.command("list")
def users_list(
    under: Annotated[str | None, typer.Option("--under", help="Only this subtree.")] = None,
    database: DatabaseOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Users, with their role and group."""
    common = Common(database, config, json, debug)
    rows = run(
        common,
        lambda c: every_page(
            lambda cursor, limit: directory.list_users(
                c.uow(), scope=OPERATOR, under=under, cursor=cursor, limit=limit
            )
        ),
    )
    if json:
        output.print_json([output.user_dict(u) for u in rows])
        return
    output.table(
        ["email", "role", "group", "status"],
        [(u.email, u.role, u.group_path, "disabled" if u.disabled else "active") for u in rows],
    )


@users.command("disable")
def users_disable(
    email: Annotated[str, typer.Argument()],
    database: DatabaseOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Disable a user: sign-in refused, every session ended at once. Their claims and
    devices stay in the audit log and stay theirs until released."""
    common = Common(database, config, json, debug)
    user, ended = run(
        common,
        lambda c: directory.set_user_disabled(
            c.uow(), scope=OPERATOR, email=email, disabled=True, actor=actor(), now=c.now()
        ),
    )
    if json:
        output.print_json({**output.user_dict(user), "sessions_ended": ended})
    else:
        output.success(f"disabled {user.email} ({ended} session(s) ended)")


@users.command("enable")
def users_enable(
    email: Annotated[str, typer.Argument()],
    database: DatabaseOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Let a disabled user sign in again."""
    common = Common(database, config, json, debug)
    user, _ = run(
        common,
        lambda c: directory.set_user_disabled(
            c.uow(), scope=OPERATOR, email=email, disabled=False, actor=actor(), now=c.now()
        ),
    )
    if json:
        output.print_json(output.user_dict(user))
    else:
        output.success(f"enabled {user.email}")


# ----------------------------------------------------------------------------- models


@models.command("add")
def models_add(
    name: Annotated[str, typer.Argument()],
    description: Annotated[str, typer.Option("--description")] = "",
    database: DatabaseOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Add a device model to the catalogue."""
    common = Common(database, config, json, debug)
    model = run(
        common,
        lambda c: directory.add_model(
            c.uow(), scope=OPERATOR, name=name, description=description, actor=actor(), now=c.now()
        ),
    )
    if json:
        output.print_json(output.model_dict(model))
    else:
        output.success(f"added model {model.name}")


@models.command("list")
def models_list(
    database: DatabaseOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """The model catalogue."""
    common = Common(database, config, json, debug)
    rows = run(common, lambda c: directory.list_models(c.uow()))
    if json:
        output.print_json([output.model_dict(m) for m in rows])
        return
    output.table(["model", "description"], [(m.name, m.description) for m in rows])


@models.command("delete")
def models_delete(
    name: Annotated[str, typer.Argument()],
    database: DatabaseOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Remove a model no device uses."""
    common = Common(database, config, json, debug)
    model = run(
        common,
        lambda c: directory.delete_model(
            c.uow(), scope=OPERATOR, name=name, actor=actor(), now=c.now()
        ),
    )
    if json:
        output.print_json(output.model_dict(model))
    else:
        output.success(f"deleted model {model.name}")


# ----------------------------------------------------------------------------- tokens


@tokens.command("create")
def tokens_create(
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
    database: DatabaseOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Create an operator API token and print it once."""
    common = Common(database, config, json, debug)
    token, secret = run(
        common,
        lambda c: directory.create_token(
            c.uow(),
            scope=OPERATOR,
            name=name,
            role=role,
            group=group,
            expires=expires,
            actor=actor(),
            now=c.now(),
        ),
    )
    if json:
        output.print_json({**output.token_dict(token), "secret": secret})
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
def tokens_list(
    database: DatabaseOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """API tokens (never their secrets)."""
    common = Common(database, config, json, debug)
    rows = run(
        common,
        lambda c: every_page(
            lambda cursor, limit: directory.list_tokens(
                c.uow(), scope=OPERATOR, cursor=cursor, limit=limit
            )
        ),
    )
    if json:
        output.print_json([output.token_dict(t) for t in rows])
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
def tokens_revoke(
    name: Annotated[str, typer.Argument()],
    database: DatabaseOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Revoke an API token at once."""
    common = Common(database, config, json, debug)
    token = run(
        common,
        lambda c: directory.revoke_token(
            c.uow(), scope=OPERATOR, name=name, actor=actor(), now=c.now()
        ),
    )
    if json:
        output.print_json(output.token_dict(token))
    else:
        output.success(f"revoked {token.name}")
